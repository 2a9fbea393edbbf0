// Test-only entry point: the real bridge (`createBridge`: HTTP server, idempotency key store,
// outbox) on 127.0.0.1 with an ephemeral port, with the `StubPhone` of helpers.js in place of
// Baileys. moked's Rust tests of the Baileys provider run against it
// (`testkit/src/baileys_bridge.rs`). It is not part of the bridge: the Docker image
// copies `src/` only, and nothing in `src/` imports `test/`.
//
//   BAILEYS_SECRET=… DATA_DIR=/tmp/x node test/stub-server.js
//
// Once listening it prints one line on stdout:
//
//   LISTENING <bridge url> <control url> <token>
//
// The control server (a second port, 127.0.0.1 only) is for the test process: every request
// must carry `Authorization: Bearer <token>` (a random token of this run), else 403.
//
// | route | answer |
// |---|---|
// | `GET /sent` | what the stub socket sent, in order: `[{jid, text, id}]` (`id`: the WhatsApp message id) |
// | `GET /requests` | every `POST /sendMessage` the bridge answered, in order: `[{key, secret_ok, status}]` (`key`: the `Idempotency-Key`; the secret itself is never recorded) |
// | `POST /fail` `{count, status, after_sending}` | 204: the next `count` socket sends throw a Baileys error with `status` (a plain `Error` when `status` is null), after recording the send when `after_sending` (`StubPhone.failNext`) |
//
// Settings: `BAILEYS_SECRET` (default: helpers.js' `SECRET`), `DATA_DIR` (default: a fresh
// temporary folder, removed at exit), `MOKED_URL` (where inbound would go; default: nowhere),
// `BRIDGE_TEST_LOG` (the bridge's log level, default `silent`; logs go to stderr). It stops on
// SIGTERM/SIGINT and when its stdin closes, so it never outlives the test process that started it.
import crypto from 'node:crypto';
import http from 'node:http';
import { sameSecret } from '../src/server.js';
import { SECRET, StubPhone, boom, startBridge, tempDir } from './helpers.js';

// `node --test` with a folder (or none) runs every file under test/ as a test: this is not one.
if (process.env.NODE_TEST_CONTEXT) process.exit(0);

const secret = process.env.BAILEYS_SECRET || SECRET;
const token = crypto.randomBytes(16).toString('hex');

// The `t.after` of helpers.js, outside node:test: run at exit, last registered first.
const cleanups = [];
const scope = { after: (fn) => cleanups.unshift(fn) };

const phone = new StubPhone();
const bridge = await startBridge(scope, {
  dataDir: process.env.DATA_DIR || tempDir(scope),
  phone,
  secret,
  mokedUrl: process.env.MOKED_URL,
});

// What the bridge answered to each send, recorded as the status line is written (before the
// caller can read it).
const requests = [];
bridge.server.on('request', (req, res) => {
  if (new URL(req.url, 'http://bridge').pathname !== '/sendMessage') return;
  const entry = {
    key: req.headers['idempotency-key'] ?? null,
    secret_ok: sameSecret(req.headers['x-baileys-secret'], secret),
  };
  const writeHead = res.writeHead;
  res.writeHead = function recorded(status, ...rest) {
    requests.push({ ...entry, status });
    return writeHead.call(this, status, ...rest);
  };
});

function reply(res, status, body) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

const routes = {
  'GET /sent': () => [200, phone.sent],
  'GET /requests': () => [200, requests],
  'POST /fail': async (req) => {
    const { count = 1, status = null, after_sending: afterSending = false } = await readJson(req);
    for (let i = 0; i < count; i += 1) {
      const error = status === null ? new Error('stub socket failure') : boom('stub socket failure', status);
      phone.failNext(error, { afterSending });
    }
    return [204, undefined];
  },
};

const control = http.createServer(async (req, res) => {
  const given = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!sameSecret(given, token)) return reply(res, 403, { error: 'forbidden' });
  const route = routes[`${req.method} ${new URL(req.url, 'http://control').pathname}`];
  if (!route) return reply(res, 404, { error: 'not found' });
  try {
    const [status, body] = await route(req);
    reply(res, status, body);
  } catch (error) {
    reply(res, 400, { error: String(error?.message ?? error) });
  }
});
await new Promise((resolve, reject) => {
  control.once('error', reject);
  control.listen(0, '127.0.0.1', resolve);
});
scope.after(
  () =>
    new Promise((resolve) => {
      control.close(() => resolve());
      control.closeAllConnections();
    }),
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  for (const cleanup of cleanups) await cleanup();
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, stop);
process.stdin.on('end', stop);
process.stdin.resume();

process.stdout.write(`LISTENING ${bridge.url} http://127.0.0.1:${control.address().port} ${token}\n`);
