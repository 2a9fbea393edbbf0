// The bridge's settings, from the environment. Nothing here is ever logged.
//
// | variable | default | meaning |
// |---|---|---|
// | `BAILEYS_SECRET` | — (required) | the shared secret, `X-BAILEYS-SECRET` both ways (same value as moked's) |
// | `MOKED_URL` | — (required) | moked's intake base URL; inbound goes to `{MOKED_URL}/webhook/whatsapp/baileys` |
// | `PORT` / `HOST` | `3300` / `0.0.0.0` | where the bridge listens (moked's `BAILEYS_URL`) |
// | `DATA_DIR` | `./data` | `auth/` (WhatsApp credentials), `keys.jsonl`, `outbox.jsonl`: keep it on a volume |
// | `IDEMPOTENCY_TTL_HOURS` | `24` | how long send keys are remembered (at least 24) |
// | `LOG_LEVEL` | `info` | `debug`, `info`, `warn`, `error` |
import path from 'node:path';

export class ConfigError extends Error {}

export function fromEnv(env = process.env) {
  const secret = env.BAILEYS_SECRET ?? '';
  if (secret.trim() === '') throw new ConfigError('BAILEYS_SECRET is required (the same value as moked\'s)');
  const moked = (env.MOKED_URL ?? '').trim().replace(/\/+$/, '');
  if (!/^https?:\/\/\S+$/.test(moked)) throw new ConfigError('MOKED_URL is required: moked\'s base URL, e.g. http://intake:8080');
  const port = Number(env.PORT ?? 3300);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('PORT must be a port number');
  const ttlHours = Number(env.IDEMPOTENCY_TTL_HOURS ?? 24);
  if (!(ttlHours >= 24)) throw new ConfigError('IDEMPOTENCY_TTL_HOURS must be at least 24 (docs/BAILEYS.md)');
  const dataDir = path.resolve(env.DATA_DIR ?? 'data');
  return {
    secret,
    webhookUrl: `${moked}/webhook/whatsapp/baileys`,
    port,
    host: env.HOST ?? '0.0.0.0',
    dataDir,
    authDir: path.join(dataDir, 'auth'),
    ttlMs: ttlHours * 60 * 60 * 1000,
    logLevel: env.LOG_LEVEL ?? 'info',
  };
}
