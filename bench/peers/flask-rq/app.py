"""Benchmark peer "flask-rq": what a Python team would write for moked's intake.

Flask, the official `twilio` package's RequestValidator, one RQ queue in Redis; served by
gunicorn with 2 sync workers (from this folder):

    gunicorn -w 2 -k sync -b 127.0.0.1:8001 app:app

Env: TWILIO_AUTH_TOKEN, REDIS_URL (redis://127.0.0.1:6391/0), PUBLIC_BASE_URL (the URL Twilio
signs; default the URL the request came in on).

POST /webhook/call_status, /webhook/whatsapp/status: signature check (403 when wrong), one job
jobs.handle(kind, sid, status) on the queue "intake", 204. POST /webhook/incoming_call: signature
check, then TwiML with <Record> (no job).
"""

import os

from flask import Flask, Response, request
from redis import Redis
from rq import Queue
from twilio.request_validator import RequestValidator

import jobs

TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "bench-auth-token-0123456789abcdef")
PUBLIC_BASE = os.environ.get("PUBLIC_BASE_URL", "").rstrip("/")
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="he-IL">שלום</Say>'
    '<Record action="/webhook/handle_recording"/></Response>'
)

validator = RequestValidator(TOKEN)
queue = Queue("intake", connection=Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6391/0")))
app = Flask(__name__)


def signed():
    url = PUBLIC_BASE + request.full_path.rstrip("?") if PUBLIC_BASE else request.url
    return validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", ""))


def enqueue(kind, sid_field, status_field):
    if not signed():
        return Response(status=403)
    queue.enqueue(jobs.handle, kind, request.form.get(sid_field), request.form.get(status_field))
    return Response(status=204)


@app.post("/webhook/call_status")
def call_status():
    return enqueue("call_status", "CallSid", "CallStatus")


@app.post("/webhook/whatsapp/status")
def whatsapp_status():
    return enqueue("whatsapp_status", "MessageSid", "MessageStatus")


@app.post("/webhook/incoming_call")
def incoming_call():
    if not signed():
        return Response(status=403)
    return Response(TWIML, mimetype="text/xml")
