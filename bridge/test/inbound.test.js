// Inbound: WhatsApp → stub socket → the bridge's outbox → the real moked → `whatsapp.inbound`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StubPhone, eventually, incoming, startBridge, tempDir } from './helpers.js';
import { freePort, startMoked } from './moked.js';

/** moked's `whatsapp.inbound` payloads by WhatsApp message id, once `count` jobs are done. */
async function inboundDone(moked, count) {
  const { status, body } = await moked.api('/api/jobs?kind=whatsapp.inbound&limit=100');
  assert.equal(status, 200, JSON.stringify(body));
  const done = body.jobs.filter((job) => job.state === 'done');
  if (done.length < count) return undefined;
  const payloads = {};
  for (const job of done) {
    const detail = await moked.api(`/api/jobs/${job.id}`);
    payloads[detail.body.payload.data.provider_sid] = detail.body.payload.data;
  }
  return { total: body.total, payloads };
}

test('an inbound message is forwarded to a running moked and becomes a whatsapp.inbound job', async (t) => {
  const moked = await startMoked(t, { dir: tempDir(t) });
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone, mokedUrl: moked.url });
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [incoming('3EB0IN0001', 'היי, אפשר פרטים?')] });
  const { total, payloads } = await eventually(() => inboundDone(moked, 1), { what: 'a done whatsapp.inbound job' });
  assert.equal(total, 1);
  assert.deepEqual(
    { ...payloads['3EB0IN0001'], received_at: undefined },
    {
      provider: 'baileys',
      provider_sid: '3EB0IN0001',
      from: '97250****4567@s.whatsapp.net', // masked by moked's operator API
      to: null,
      body: 'היי, אפשר פרטים?',
      media: [],
      profile_name: null,
      received_at: undefined,
    },
  );
  await eventually(() => bridge.outbox.size === 0 && bridge.forwarder.delivered === 1, { what: 'the outbox to empty' });
});

test('moked down: inbound messages are retried with backoff until moked accepts them', async (t) => {
  const port = await freePort();
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone, mokedUrl: `http://127.0.0.1:${port}` });
  phone.socket.emit('messages.upsert', {
    type: 'notify',
    messages: [incoming('3EB0DOWN01', 'ראשון'), incoming('3EB0DOWN02', 'שני')],
  });
  await eventually(() => bridge.forwarder.attempts >= 3, { what: 'three failed attempts' });
  assert.match(bridge.forwarder.lastError, /network/);
  assert.equal(bridge.outbox.size, 2, 'nothing leaves the outbox while moked is down');
  const moked = await startMoked(t, { dir: tempDir(t), port });
  const { total, payloads } = await eventually(() => inboundDone(moked, 2), { what: 'two done inbound jobs' });
  assert.equal(total, 2);
  assert.deepEqual(Object.keys(payloads).sort(), ['3EB0DOWN01', '3EB0DOWN02']);
  assert.equal(payloads['3EB0DOWN02'].body, 'שני');
  await eventually(() => bridge.outbox.size === 0, { what: 'the outbox to empty' });
});

test('inbound messages not yet accepted survive a bridge restart and are delivered after it', async (t) => {
  const port = await freePort();
  const mokedUrl = `http://127.0.0.1:${port}`;
  const dataDir = tempDir(t);
  const phone = new StubPhone();
  const before = await startBridge(t, { dataDir, phone, mokedUrl });
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [incoming('3EB0KEEP01', 'לפני')] });
  await eventually(() => before.forwarder.attempts >= 1, { what: 'a failed attempt' });
  await before.stopOnce();

  const after = await startBridge(t, { dataDir, phone, mokedUrl });
  assert.equal(after.outbox.size, 1, 'the restarted bridge found the undelivered message');
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [incoming('3EB0KEEP02', 'אחרי')] });
  const moked = await startMoked(t, { dir: tempDir(t), port });
  const { total, payloads } = await eventually(() => inboundDone(moked, 2), { what: 'two done inbound jobs' });
  assert.equal(total, 2);
  assert.deepEqual(Object.keys(payloads).sort(), ['3EB0KEEP01', '3EB0KEEP02']);
  await eventually(() => after.outbox.size === 0, { what: 'the outbox to empty' });
});

test('a message WhatsApp delivers twice becomes one job', async (t) => {
  const moked = await startMoked(t, { dir: tempDir(t) });
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone, mokedUrl: moked.url });
  const message = incoming('3EB0TWICE1', 'פעמיים');
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [message] });
  await eventually(() => bridge.outbox.size === 0, { what: 'the first delivery' });
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [message] });
  await eventually(() => bridge.forwarder.delivered === 2, { what: 'the second delivery' });
  const { total } = await eventually(() => inboundDone(moked, 1), { what: 'the job' });
  assert.equal(total, 1);
});
