// Events on their way to moked: a durable outbox and the loop that empties it.
//
// Two kinds of event go the same way (docs/BAILEYS.md): an inbound message WhatsApp delivered
// to the paired number, and a receipt (`"type": "receipt"`) saying a message moked sent was
// delivered, read or refused. Each is written to the outbox (fsync'd) the moment Baileys emits
// it, then posted to moked's `POST /webhook/whatsapp/baileys` in arrival order. It leaves the
// outbox only when moked accepted it (2xx), so a moked that is down, slow or being deployed
// delays events and never loses them, and a bridge restart resumes with whatever was not yet
// accepted. moked deduplicates both (a message by its WhatsApp id, a receipt by id + status),
// so posting one twice (accepted, then the bridge crashed before writing `done`) is harmless.
//
// Answers: 2xx → done. 400/413/415/422 → dropped with an error log (that body can never be
// accepted; retrying it would block every later event). Anything else — 403 (wrong secret),
// 404 (wrong URL), 429, 5xx, a network error or a timeout — is retried with exponential
// backoff (`Retry-After` honoured), for as long as it takes: the fix is on moked's side.
import { JsonlLog } from './jsonl.js';
import { maskJid } from './log.js';

const PERMANENT = new Set([400, 413, 415, 422]);

/**
 * The outbox key of an event: a message's WhatsApp id, or a receipt's id and status (one
 * message has several receipts; a repeat of the same one while it waits is kept once).
 */
export function eventId(body) {
  return body.type === 'receipt' ? `receipt:${body.message_id}:${body.status}` : body.message_id;
}

/** What an event is, for log lines. */
function kindOf(body) {
  return body.type === 'receipt' ? 'receipt' : 'inbound message';
}

export class Outbox {
  /** @param {string} file the log file */
  constructor(file) {
    this.log = new JsonlLog(file);
    /** @type {Map<string, {op: 'add', id: string, body: object, at: number}>} pending, oldest first */
    this.pending = new Map();
    for (const record of this.log.read()) {
      if (record.op === 'add') this.pending.set(record.id, record);
      else if (record.op === 'done') this.pending.delete(record.id);
    }
    this.log.compact([...this.pending.values()]);
    this.waiters = [];
  }

  /** Queues `body` (a moked inbound message or receipt) durably; an event already waiting is kept once. */
  add(body) {
    const id = eventId(body);
    if (this.pending.has(id)) return;
    const record = { op: 'add', id, body, at: Date.now() };
    this.log.append(record);
    this.pending.set(record.id, record);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The oldest event not yet accepted. */
  first() {
    return this.pending.values().next().value;
  }

  /** Marks `id` accepted (or dropped): it is never posted again. */
  done(id) {
    this.log.append({ op: 'done', id });
    this.pending.delete(id);
    if (this.pending.size === 0 && this.log.lines > 1000) this.log.compact([]);
  }

  get size() {
    return this.pending.size;
  }

  /** Resolves when an event is added (or at once if one is waiting). */
  wait() {
    if (this.pending.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes waiters so a stopping loop can exit. */
  wake() {
    for (const wake of this.waiters.splice(0)) wake();
  }

  close() {
    this.log.close();
  }
}

/** The delay before retry number `attempt` (1-based): exponential, half jittered, capped. */
export function backoff(attempt, { baseMs, capMs }, random = Math.random) {
  const full = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return full / 2 + (random() * full) / 2;
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), or undefined. */
export function retryAfterMs(value) {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export class Forwarder {
  /**
   * @param {Outbox} outbox
   * @param {{url: string, secret: string, baseMs?: number, capMs?: number, timeoutMs?: number,
   *          log: import('./log.js').Logger}} options
   */
  constructor(outbox, { url, secret, baseMs = 1000, capMs = 60_000, timeoutMs = 10_000, log }) {
    this.outbox = outbox;
    this.url = url;
    this.secret = secret;
    this.policy = { baseMs, capMs };
    this.timeoutMs = timeoutMs;
    this.log = log;
    this.attempts = 0;
    this.lastError = null;
    this.delivered = 0;
    this.stopped = false;
    this.timer = null;
    this.sleeping = null;
    // Aborts a delivery in flight when the bridge stops (it stays in the outbox).
    this.abort = new AbortController();
  }

  start() {
    this.running = this.loop();
    return this;
  }

  async stop() {
    this.stopped = true;
    this.abort.abort();
    this.outbox.wake();
    if (this.timer) {
      clearTimeout(this.timer);
      this.sleeping?.();
    }
    await this.running;
  }

  async loop() {
    while (!this.stopped) {
      const next = this.outbox.first();
      if (!next) {
        await this.outbox.wait();
        continue;
      }
      const outcome = await this.post(next.body);
      if (outcome.done) {
        this.outbox.done(next.id);
        this.attempts = 0;
        this.lastError = null;
        if (outcome.dropped) {
          this.log.error(`${kindOf(next.body)} dropped: moked refused it`, {
            message_id: next.body.message_id,
            from: maskJid(next.body.from),
            status: outcome.status,
          });
        } else {
          this.delivered += 1;
        }
        continue;
      }
      this.attempts += 1;
      this.lastError = outcome.error;
      const delay = Math.min(
        this.policy.capMs,
        outcome.retryAfterMs ?? backoff(this.attempts, this.policy),
      );
      this.log.warn(`moked did not accept the ${kindOf(next.body)}; retrying`, {
        message_id: next.body.message_id,
        error: outcome.error,
        attempt: this.attempts,
        retry_in_ms: Math.round(delay),
      });
      await this.sleep(delay);
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      this.sleeping = resolve;
      this.timer = setTimeout(() => {
        this.timer = null;
        resolve();
      }, ms);
    });
  }

  /** One delivery attempt. */
  async post(body) {
    let response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-baileys-secret': this.secret },
        body: JSON.stringify(body),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
    } catch (error) {
      return { done: false, error: `network: ${error.cause?.code ?? error.name}` };
    }
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return { done: true };
    if (PERMANENT.has(response.status)) return { done: true, dropped: true, status: response.status };
    return {
      done: false,
      error: `HTTP ${response.status}`,
      retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
    };
  }
}
