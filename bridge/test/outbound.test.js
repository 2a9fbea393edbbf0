// Outbound end to end: moked's send API → whatsapp.send job → the bridge → stub socket → sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JID, StubPhone, boom, eventually, startBridge, tempDir } from './helpers.js';
import { freePort, startMoked } from './moked.js';

async function startPair(t) {
  const port = await freePort();
  const phone = new StubPhone();
  const bridge = await startBridge(t, { dataDir: tempDir(t), phone, mokedUrl: `http://127.0.0.1:${port}` });
  const moked = await startMoked(t, { dir: tempDir(t), port, bridgeUrl: bridge.url });
  return { phone, bridge, moked };
}

async function sendThroughMoked(moked, body) {
  const accepted = await moked.api('/api/whatsapp/send', {
    method: 'POST',
    body: JSON.stringify({ to: '050-123-4567', body }),
  });
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  return eventually(async () => {
    const { body: message } = await moked.api(`/api/whatsapp/messages/${accepted.body.id}`);
    return message.status === 'sent' && message;
  }, { what: 'the message to turn sent' });
}

test('a send through moked reaches the socket as a JID and comes back as sent with its WhatsApp id', async (t) => {
  const { phone, moked } = await startPair(t);
  const message = await sendThroughMoked(moked, 'שלום, קיבלנו את פנייתך');
  assert.equal(phone.sent.length, 1);
  assert.deepEqual(phone.sent[0], { jid: JID, text: 'שלום, קיבלנו את פנייתך', id: message.provider_sid });
  assert.equal(message.provider, 'baileys');
});

test('an ambiguous send (5xx after sending) is retried by moked with the same key and WhatsApp id', async (t) => {
  const { phone, moked } = await startPair(t);
  phone.failNext(boom('Timed Out', 408), { afterSending: true });
  const message = await sendThroughMoked(moked, 'ניסיון שני');
  // Both attempts carried one WhatsApp id: the recipient sees one message.
  assert.deepEqual(phone.sent.map((s) => s.id), [message.provider_sid, message.provider_sid]);
});
