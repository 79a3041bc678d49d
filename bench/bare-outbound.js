// The outbound baseline: what a hand-written relay with no durability does with a
// Kit callback — node:http in, check the signature (MD5 of salt:token:event_id),
// one undici POST to the Bot API's sendMessage, answer 200 once Telegram answered.
// No store, no dedupe, no retry. Started as a child process.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { Pool } from 'undici';

const salt = process.env.KIT_CHANNEL_SALT;
const apiToken = process.env.KIT_API_TOKEN;
const pool = new Pool(process.env.TELEGRAM_API_ROOT, { connections: 16 });
const sendPath = `/bot${process.env.TELEGRAM_BOT_TOKEN}/sendMessage`;

function signed(header, eventId) {
  const want = Buffer.from(createHash('md5').update(`${salt}:${apiToken}:${eventId}`).digest('hex'));
  const given = Buffer.from(String(header ?? '').replace(/^bearer\s+/i, ''));
  return given.length === want.length && timingSafeEqual(given, want);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const event = JSON.parse(Buffer.concat(chunks).toString());
    if (!signed(req.headers.authorization, event.event_id)) return res.writeHead(401).end();
    const r = await pool.request({
      method: 'POST',
      path: sendPath,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        chat_id: Number(event.client_data.client_id.slice(3)),
        text: event.event_data.message.text,
      }),
    });
    const answer = await r.body.json();
    res.writeHead(answer.ok ? 200 : 502).end();
  });
});
server.listen(0, '127.0.0.1', () => process.send({ ready: true, port: server.address().port }));
process.on('message', (m) => {
  if (m === 'stats') process.send({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
  if (m === 'exit') process.exit(0);
});
