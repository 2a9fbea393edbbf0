// Logging: one JSON object per line on stdout, phone numbers masked, secrets never written.
//
// Every call site passes fields explicitly; nothing logs a request's headers or a whole
// config, so the shared secret cannot leak through a log line.

/** `972501234567@s.whatsapp.net` → `9725******67@s.whatsapp.net` (enough to tell numbers apart). */
export function maskJid(jid) {
  if (typeof jid !== 'string') return jid;
  const [user, server] = jid.split('@');
  const masked = user.length > 6 ? `${user.slice(0, 4)}${'*'.repeat(user.length - 6)}${user.slice(-2)}` : '*'.repeat(user.length);
  return server === undefined ? masked : `${masked}@${server}`;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** @typedef {{debug: Function, info: Function, warn: Function, error: Function}} Logger */

/** A logger writing at `level` and above to `write` (stdout by default). */
export function createLogger(level = 'info', write = (line) => process.stdout.write(`${line}\n`)) {
  const threshold = LEVELS[level] ?? LEVELS.info;
  const at = (name) => (msg, fields = {}) => {
    if (LEVELS[name] < threshold) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: name, msg, ...fields }));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
