// The baseline: what a hand-written relay with no durability does — node:http in,
// undici out, answer the webhook once Kit answered. Started as a child process.
import { createServer } from 'node:http';
import { Pool } from 'undici';

const kitUrl = process.env.KIT_IM_URL;
const channel = process.env.KIT_CHANNEL_UUID;
const pool = new Pool(kitUrl, { connections: 16 });

const login = await pool.request({
  method: 'POST',
  path: `/api/v3/botService/login?domain=${process.env.KIT_ACCOUNT}&access_token=${process.env.KIT_API_TOKEN}`,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: `channel_uuid=${channel}`,
});
const token = (await login.body.json()).result.access_token;

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const u = JSON.parse(Buffer.concat(chunks).toString());
    const m = u.message;
    const id = `tg:${m.chat.id}/${m.message_id}`;
    const event = {
      client_data: {
        client_id: `tg:${m.chat.id}`,
        client_display_name: m.from.first_name,
        client_language: m.from.language_code,
      },
      event_id: id,
      event_type: 'send_message',
      event_data: { message: { message_id: id, text: m.text } },
    };
    const r = await pool.request({
      method: 'POST',
      path: `/${channel}`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(event),
    });
    await r.body.dump();
    res.writeHead(200).end();
  });
});
server.listen(0, '127.0.0.1', () => process.send({ ready: true, port: server.address().port }));
process.on('message', (m) => {
  if (m === 'stats') process.send({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
  if (m === 'exit') process.exit(0);
});
