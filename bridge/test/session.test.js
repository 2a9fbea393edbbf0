// Pairing status, the QR endpoint, and which WhatsApp messages count as inbound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SECRET, StubPhone, boom, eventually, incoming, startBridge, tempDir } from './helpers.js';
import { toInbound } from '../src/session.js';

async function health(bridge) {
  const response = await fetch(`${bridge.url}/health`);
  return { status: response.status, body: await response.json() };
}

test('/health tells waiting_for_qr, paired and logged_out apart, and a logout leads to a new QR', async (t) => {
  const phone = new StubPhone();
  phone.paired = false;
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  await eventually(() => bridge.session.status === 'waiting_for_qr', { what: 'a QR code' });
  assert.deepEqual(await health(bridge), {
    status: 503,
    body: { status: 'waiting_for_qr', paired_as: null, outbox: 0, delivered: 0, last_delivery_error: null },
  });

  phone.socket.emit('connection.update', { connection: 'open' });
  const paired = await health(bridge);
  assert.equal(paired.status, 200);
  assert.equal(paired.body.status, 'paired');
  assert.equal(paired.body.paired_as, '9725******00@s.whatsapp.net');

  let resetCalls = 0;
  bridge.session.resetAuth = async () => {
    resetCalls += 1;
  };
  const old = phone.socket;
  old.emit('connection.update', { connection: 'close', lastDisconnect: { error: boom('logged out', 401) } });
  assert.equal((await health(bridge)).body.status, 'logged_out');
  // The credentials are wiped and a new socket shows a new QR code.
  await eventually(() => phone.socket !== old && bridge.session.status === 'waiting_for_qr', { what: 'a new QR' });
  assert.equal(resetCalls, 1);
  assert.equal(old.ended, true);
});

test('a dropped connection reconnects with the same credentials and pairs again', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  const old = phone.socket;
  old.emit('connection.update', { connection: 'close', lastDisconnect: { error: boom('lost', 408) } });
  assert.equal(bridge.session.status, 'connecting');
  await eventually(() => phone.socket !== old && bridge.session.status === 'paired', { what: 'a reconnect' });
  // Events of the old socket no longer count.
  old.emit('connection.update', { qr: 'stale' });
  assert.equal(bridge.session.status, 'paired');
});

test('GET /qr serves the pairing code as PNG only with the secret', async (t) => {
  const phone = new StubPhone();
  phone.paired = false;
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  await eventually(() => bridge.session.qr, { what: 'a QR code' });

  const anonymous = await fetch(`${bridge.url}/qr`);
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get('www-authenticate'), /^Basic/);
  const wrong = await fetch(`${bridge.url}/qr`, { headers: { authorization: `Basic ${btoa('op:wrong')}` } });
  assert.equal(wrong.status, 401);

  for (const headers of [{ authorization: `Basic ${btoa(`op:${SECRET}`)}` }, { 'x-baileys-secret': SECRET }]) {
    const response = await fetch(`${bridge.url}/qr`, { headers });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'image/png');
    const png = Buffer.from(await response.arrayBuffer());
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  }

  phone.socket.emit('connection.update', { connection: 'open' });
  const none = await fetch(`${bridge.url}/qr`, { headers: { 'x-baileys-secret': SECRET } });
  assert.equal(none.status, 404);
  assert.match((await none.json()).error, /paired/);
});

test('only messages from a person in a one-to-one chat are inbound, addressed by phone JID', () => {
  const at = (id, message, key = {}) => ({ ...incoming(id, ''), key: { ...incoming(id, '').key, ...key }, message });
  assert.deepEqual(toInbound(incoming('A1', 'שלום')).body, {
    from: '972501234567@s.whatsapp.net',
    text: 'שלום',
    provider: 'baileys',
    message_id: 'A1',
    timestamp: 1764000000,
  });
  assert.equal(toInbound(at('A2', { extendedTextMessage: { text: 'קישור' } })).body.text, 'קישור');
  assert.equal(toInbound(at('A3', { ephemeralMessage: { message: { conversation: 'נעלם' } } })).body.text, 'נעלם');
  assert.equal(toInbound(at('A4', { imageMessage: { caption: 'תמונה' } })).body.text, 'תמונה');
  assert.equal(toInbound(at('A5', { audioMessage: {} })).body.text, '');
  // A sender addressed by LID: the phone number comes from the alternate JID.
  const lid = toInbound(at('A6', { conversation: 'x' }, { remoteJid: '1234567890@lid', remoteJidAlt: '972521112222@s.whatsapp.net' }));
  assert.equal(lid.body.from, '972521112222@s.whatsapp.net');
  // A device suffix is not part of the number.
  assert.equal(toInbound(at('A7', { conversation: 'x' }, { remoteJid: '972501234567:12@s.whatsapp.net' })).body.from, '972501234567@s.whatsapp.net');

  const skipped = {
    'our own send': at('S1', { conversation: 'x' }, { fromMe: true }),
    'a group': at('S2', { conversation: 'x' }, { remoteJid: '120363@g.us' }),
    'a status update': at('S3', { conversation: 'x' }, { remoteJid: 'status@broadcast' }),
    'a LID without number': at('S4', { conversation: 'x' }, { remoteJid: '1234567890@lid' }),
    'a reaction': at('S5', { reactionMessage: { text: '👍' } }),
    'a protocol message': at('S6', { protocolMessage: { type: 0 } }),
    'no id': at(undefined, { conversation: 'x' }),
  };
  for (const [what, message] of Object.entries(skipped)) {
    assert.ok(toInbound(message).skip, what);
  }
});

test('only messages that just arrived (notify) go to the outbox, not history (append)', async (t) => {
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  phone.socket.emit('messages.upsert', { type: 'append', messages: [incoming('H1', 'ישן')] });
  phone.socket.emit('messages.upsert', { type: 'notify', messages: [incoming('N1', 'חדש'), incoming('F1', 'x', { fromMe: true })] });
  assert.deepEqual([...bridge.outbox.pending.keys()], ['N1']);
});

test('an expired QR code is withdrawn and the next socket brings a new one', async (t) => {
  const phone = new StubPhone();
  phone.paired = false;
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone });
  await eventually(() => bridge.session.qr === 'stub-qr-1', { what: 'a QR code' });
  const old = phone.socket;
  old.emit('connection.update', { connection: 'close', lastDisconnect: { error: boom('QR refs attempts ended', 408) } });
  assert.equal(bridge.session.qr, null, 'a stale code is not served');
  assert.equal(bridge.session.status, 'waiting_for_qr');
  await eventually(() => phone.socket !== old && bridge.session.qr, { what: 'a new QR code' });
});
