// Minimal, fast stand-ins used only by the benchmark, so that the fakes cost the
// same for the baseline and for kitbridge: a Kit that accepts every event and
// records when it arrived, and a Telegram Bot API that says ok to everything and
// records when each sendMessage arrived.
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

/** Arrivals with their time, and a wait for the n-th one. */
function recorder() {
  const arrivals = [];
  let waiter;
  return {
    arrivals,
    push(a) {
      arrivals.push(a);
      if (waiter && arrivals.length >= waiter.n) {
        waiter.resolve();
        waiter = undefined;
      }
    },
    reset() {
      arrivals.length = 0;
    },
    waitFor(n, timeoutMs = 120_000, what = 'events') {
      if (arrivals.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`got ${arrivals.length} of ${n} ${what}`)), timeoutMs);
        waiter = {
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        };
      });
    },
  };
}

/** Kit sink: login/refresh give a JWT with exp; events are recorded with their arrival time. */
export async function startKitSink() {
  const rec = recorder();
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
      const at = performance.now();
      const event = JSON.parse(Buffer.concat(chunks).toString());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"success":true,"result":true}');
      rec.push({
        at,
        id: event.event_id,
        client: event.client_data.client_id,
        text: event.event_data.message.text,
      });
    });
  });
  return {
    url,
    arrivals: rec.arrivals,
    reset: rec.reset,
    waitFor: (n, timeoutMs) => rec.waitFor(n, timeoutMs, 'events at Kit'),
    close: () => new Promise((r) => server.close(r)),
  };
}

const BOT = {
  id: 1,
  is_bot: true,
  first_name: 'Bench',
  username: 'bench_bot',
  can_join_groups: false,
  can_read_all_group_messages: false,
  supports_inline_queries: false,
};

/**
 * Telegram Bot API that answers every method (getMe, setWebhook, ...) with ok.
 * sendMessage (a JSON body, as grammY and undici send it) is recorded with the
 * time its request had fully arrived, and answered with the Message Telegram would return.
 */
export async function startTelegramStub() {
  const rec = recorder();
  let messageId = 0;
  const { server, url } = await listen((req, res) => {
    const method = req.url.slice(req.url.lastIndexOf('/') + 1).split('?')[0];
    if (method !== 'sendMessage') {
      req.resume();
      req.on('end', () => {
        const result =
          method === 'getMe'
            ? BOT
            : method === 'getUserProfilePhotos'
              ? { total_count: 0, photos: [] }
              : true;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true, result }));
      });
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const p = JSON.parse(Buffer.concat(chunks).toString());
      const chat = Number(p.chat_id);
      const message = {
        message_id: ++messageId,
        from: BOT,
        chat: { id: chat, type: 'private', first_name: 'Ann' },
        date: Math.floor(Date.now() / 1000),
        text: p.text,
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, result: message }));
      rec.push({ at, chat, text: p.text });
    });
  });
  return {
    url,
    sent: rec.arrivals,
    reset: rec.reset,
    waitFor: (n, timeoutMs) => rec.waitFor(n, timeoutMs, 'sendMessage calls at Telegram'),
    close: () => new Promise((r) => server.close(r)),
  };
}
