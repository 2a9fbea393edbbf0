// The WhatsApp session: one Baileys socket, its pairing state, and what it delivers to us.
//
// The socket comes from an injected `connect()` (production: `makeWASocket` with the
// credentials in `DATA_DIR/auth`, see main.js; tests: a stub with the same surface), so all of
// the logic below — pairing status, reconnects, turning WhatsApp messages into moked's inbound
// JSON — runs unchanged in tests without a network.
//
// Status (`/health`):
// * `connecting`     — a socket is being opened (start-up, or after a dropped connection);
// * `waiting_for_qr` — not paired: a QR code is on the terminal and at `GET /qr`;
// * `paired`         — the WhatsApp connection is open; sends go out;
// * `logged_out`     — the phone unlinked this device: the old credentials were deleted and a
//                      new QR code follows (the status turns `waiting_for_qr` when it arrives).
//
// Socket events used: `connection.update` (qr / open / close with a reason),
// `messages.upsert` (inbound messages, type `notify`) and `messages.update` (status changes:
// the receipts of messages this number sent, forwarded as `{"type": "receipt"}`, see
// `toReceipt`). `message-receipt.update` is not used: Baileys (7.0.0-rc14, `handleReceipt` in
// `lib/Socket/messages-recv.js`) emits it only for groups and status broadcasts, and a receipt
// in a one-to-one chat arrives as `messages.update` with the new status.

/** Baileys' `DisconnectReason.loggedOut`. */
export const LOGGED_OUT = 401;
/** Baileys' `DisconnectReason.restartRequired`: reconnect at once (normal right after pairing). */
export const RESTART_REQUIRED = 515;

const PHONE_JID = /^(\d{6,15})(?::\d+)?@s\.whatsapp\.net$/;

/** The user's phone JID of a chat JID, without a device suffix, or undefined (groups, LIDs…). */
export function phoneJid(jid) {
  const m = typeof jid === 'string' ? PHONE_JID.exec(jid) : null;
  return m ? `${m[1]}@s.whatsapp.net` : undefined;
}

/** Wrappers that carry the real content one level down (disappearing, view-once, …). */
const WRAPPERS = [
  'ephemeralMessage',
  'viewOnceMessage',
  'viewOnceMessageV2',
  'viewOnceMessageV2Extension',
  'documentWithCaptionMessage',
  'editedMessage',
];

/** Content kinds a person sends; everything else (reactions, protocol, key distribution) is not a message to store. */
const USER_CONTENT = {
  conversation: (c) => c,
  extendedTextMessage: (c) => c.text,
  imageMessage: (c) => c.caption,
  videoMessage: (c) => c.caption,
  documentMessage: (c) => c.caption,
  audioMessage: () => '',
  stickerMessage: () => '',
  locationMessage: (c) => [c.name, c.address].filter(Boolean).join(', '),
  contactMessage: (c) => c.displayName,
};

function unwrap(content) {
  let current = content;
  for (let depth = 0; current && depth < 5; depth += 1) {
    const wrapper = WRAPPERS.find((w) => current[w]?.message);
    if (!wrapper) break;
    current = current[wrapper].message;
  }
  return current;
}

function seconds(value) {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'object' && typeof value.toNumber === 'function') return value.toNumber();
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * moked's inbound JSON for one Baileys message, or `{skip: reason}` when it is not a message
 * from a person to this number (our own sends, groups, status updates, reactions…).
 */
export function toInbound(msg) {
  const key = msg?.key ?? {};
  if (key.fromMe) return { skip: 'sent by this number' };
  if (!key.id) return { skip: 'no message id' };
  const chat = key.remoteJid ?? '';
  if (!chat.endsWith('@s.whatsapp.net') && !chat.endsWith('@lid')) return { skip: 'not a one-to-one chat' };
  // WhatsApp increasingly addresses people by a LID (`…@lid`); the phone number then travels in
  // the key's alternate JID. moked needs the number to link the customer.
  const from = phoneJid(chat) ?? phoneJid(key.remoteJidAlt) ?? phoneJid(key.senderPn);
  if (!from) return { skip: 'no phone number for this sender' };
  const content = unwrap(msg.message);
  const kind = content && Object.keys(USER_CONTENT).find((k) => content[k] !== undefined && content[k] !== null);
  if (!kind) return { skip: 'not a user message' };
  const text = USER_CONTENT[kind](content[kind]) ?? '';
  const body = { from, text: String(text), provider: 'baileys', message_id: key.id };
  const timestamp = seconds(msg.messageTimestamp);
  if (timestamp !== undefined) body.timestamp = timestamp;
  return { body };
}

/** Baileys' `WAMessageStatus` (`proto.WebMessageInfo.Status`) by name. */
export const WA_STATUS = { ERROR: 0, PENDING: 1, SERVER_ACK: 2, DELIVERY_ACK: 3, READ: 4, PLAYED: 5 };

/**
 * moked's status for each WhatsApp status worth reporting. PENDING is not: moked marks the
 * message `sent` once the send answered, and nothing moved since. PLAYED (a voice note was
 * listened to) is a read for moked, whose statuses stop at `read`.
 */
const MOKED_STATUS = {
  [WA_STATUS.ERROR]: 'failed',
  [WA_STATUS.SERVER_ACK]: 'sent',
  [WA_STATUS.DELIVERY_ACK]: 'delivered',
  [WA_STATUS.READ]: 'read',
  [WA_STATUS.PLAYED]: 'read',
};

/** Chats whose messages moked never sends (groups, status broadcasts, channels). */
const NOT_ONE_TO_ONE = /@(g\.us|broadcast|newsletter)$/;

/**
 * moked's receipt JSON for one Baileys `messages.update` entry, or `{skip: reason}`.
 *
 * Only status changes of messages this number sent (`key.fromMe`) are receipts for moked: the
 * same event also reports that another device of ours read a customer's message, which is not
 * moked's to track. `timestamp` is when WhatsApp stamped the receipt (Baileys passes the
 * receipt's time as `messageTimestamp`), else now, so a receipt that waits in the outbox while
 * moked is down still carries its real time.
 */
export function toReceipt({ key, update } = {}, now = Date.now) {
  if (!key?.fromMe) return { skip: 'not a message this number sent' };
  if (!key.id) return { skip: 'no message id' };
  if (NOT_ONE_TO_ONE.test(key.remoteJid ?? '')) return { skip: 'not a one-to-one chat' };
  const raw = update?.status;
  if (raw === undefined || raw === null) return { skip: 'no status change' };
  const status = MOKED_STATUS[typeof raw === 'string' ? WA_STATUS[raw] : raw];
  if (!status) return { skip: `status ${raw} is not reported to moked` };
  const stamped = seconds(update.messageTimestamp);
  const body = {
    type: 'receipt',
    message_id: key.id,
    status,
    timestamp: stamped > 0 ? stamped : Math.floor(now() / 1000),
  };
  if (status === 'failed') {
    // Baileys puts the server's error code (and, for 463, a reason) in the stub parameters.
    const detail = (update.messageStubParameters ?? []).filter(Boolean).join(': ');
    body.error = detail ? `WhatsApp refused the message (${detail})` : 'WhatsApp refused the message';
  }
  return { body };
}

/** The HTTP status of a Baileys (Boom) error, when it has one. */
export function errorStatus(error) {
  return error?.output?.statusCode ?? error?.data?.statusCode;
}

export class NotPaired extends Error {}

export class Session {
  /**
   * @param {{connect: () => Promise<object>, resetAuth?: () => Promise<void>,
   *          onInbound: (body: object) => void, onReceipt?: (body: object) => void,
   *          onQr?: (qr: string) => void, reconnectMs?: number,
   *          log: import('./log.js').Logger}} options
   */
  constructor({
    connect,
    resetAuth = async () => {},
    onInbound,
    onReceipt = () => {},
    onQr = () => {},
    reconnectMs = 2000,
    log,
  }) {
    this.connect = connect;
    this.resetAuth = resetAuth;
    this.onInbound = onInbound;
    this.onReceipt = onReceipt;
    this.onQr = onQr;
    this.reconnectMs = reconnectMs;
    this.log = log;
    this.status = 'connecting';
    this.qr = null;
    this.socket = null;
    this.user = null;
    this.stopped = false;
    this.timer = null;
    this.failures = 0;
  }

  async start() {
    if (this.stopped) return;
    const socket = await this.connect();
    this.socket = socket;
    socket.ev.on('connection.update', (update) => {
      if (socket === this.socket) this.onConnection(update);
    });
    socket.ev.on('messages.upsert', (upsert) => {
      if (socket === this.socket) this.onUpsert(upsert);
    });
    socket.ev.on('messages.update', (updates) => {
      if (socket === this.socket) this.onUpdates(updates);
    });
  }

  onConnection({ connection, qr, lastDisconnect }) {
    if (qr) {
      this.qr = qr;
      this.status = 'waiting_for_qr';
      this.onQr(qr);
    }
    if (connection === 'open') {
      this.qr = null;
      this.status = 'paired';
      this.user = phoneJid(this.socket?.user?.id) ?? this.socket?.user?.id ?? null;
      this.failures = 0;
      this.log.info('WhatsApp connection open: paired');
    } else if (connection === 'close') {
      const reason = errorStatus(lastDisconnect?.error);
      if (reason === LOGGED_OUT) {
        this.status = 'logged_out';
        this.qr = null;
        this.log.error('WhatsApp logged this device out: pair again with the new QR code');
        this.reconnect(0, true);
      } else {
        // An unscanned QR code expires with the socket: the next socket shows a new one soon.
        const qrExpired = this.status === 'waiting_for_qr';
        this.qr = null;
        if (this.status === 'paired') this.status = 'connecting';
        let delay;
        if (reason === RESTART_REQUIRED) delay = 0;
        else if (qrExpired) delay = this.reconnectMs;
        else {
          // Doubling pauses (up to a minute) so an outage does not become a reconnect storm.
          this.failures += 1;
          delay = Math.min(60_000, this.reconnectMs * 2 ** Math.min(this.failures - 1, 10));
        }
        this.log.warn('WhatsApp connection closed; reconnecting', { reason, retry_in_ms: delay });
        this.reconnect(delay, false);
      }
    }
  }

  onUpsert({ messages = [], type }) {
    // `notify` is a message that just arrived (also the backlog delivered on reconnect);
    // `append` is history and our own sends.
    if (type !== 'notify') return;
    for (const msg of messages) {
      const { body, skip } = toInbound(msg);
      if (body) this.onInbound(body);
      else this.log.debug('message not forwarded', { reason: skip });
    }
  }

  onUpdates(updates = []) {
    for (const update of updates) {
      const { body, skip } = toReceipt(update);
      if (body) this.onReceipt(body);
      else this.log.debug('status update not forwarded', { reason: skip });
    }
  }

  reconnect(delayMs, fresh) {
    if (this.stopped) return;
    const old = this.socket;
    this.socket = null;
    try {
      old?.end?.(undefined);
    } catch {
      // Already closed: nothing to release.
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      try {
        if (fresh) await this.resetAuth();
        if (this.status !== 'logged_out') this.status = 'connecting';
        await this.start();
      } catch (error) {
        this.log.error('cannot open a WhatsApp socket; retrying', { error: String(error?.message ?? error) });
        this.reconnect(this.reconnectMs, false);
      }
    }, delayMs);
  }

  /** Sends `text` to `jid` as WhatsApp message `messageId`; answers the id WhatsApp accepted. */
  async send(jid, text, messageId) {
    if (this.status !== 'paired' || !this.socket) throw new NotPaired(`not paired (${this.status})`);
    const sent = await this.socket.sendMessage(jid, { text }, { messageId });
    return sent?.key?.id ?? messageId;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    try {
      this.socket?.end?.(undefined);
    } catch {
      // Already closed.
    }
  }
}
