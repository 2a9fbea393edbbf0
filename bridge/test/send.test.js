// `POST /sendMessage` against a stubbed Baileys socket: the contract of docs/BAILEYS.md.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { JID, SECRET, StubPhone, boom, send, startBridge, tempDir } from './helpers.js';

test('a repeated Idempotency-Key answers the first message_id and sends once', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const first = await send(bridge, { key: 'msg-1' });
  const again = await send(bridge, { key: 'msg-1' });
  assert.equal(first.status, 200);
  assert.equal(first.body.ok, true);
  assert.match(first.body.message_id, /^3EB0[0-9A-F]{18}$/);
  assert.deepEqual(again, { ...again, status: 200, body: first.body });
  assert.deepEqual(phone.sent.map((s) => [s.jid, s.text]), [[JID, 'שלום, קיבלנו את פנייתך']]);
});

test('the same key sent twice at once shares one send', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  // WhatsApp answers only once all three requests were read, so they overlap for certain.
  const release = phone.hold();
  let read = 0;
  bridge.server.on('request', (req) =>
    req.on('end', () => {
      read += 1;
      if (read === 3) setImmediate(release);
    }),
  );
  const answers = await Promise.all([send(bridge, { key: 'k' }), send(bridge, { key: 'k' }), send(bridge, { key: 'k' })]);
  assert.deepEqual(new Set(answers.map((a) => a.body.message_id)).size, 1);
  assert.equal(phone.sent.length, 1);
});

test('keys and their first answers survive a bridge restart', async (t) => {
  const phone = new StubPhone();
  const dataDir = tempDir(t);
  const before = await startBridge(t, { dataDir, phone });
  const first = await send(before, { key: 'restart-key' });
  await before.stopOnce();
  const after = await startBridge(t, { dataDir, phone });
  const again = await send(after, { key: 'restart-key' });
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, first.body);
  assert.equal(phone.sent.length, 1, 'the restarted bridge must not send again');
  // A different key still sends.
  assert.equal((await send(after, { key: 'other-key' })).status, 200);
  assert.equal(phone.sent.length, 2);
});

test('an attempt that failed after sending is retried under the same WhatsApp id, then answered from memory', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  phone.failNext(boom('Timed Out', 408), { afterSending: true });
  const failed = await send(bridge, { key: 'ambiguous' });
  assert.equal(failed.status, 500, 'an error that may follow a send is ambiguous: 5xx');
  assert.equal(failed.body.ok, false);
  const retried = await send(bridge, { key: 'ambiguous' });
  assert.equal(retried.status, 200);
  assert.deepEqual(phone.sent.map((s) => s.id), [retried.body.message_id, retried.body.message_id]);
  assert.equal((await send(bridge, { key: 'ambiguous' })).body.message_id, retried.body.message_id);
  assert.equal(phone.sent.length, 2);
});

test('keys are kept for the TTL and forgotten after it', async (t) => {
  const phone = new StubPhone();
  let clock = 1_000_000;
  const ttlMs = 24 * 60 * 60 * 1000;
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone, now: () => clock, ttlMs });
  const first = await send(bridge, { key: 'ttl' });
  clock += ttlMs - 1;
  assert.equal((await send(bridge, { key: 'ttl' })).body.message_id, first.body.message_id);
  assert.equal(phone.sent.length, 1);
  clock += 1;
  assert.notEqual((await send(bridge, { key: 'ttl' })).body.message_id, first.body.message_id);
  assert.equal(phone.sent.length, 2);
});

test('a missing or wrong secret is refused with 403 before the body is read', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  for (const secret of [null, '', 'wrong', `${SECRET}x`, SECRET.slice(0, -1)]) {
    const answer = await send(bridge, { key: 'k', secret, raw: 'not even json' });
    assert.equal(answer.status, 403, `secret ${JSON.stringify(secret)}`);
    assert.deepEqual(answer.body, { ok: false, error: 'forbidden' });
  }
  assert.equal(phone.sent.length, 0);
});

test('malformed requests get 400 with a reason and send nothing', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const cases = [
    [{ key: 'k', raw: '{"to":' }, /not JSON/],
    [{ key: 'k', raw: '[1,2]' }, /JSON object/],
    [{ key: 'k', raw: JSON.stringify({ text: 'hi' }) }, /`to` is missing/],
    [{ key: 'k', to: '+972501234567' }, /not a WhatsApp JID/],
    [{ key: 'k', to: '972501234567' }, /not a WhatsApp JID/],
    [{ key: 'k', text: '  ' }, /`text`/],
    [{ key: 'k', text: 'א'.repeat(1601) }, /over 1600/],
    [{}, /Idempotency-Key/],
  ];
  for (const [request, reason] of cases) {
    const answer = await send(bridge, request);
    assert.equal(answer.status, 400, JSON.stringify(request));
    assert.equal(answer.body.ok, false);
    assert.match(answer.body.error, reason);
  }
  assert.equal((await send(bridge, { key: 'k', text: 'א'.repeat(1600) })).status, 200);
  assert.equal(phone.sent.length, 1);
});

test('a body over 64 KiB gets 413', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const answer = await send(bridge, { key: 'k', raw: JSON.stringify({ to: JID, text: 'x'.repeat(70_000) }) });
  assert.equal(answer.status, 413);
  assert.equal(phone.sent.length, 0);
});

test('a key reused for a different message gets 422 and sends nothing more', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  await send(bridge, { key: 'k', text: 'first' });
  const answer = await send(bridge, { key: 'k', text: 'second' });
  assert.equal(answer.status, 422);
  assert.equal(phone.sent.length, 1);
});

test('not paired: 503 with Retry-After, nothing sent, and the key stays free', async (t) => {
  const phone = new StubPhone();
  phone.paired = false;
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const answer = await send(bridge, { key: 'k' });
  assert.equal(answer.status, 503);
  assert.equal(answer.headers.get('retry-after'), '5');
  assert.match(answer.body.error, /not paired \(waiting_for_qr\)/);
  phone.socket.emit('connection.update', { connection: 'open' });
  assert.equal((await send(bridge, { key: 'k' })).status, 200);
  assert.equal(phone.sent.length, 1);
});

test('WhatsApp throttling answers 429 with Retry-After; a closed connection 503', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  phone.failNext(boom('rate-overlimit', 429));
  const throttled = await send(bridge, { key: 'a' });
  assert.equal(throttled.status, 429);
  assert.ok(Number(throttled.headers.get('retry-after')) > 0);
  phone.failNext(boom('Connection Closed', 428));
  assert.equal((await send(bridge, { key: 'b' })).status, 503);
  assert.equal(phone.sent.length, 0);
});

test('a torn last line in the key log (a crash mid-write) is skipped on start', async (t) => {
  const phone = new StubPhone();
  const dataDir = tempDir(t);
  const before = await startBridge(t, { dataDir, phone });
  const first = await send(before, { key: 'kept' });
  await before.stopOnce();
  fs.appendFileSync(path.join(dataDir, 'keys.jsonl'), '{"k":"torn","id":"3EB0');
  const after = await startBridge(t, { dataDir, phone });
  assert.deepEqual((await send(after, { key: 'kept' })).body, first.body);
  assert.equal(phone.sent.length, 1);
});

test('a chunked body over 64 KiB gets 413 too', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const big = new TextEncoder().encode(JSON.stringify({ to: JID, text: 'x'.repeat(70_000) }));
  const body = new ReadableStream({
    start(controller) {
      for (let i = 0; i < big.length; i += 8192) controller.enqueue(big.subarray(i, i + 8192));
      controller.close();
    },
  });
  const response = await fetch(`${bridge.url}/sendMessage`, {
    method: 'POST',
    headers: { 'x-baileys-secret': SECRET, 'idempotency-key': 'k', 'content-type': 'application/json' },
    body,
    duplex: 'half',
  });
  assert.equal(response.status, 413);
  assert.equal(phone.sent.length, 0);
});
