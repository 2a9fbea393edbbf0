// Settings from the environment: required values refused clearly, defaults as documented.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, fromEnv } from '../src/config.js';

test('the secret and moked\'s URL are required, and keys are kept at least 24 hours', () => {
  const base = { BAILEYS_SECRET: 's', MOKED_URL: 'http://intake:8080/' };
  const config = fromEnv({ ...base, DATA_DIR: '/data' });
  assert.equal(config.webhookUrl, 'http://intake:8080/webhook/whatsapp/baileys');
  assert.equal(config.port, 3300);
  assert.equal(config.ttlMs, 24 * 60 * 60 * 1000);
  assert.equal(config.authDir, path.join('/data', 'auth'));
  for (const [env, reason] of [
    [{ MOKED_URL: base.MOKED_URL }, /BAILEYS_SECRET/],
    [{ ...base, BAILEYS_SECRET: '  ' }, /BAILEYS_SECRET/],
    [{ BAILEYS_SECRET: 's' }, /MOKED_URL/],
    [{ ...base, MOKED_URL: 'intake:8080' }, /MOKED_URL/],
    [{ ...base, IDEMPOTENCY_TTL_HOURS: '12' }, /at least 24/],
    [{ ...base, PORT: 'http' }, /PORT/],
  ]) {
    assert.throws(() => fromEnv(env), (error) => error instanceof ConfigError && reason.test(error.message));
  }
});
