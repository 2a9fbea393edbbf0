// Outbound end to end: moked's send API → whatsapp.send job → the bridge → stub socket → sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JID, boom } from './helpers.js';
import { sendThroughMoked, startPair } from './moked.js';

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
