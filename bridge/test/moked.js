// The real moked (all-in-one binary, SQLite, WHATSAPP_PROVIDER=baileys) as a child process.
//
// The binary is `MOKED_BIN`, else `target/debug/moked` of this workspace (bridge/test.sh builds
// it with `cargo build --bin moked`). Its port is fixed by the caller (so a test can start it
// *after* the bridge already tried to reach that port) or chosen by moked (`0`, read from its
// "moked listening on" line).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECRET, StubPhone, eventually, startBridge, tempDir } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MOKED_BIN = process.env.MOKED_BIN ?? path.join(ROOT, 'target/debug/moked');
export const OPERATOR_TOKEN = 'bridge-test-operator-token-0123456789';

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts moked on `port` (0: any) with its SQLite file in `dir`, sending WhatsApp through the
 * bridge at `bridgeUrl`. Answers `{url, api(path, init), stop()}`; stopped when the test ends.
 */
export async function startMoked(t, { dir, port = 0, bridgeUrl = 'http://127.0.0.1:9' }) {
  assert(fs.existsSync(MOKED_BIN), `${MOKED_BIN} is missing: run \`cargo build --bin moked\` (bridge/test.sh does)`);
  const child = spawn(MOKED_BIN, [], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      DATABASE_URL: `sqlite://${path.join(dir, 'moked.db')}`,
      WHATSAPP_PROVIDER: 'baileys',
      BAILEYS_SECRET: SECRET,
      BAILEYS_URL: bridgeUrl,
      OPERATOR_TOKEN,
      // Retries of a failed send come quickly in tests.
      RETRY_SCHEDULE_WHATSAPP_SEND: '100ms,200ms,500ms',
      RUST_LOG: 'warn',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  child.on('exit', (code) => (exited = code));
  const listening = await eventually(
    () => {
      if (exited !== null) throw Object.assign(new Error(`moked exited (${exited}):\n${output}`), { fatal: true });
      return /moked listening on http:\/\/[^:]+:(\d+)/.exec(output);
    },
    { what: 'moked to listen' },
  );
  const url = `http://127.0.0.1:${listening[1]}`;
  const moked = {
    url,
    output: () => output,
    async api(pathname, init = {}) {
      const response = await fetch(`${url}${pathname}`, {
        ...init,
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json', ...init.headers },
      });
      return { status: response.status, body: await response.json() };
    },
    async stop() {
      if (exited !== null) return;
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await done;
    },
  };
  t.after(() => moked.stop());
  return moked;
}

/**
 * A bridge on a stub phone (data in `bridgeDir`) and a moked sending through it, each knowing
 * the other's address (moked's port is chosen first, so a test can stop moked and start it
 * again on the same port and data folder: `restart()`).
 */
export async function startPair(t) {
  const port = await freePort();
  const phone = new StubPhone();
  const bridgeDir = tempDir(t);
  const bridge = await startBridge(t, { dataDir: bridgeDir, phone, mokedUrl: `http://127.0.0.1:${port}` });
  const dir = tempDir(t);
  const pair = { phone, bridge, bridgeDir, port, dir };
  pair.moked = await startMoked(t, { dir, port, bridgeUrl: bridge.url });
  pair.restart = async () => {
    pair.moked = await startMoked(t, { dir, port, bridgeUrl: bridge.url });
    return pair.moked;
  };
  return pair;
}

/** Sends `body` through moked's send API; answers the message once moked has it `sent`. */
export async function sendThroughMoked(moked, body) {
  const accepted = await moked.api('/api/whatsapp/send', {
    method: 'POST',
    body: JSON.stringify({ to: '050-123-4567', body }),
  });
  assert(accepted.status === 202, `send refused: ${accepted.status} ${JSON.stringify(accepted.body)}`);
  return eventually(
    async () => {
      const { body: message } = await moked.api(`/api/whatsapp/messages/${accepted.body.id}`);
      return message.status === 'sent' && message;
    },
    { what: 'the message to turn sent' },
  );
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}
