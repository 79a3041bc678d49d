// Minimal, fast stand-ins used only by the benchmark, so that the fakes cost the
// same for the baseline and for kitbridge: a Kit that accepts every event and
// records when it arrived, and a Telegram Bot API that says ok to everything.
import { createServer } from 'node:http';

export async function listen(handler) {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

function b64url(o) {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

/** Kit sink: login/refresh give a JWT with exp; events are recorded with their arrival time. */
export async function startKitSink() {
  const arrivals = [];
  let waiter;
  const { server, url } = await listen((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.url.startsWith('/api/v3/botService/')) {
        const exp = Math.floor(Date.now() / 1000) + 900;
        const access = `${b64url({ alg: 'HS256' })}.${b64url({ exp })}.sig`;
        const body = JSON.stringify({ success: true, result: { access_token: access, refresh_token: 'r' } });
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(body);
      }
      const event = JSON.parse(Buffer.concat(chunks).toString());
      arrivals.push({
        at: performance.now(),
        id: event.event_id,
        client: event.client_data.client_id,
        text: event.event_data.message.text,
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"success":true,"result":true}');
      if (waiter && arrivals.length >= waiter.n) {
        waiter.resolve();
        waiter = undefined;
      }
    });
  });
  return {
    url,
    arrivals,
    reset() {
      arrivals.length = 0;
    },
    waitFor(n, timeoutMs = 120_000) {
      if (arrivals.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`Kit got ${arrivals.length} of ${n} events`)), timeoutMs);
        waiter = {
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        };
      });
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Telegram Bot API that answers every method (getMe, setWebhook, ...) with ok. */
export async function startTelegramStub() {
  const { server, url } = await listen((req, res) => {
    req.resume();
    req.on('end', () => {
      const method = req.url.split('/').pop();
      const result =
        method === 'getMe'
          ? {
              id: 1,
              is_bot: true,
              first_name: 'Bench',
              username: 'bench_bot',
              can_join_groups: false,
              can_read_all_group_messages: false,
              supports_inline_queries: false,
            }
          : method === 'getUserProfilePhotos'
            ? { total_count: 0, photos: [] }
            : true;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, result }));
    });
  });
  return { url, close: () => new Promise((r) => server.close(r)) };
}
