// Benchmark peer "express-bullmq": what a Node.js team would write for moked's intake.
// Express 5, the official `twilio` package's validateRequest, one BullMQ queue in Redis.
//
//   node server.js      env: PORT (8002), TWILIO_AUTH_TOKEN, REDIS_HOST (127.0.0.1),
//                       REDIS_PORT (6391), PUBLIC_BASE_URL (the URL Twilio signs; default the
//                       URL the request came in on), CLUSTER (node processes, default 1)
//
// POST /webhook/call_status, /webhook/whatsapp/status: signature check (403 when wrong), one job
// {kind, sid, status} on the queue "intake", 204. POST /webhook/incoming_call: signature check,
// then TwiML with <Record> (no job: moked queues one there, the harness knows).
'use strict';
const cluster = require('node:cluster');

const processes = Number(process.env.CLUSTER || 1);
if (processes > 1 && cluster.isPrimary) {
  for (let i = 0; i < processes; i++) cluster.fork();
  cluster.on('exit', () => process.exit(1)); // one gone = a broken measurement
  return;
}

const express = require('express');
const twilio = require('twilio');
const { Queue } = require('bullmq');

const token = process.env.TWILIO_AUTH_TOKEN || 'bench-auth-token-0123456789abcdef';
const publicBase = (process.env.PUBLIC_BASE_URL || '').replace(/\/+$/, '');
const queue = new Queue('intake', {
  connection: { host: process.env.REDIS_HOST || '127.0.0.1', port: Number(process.env.REDIS_PORT || 6391) },
});
const twiml =
  '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="he-IL">שלום</Say>' +
  '<Record action="/webhook/handle_recording"/></Response>';

const app = express();
app.disable('x-powered-by');
app.use(express.urlencoded({ extended: false }));

const verified = (req, res, next) => {
  const url = (publicBase || `${req.protocol}://${req.get('host')}`) + req.originalUrl;
  const ok = twilio.validateRequest(token, req.get('X-Twilio-Signature') || '', url, req.body || {});
  if (ok) next();
  else res.status(403).end();
};

const enqueue = (kind, sidField, statusField) => async (req, res) => {
  await queue.add(kind, { kind, sid: req.body[sidField], status: req.body[statusField] });
  res.status(204).end();
};

app.post('/webhook/call_status', verified, enqueue('call_status', 'CallSid', 'CallStatus'));
app.post('/webhook/whatsapp/status', verified, enqueue('whatsapp_status', 'MessageSid', 'MessageStatus'));
app.post('/webhook/incoming_call', verified, (req, res) => res.type('text/xml').send(twiml));

app.listen(Number(process.env.PORT || 8002), '127.0.0.1');
