// Receipts: WhatsApp's status updates of messages moked sent → stub socket `messages.update` →
// the bridge's outbox → the real moked → the message's status moves forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JID, eventually, startBridge } from './helpers.js';
import { sendThroughMoked, startPair } from './moked.js';
import { WA_STATUS, toReceipt } from '../src/session.js';

/** A Baileys `messages.update` entry: message `id` in the chat with `JID` reached `status`. */
function statusUpdate(id, status, { fromMe = true, remoteJid = JID, ...update } = {}) {
  return { key: { remoteJid, fromMe, id }, update: { status, ...update } };
}

/** moked's view of message `id` once `check` accepts it. */
function messageWhen(moked, id, check, what) {
  return eventually(
    async () => {
      const { status, body } = await moked.api(`/api/whatsapp/messages/${id}`);
      return status === 200 && check(body) && body;
    },
    { what },
  );
}

/** moked's `whatsapp.status` jobs once all of them are done. */
async function statusJobsDone(moked) {
  const { status, body } = await moked.api('/api/jobs?kind=whatsapp.status&limit=100');
  assert.equal(status, 200, JSON.stringify(body));
  return body.jobs.every((job) => job.state === 'done') && body.jobs;
}

test('WhatsApp statuses map to moked receipts; PENDING and unknown statuses are not sent', () => {
  const now = () => 1_764_000_123_456;
  const receipt = (status, extra) => toReceipt(statusUpdate('3EB0MAP', status, extra), now).body;
  assert.deepEqual(receipt(WA_STATUS.DELIVERY_ACK, { messageTimestamp: 1_764_000_000 }), {
    type: 'receipt',
    message_id: '3EB0MAP',
    status: 'delivered',
    timestamp: 1_764_000_000,
  });
  assert.equal(receipt(WA_STATUS.SERVER_ACK).status, 'sent');
  assert.equal(receipt(WA_STATUS.READ).status, 'read');
  assert.equal(receipt(WA_STATUS.PLAYED).status, 'read');
  assert.equal(receipt('DELIVERY_ACK').status, 'delivered', 'enum names are read too');
  assert.equal(receipt(WA_STATUS.READ).timestamp, 1_764_000_123, 'no receipt time: now');
  assert.deepEqual(receipt(WA_STATUS.ERROR, { messageStubParameters: ['479'] }), {
    type: 'receipt',
    message_id: '3EB0MAP',
    status: 'failed',
    timestamp: 1_764_000_123,
    error: 'WhatsApp refused the message (479)',
  });
  for (const [status, extra, reason] of [
    [WA_STATUS.PENDING, {}, /not reported/],
    [9, {}, /not reported/],
    [undefined, { message: {} }, /no status change/],
    [WA_STATUS.READ, { fromMe: false }, /not a message this number sent/],
    [WA_STATUS.READ, { remoteJid: '120363000000000000@g.us' }, /not a one-to-one chat/],
    [WA_STATUS.READ, { remoteJid: 'status@broadcast' }, /not a one-to-one chat/],
  ]) {
    const { body, skip } = toReceipt(statusUpdate('3EB0MAP', status, extra), now);
    assert.equal(body, undefined, `${status} ${JSON.stringify(extra)}`);
    assert.match(skip, reason);
  }
});

test('a delivery and a read receipt reach moked and the message sent through it ends read', async (t) => {
  const { phone, bridge, moked } = await startPair(t);
  const sent = await sendThroughMoked(moked, 'שלום, קיבלנו את פנייתך');
  const deliveredAt = Math.floor(Date.now() / 1000) - 30;
  phone.socket.emit('messages.update', [
    statusUpdate(sent.provider_sid, WA_STATUS.DELIVERY_ACK, { messageTimestamp: deliveredAt }),
  ]);
  const delivered = await messageWhen(moked, sent.id, (m) => m.status === 'delivered', 'the message to turn delivered');
  // The receipt's own time, not the time moked heard of it.
  assert.equal(Date.parse(delivered.delivered_at), deliveredAt * 1000);
  assert.equal(delivered.read_at, null);

  phone.socket.emit('messages.update', [statusUpdate(sent.provider_sid, WA_STATUS.READ)]);
  const read = await messageWhen(moked, sent.id, (m) => m.status === 'read', 'the message to turn read');
  assert.ok(read.read_at, JSON.stringify(read));
  assert.equal(read.delivered_at, delivered.delivered_at, 'delivered_at is set once');
  await eventually(() => bridge.outbox.size === 0 && bridge.forwarder.delivered === 2, { what: 'the outbox to empty' });
});

test("a status update of someone else's message is not forwarded", async (t) => {
  const { phone, bridge, moked } = await startPair(t);
  const sent = await sendThroughMoked(moked, 'הודעה שלנו');
  // Another device of ours read the customer's message: the same event, `fromMe: false`.
  phone.socket.emit('messages.update', [statusUpdate('3EB0THEIRS1', WA_STATUS.READ, { fromMe: false })]);
  // Our own receipt after it: the outbox is first in, first out, so once this one is in moked
  // the other would have been too.
  phone.socket.emit('messages.update', [statusUpdate(sent.provider_sid, WA_STATUS.DELIVERY_ACK)]);
  await messageWhen(moked, sent.id, (m) => m.status === 'delivered', 'our message to turn delivered');
  assert.equal(bridge.forwarder.delivered, 1);
  const jobs = await eventually(() => statusJobsDone(moked), { what: 'the status jobs to finish' });
  assert.equal(jobs.length, 1, `one whatsapp.status job: ${JSON.stringify(jobs)}`);
});

test('moked down: a receipt is retried with backoff, kept across a bridge restart, and applied', async (t) => {
  const pair = await startPair(t);
  const sent = await sendThroughMoked(pair.moked, 'נשלחה לפני ההשבתה');
  await pair.moked.stop();

  pair.phone.socket.emit('messages.update', [
    statusUpdate(sent.provider_sid, WA_STATUS.DELIVERY_ACK),
    statusUpdate(sent.provider_sid, WA_STATUS.READ),
    statusUpdate(sent.provider_sid, WA_STATUS.PLAYED), // another `read`: waits once
  ]);
  await eventually(() => pair.bridge.forwarder.attempts >= 3, { what: 'three failed attempts' });
  assert.match(pair.bridge.forwarder.lastError, /network/);
  assert.equal(pair.bridge.outbox.size, 2, 'both receipts of the message wait while moked is down');
  await pair.bridge.stopOnce();

  const after = await startBridge(t, {
    dataDir: pair.bridgeDir,
    phone: pair.phone,
    mokedUrl: `http://127.0.0.1:${pair.port}`,
  });
  assert.equal(after.outbox.size, 2, 'the restarted bridge found the receipts');
  const moked = await pair.restart();
  const read = await messageWhen(moked, sent.id, (m) => m.status === 'read', 'the message to turn read');
  assert.ok(read.delivered_at && read.read_at, JSON.stringify(read));
  await eventually(() => after.outbox.size === 0, { what: 'the outbox to empty' });
});
