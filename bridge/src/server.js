// The bridge's HTTP API (docs/BAILEYS.md):
//
// | route | auth | answer |
// |---|---|---|
// | `POST /sendMessage` | `X-BAILEYS-SECRET` (403) | 200 `{ok, message_id}`, 400, 413, 422, 429, 503, 500 |
// | `GET /health` | none | 200 when paired, else 503; `{status, outbox, …}` (no secrets, no numbers) |
// | `GET /qr` | `X-BAILEYS-SECRET`, or Basic auth with the secret as password (401 + prompt) | the pairing QR code as PNG; 404 when there is none |
//
// The secret is compared in constant time and checked before the body is read.
import crypto from 'node:crypto';
import QRCode from 'qrcode';
import { fingerprint, newMessageId } from './idempotency.js';
import { maskJid } from './log.js';
import { NotPaired, errorStatus } from './session.js';

const MAX_BODY = 64 * 1024;
const MAX_TEXT = 1600;
const MAX_KEY = 200;
const JID = /^\d{6,15}@s\.whatsapp\.net$/;
const RETRY_AFTER_S = 5;

class HttpError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Whether `given` equals `secret`, in time independent of where they differ (and of lengths). */
export function sameSecret(given, secret) {
  if (typeof given !== 'string' || given === '') return false;
  const digest = (s) => crypto.createHash('sha256').update(s).digest();
  return crypto.timingSafeEqual(digest(given), digest(secret));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > MAX_BODY) {
      req.resume();
      reject(new HttpError(413, 'body over 64 KiB'));
      return;
    }
    // An oversized chunked body is drained, not kept, so the client still reads the 413.
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => (size > MAX_BODY ? reject(new HttpError(413, 'body over 64 KiB')) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

/** The validated `{to, text, key}` of a send request, or an HttpError 400. */
export function parseSend(raw, headers) {
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'expected a JSON object');
  const { to, text } = body;
  if (typeof to !== 'string' || to === '') throw new HttpError(400, '`to` is missing');
  if (!JID.test(to)) throw new HttpError(400, '`to` is not a WhatsApp JID (digits@s.whatsapp.net)');
  if (typeof text !== 'string' || text.trim() === '') throw new HttpError(400, '`text` is missing or empty');
  if ([...text].length > MAX_TEXT) throw new HttpError(400, `\`text\` is over ${MAX_TEXT} characters`);
  const key = headers['idempotency-key'];
  if (typeof key !== 'string' || key.trim() === '') throw new HttpError(400, 'Idempotency-Key header is missing');
  if (key.length > MAX_KEY) throw new HttpError(400, `Idempotency-Key is over ${MAX_KEY} characters`);
  return { to, text, key: key.trim() };
}

/**
 * The request handler.
 * @param {{secret: string, keys: import('./idempotency.js').KeyStore,
 *          session: import('./session.js').Session, outbox: import('./outbox.js').Outbox,
 *          forwarder: import('./outbox.js').Forwarder, log: import('./log.js').Logger}} bridge
 */
export function createHandler(bridge) {
  const { secret, log } = bridge;

  async function sendMessage(req) {
    if (!sameSecret(req.headers['x-baileys-secret'], secret)) throw new HttpError(403, 'forbidden');
    const { to, text, key } = parseSend(await readBody(req), req.headers);
    return bridge.keys.once(key, () => sendOnce(to, text, key));
  }

  async function sendOnce(to, text, key) {
    const { keys, session } = bridge;
    const fp = fingerprint(to, text);
    const known = keys.get(key);
    if (known && known.fp !== fp) throw new HttpError(422, 'Idempotency-Key was used for a different message');
    if (known?.state === 'sent') return { status: 200, body: { ok: true, message_id: known.id } };
    if (session.status !== 'paired') {
      throw new HttpError(503, `not paired (${session.status})`, { 'retry-after': String(RETRY_AFTER_S) });
    }
    // A pending key (an earlier attempt failed or the bridge crashed after writing it) is sent
    // again under the same WhatsApp id.
    const record = known ?? keys.begin(key, newMessageId(), fp);
    try {
      const id = await session.send(to, text, record.id);
      keys.finish(key, id);
      log.info('sent', { to: maskJid(to), message_id: id, retried: Boolean(known) });
      return { status: 200, body: { ok: true, message_id: id } };
    } catch (error) {
      throw sendFailure(error, to);
    }
  }

  function sendFailure(error, to) {
    if (error instanceof NotPaired) {
      return new HttpError(503, error.message, { 'retry-after': String(RETRY_AFTER_S) });
    }
    const status = errorStatus(error);
    const reason = String(error?.message ?? error);
    log.warn('send failed', { to: maskJid(to), status, error: reason });
    if (status === 429) return new HttpError(429, `throttled by WhatsApp: ${reason}`, { 'retry-after': '30' });
    if (status === 428 || status === 503) {
      return new HttpError(503, `WhatsApp unreachable: ${reason}`, { 'retry-after': String(RETRY_AFTER_S) });
    }
    // Anything else may have gone out: 500 tells moked to retry with the same key.
    return new HttpError(500, `send failed: ${reason}`);
  }

  function health() {
    const { session, outbox, forwarder } = bridge;
    return {
      status: session.status === 'paired' ? 200 : 503,
      body: {
        status: session.status,
        paired_as: session.user ? maskJid(session.user) : null,
        outbox: outbox.size,
        delivered: forwarder.delivered,
        last_delivery_error: forwarder.lastError,
      },
    };
  }

  function qrAuthorized(req) {
    if (sameSecret(req.headers['x-baileys-secret'], secret)) return true;
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    return sameSecret(decoded.slice(decoded.indexOf(':') + 1), secret);
  }

  async function qr(req, res) {
    if (!qrAuthorized(req)) {
      json(res, 401, { ok: false, error: 'forbidden' }, { 'www-authenticate': 'Basic realm="baileys-bridge"' });
      return;
    }
    const { session } = bridge;
    if (!session.qr) {
      json(res, 404, { ok: false, error: `no QR code now: the bridge is ${session.status}` });
      return;
    }
    const png = await QRCode.toBuffer(session.qr, { type: 'png', margin: 2, scale: 8 });
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length, 'cache-control': 'no-store' });
    res.end(png);
  }

  const routes = {
    'POST /sendMessage': async (req, res) => {
      const { status, body } = await sendMessage(req);
      json(res, status, body);
    },
    'GET /health': async (req, res) => {
      const { status, body } = health();
      json(res, status, body);
    },
    'GET /qr': qr,
  };

  return async (req, res) => {
    const path = new URL(req.url, 'http://bridge').pathname;
    const route = routes[`${req.method} ${path}`];
    try {
      if (!route) {
        const known = Object.keys(routes).some((r) => r.endsWith(` ${path}`));
        throw new HttpError(known ? 405 : 404, known ? 'method not allowed' : 'not found');
      }
      await route(req, res);
    } catch (error) {
      if (error instanceof HttpError) {
        json(res, error.status, { ok: false, error: error.message }, error.headers);
      } else {
        log.error('request failed', { path, error: String(error?.message ?? error) });
        if (!res.headersSent) json(res, 500, { ok: false, error: 'internal error' });
      }
    }
  };
}
