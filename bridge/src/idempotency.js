// Idempotency keys of `POST /sendMessage`, remembered on disk for at least 24 hours.
//
// moked sends every retry of one message with the same `Idempotency-Key` (its message id) and
// has no other way to learn whether an ambiguous attempt (timeout, 5xx) went out. So:
//
// 1. Before the socket is asked to send, `begin` writes `pending` with the WhatsApp message id
//    the bridge chose for this key (fsync'd). A crash or an error after that line leaves the key
//    pending; the retry sends again *with the same WhatsApp id*, which WhatsApp treats as the
//    same message rather than a new one.
// 2. After WhatsApp accepted it, `finish` writes `sent`; a repeated key answers that record and
//    sends nothing.
// 3. Two requests with one key at the same time share one send (`inFlight`).
//
// A key is kept `ttlMs` (default 24 h) after its first use, across restarts; expired keys are
// dropped when the log is compacted (at start-up, and when it grows to twice the live keys).
import crypto from 'node:crypto';
import { JsonlLog } from './jsonl.js';

export const DAY_MS = 24 * 60 * 60 * 1000;

/** A fingerprint of the message a key was first used for. */
export function fingerprint(to, text) {
  return crypto.createHash('sha256').update(to).update('\0').update(text).digest('hex').slice(0, 32);
}

/** A WhatsApp message id in Baileys' own format (`3EB0` + 18 hex digits). */
export function newMessageId() {
  return `3EB0${crypto.randomBytes(9).toString('hex').toUpperCase()}`;
}

export class KeyStore {
  /**
   * @param {string} file the log file
   * @param {{ttlMs?: number, now?: () => number}} options
   */
  constructor(file, { ttlMs = DAY_MS, now = Date.now } = {}) {
    this.log = new JsonlLog(file);
    this.ttlMs = ttlMs;
    this.now = now;
    /** @type {Map<string, {k: string, id: string, fp: string, state: string, at: number}>} */
    this.keys = new Map();
    /** @type {Map<string, Promise<object>>} */
    this.inFlight = new Map();
    for (const record of this.log.read()) {
      const first = this.keys.get(record.k);
      // The first use's time decides expiry; later lines only move the state forward.
      this.keys.set(record.k, { ...record, at: first ? first.at : record.at });
    }
    this.compact();
  }

  /** The live record of `key`, if any. */
  get(key) {
    const record = this.keys.get(key);
    if (record && this.now() - record.at >= this.ttlMs) return undefined;
    return record;
  }

  /** Records that `key` is about to be sent as WhatsApp message `id`. */
  begin(key, id, fp) {
    const record = { k: key, id, fp, state: 'pending', at: this.now() };
    this.log.append(record);
    this.keys.set(key, record);
    return record;
  }

  /** Records that WhatsApp accepted the message of `key` as `id`. */
  finish(key, id) {
    const record = { ...this.keys.get(key), id, state: 'sent' };
    this.log.append(record);
    this.keys.set(key, record);
    if (this.log.lines > 2 * this.keys.size + 1000) this.compact();
    return record;
  }

  /** Drops expired keys and rewrites the log with one line per live key. */
  compact() {
    for (const [key, record] of this.keys) {
      if (this.now() - record.at >= this.ttlMs) this.keys.delete(key);
    }
    this.log.compact([...this.keys.values()]);
  }

  /** Runs `work` once per key at a time: a second caller with the same key gets its answer. */
  async once(key, work) {
    const running = this.inFlight.get(key);
    if (running) return running;
    const promise = (async () => work())();
    this.inFlight.set(key, promise);
    try {
      return await promise;
    } finally {
      this.inFlight.delete(key);
    }
  }

  close() {
    this.log.close();
  }
}
