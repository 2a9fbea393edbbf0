// Test kit: a stub Baileys socket (the surface the bridge uses, no network), a bridge on a
// temporary data folder, HTTP helpers, and `eventually` (polls a condition; no fixed sleeps).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { createBridge } from '../src/app.js';
import { createLogger } from '../src/log.js';

export const SECRET = 'test-secret-1234';
export const JID = '972501234567@s.whatsapp.net';

/**
 * The WhatsApp side of the tests: every socket a bridge opens is a `StubSocket` on this phone,
 * which records every send (across bridge restarts) and can fail the next ones.
 */
export class StubPhone {
  constructor() {
    this.sent = [];
    this.sockets = [];
    this.failures = [];
    this.paired = true;
  }

  /** The `connect` a bridge is given. */
  connect = async () => {
    const socket = new StubSocket(this);
    this.sockets.push(socket);
    // Like Baileys: the connection state arrives after the socket exists.
    setImmediate(() => socket.emit('connection.update', this.paired ? { connection: 'open' } : { qr: 'stub-qr-1' }));
    return socket;
  };

  get socket() {
    return this.sockets.at(-1);
  }

  /** Holds every send until the returned function is called. */
  hold() {
    let release;
    this.gate = new Promise((resolve) => (release = resolve));
    return () => {
      this.gate = null;
      release();
    };
  }

  /** Makes the next send throw `error` (after recording it when `afterSending`). */
  failNext(error, { afterSending = false } = {}) {
    this.failures.push({ error, afterSending });
  }
}

export class StubSocket {
  constructor(phone) {
    this.phone = phone;
    this.events = new EventEmitter();
    this.ev = { on: (name, fn) => this.events.on(name, fn) };
    this.user = { id: '972500000000:7@s.whatsapp.net' };
    this.ended = false;
  }

  emit(name, data) {
    this.events.emit(name, data);
  }

  async sendMessage(jid, content, options = {}) {
    await this.phone.gate;
    const failure = this.phone.failures.shift();
    if (failure && !failure.afterSending) throw failure.error;
    const id = options.messageId ?? `3EB0STUB${this.phone.sent.length}`;
    this.phone.sent.push({ jid, text: content.text, id });
    if (failure) throw failure.error;
    return { key: { remoteJid: jid, fromMe: true, id }, message: { conversation: content.text } };
  }

  end() {
    this.ended = true;
  }
}

/** A Baileys-shaped error (Boom) with an HTTP status. */
export function boom(message, statusCode) {
  return Object.assign(new Error(message), { output: { statusCode } });
}

/** A fresh data folder, removed when the test ends. */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A started bridge on `dataDir` talking to `phone`; stopped when the test ends (`t.after`).
 * `bridge.url` is its base URL.
 */
export async function startBridge(t, { dataDir, phone, mokedUrl = 'http://127.0.0.1:9', now, ttlMs, retry, secret = SECRET } = {}) {
  const config = {
    secret,
    webhookUrl: `${mokedUrl}/webhook/whatsapp/baileys`,
    port: 0,
    host: '127.0.0.1',
    dataDir,
    authDir: path.join(dataDir, 'auth'),
    ttlMs: ttlMs ?? 24 * 60 * 60 * 1000,
  };
  const bridge = createBridge({
    config,
    connect: phone.connect,
    log: createLogger(process.env.BRIDGE_TEST_LOG ?? 'silent'),
    now,
    retry: { baseMs: 20, capMs: 200, ...retry },
    reconnectMs: 10,
  });
  const port = await bridge.start();
  bridge.url = `http://127.0.0.1:${port}`;
  let stopped = false;
  bridge.stopOnce = async () => {
    if (stopped) return;
    stopped = true;
    await bridge.stop();
  };
  t.after(() => bridge.stopOnce());
  if (phone.paired) await eventually(() => bridge.session.status === 'paired');
  return bridge;
}

/** `POST /sendMessage` with the secret (unless overridden) and `key`; answers `{status, body, headers}`. */
export async function send(bridge, { to = JID, text = 'שלום, קיבלנו את פנייתך', key, secret = SECRET, raw } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (secret !== null) headers['x-baileys-secret'] = secret;
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await fetch(`${bridge.url}/sendMessage`, {
    method: 'POST',
    headers,
    body: raw ?? JSON.stringify({ to, text }),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

/** Polls `check` until it returns a truthy value (answered), failing after `timeoutMs`. */
export async function eventually(check, { timeoutMs = 15_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A Baileys `messages.upsert` message from `jid`. */
export function incoming(id, text, { jid = JID, ...key } = {}) {
  return {
    key: { remoteJid: jid, fromMe: false, id, ...key },
    message: { conversation: text },
    messageTimestamp: 1764000000,
  };
}
