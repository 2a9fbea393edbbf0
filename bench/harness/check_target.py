#!/usr/bin/env python3
"""Checks that an intake under benchmark keeps the webhook contract before it is loaded.

usage: check_target.py BASE_URL [--token T] [--sign-base URL]

Signs with a few lines of standard library (Twilio's algorithm: base64 HMAC-SHA1 over the public
URL followed by every name+value, names sorted) and checks, for /webhook/call_status,
/webhook/whatsapp/status and /webhook/incoming_call: a signed request gets a 2xx (TwiML with a
<Record> on incoming_call) and a wrongly signed one a 403. One line per check; exit 1 on a failure.
"""

import argparse
import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

FORMS = {
    "/webhook/call_status": {"CallStatus": "completed", "From": "+972501234567", "To": "+97233334444"},
    "/webhook/whatsapp/status": {"MessageStatus": "delivered", "To": "whatsapp:+972501234567"},
    "/webhook/incoming_call": {"CallStatus": "ringing", "From": "+972501234567", "To": "+97233334444"},
}


def signature(token, url, form):
    signed = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def post(url, form, sig):
    req = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--token", default="bench-auth-token-0123456789abcdef")
    ap.add_argument("--sign-base", help="the public base URL signatures cover (default BASE)")
    a = ap.parse_args()
    base, sign_base = a.base.rstrip("/"), (a.sign_base or a.base).rstrip("/")
    failed = 0
    for path, fields in FORMS.items():
        sid = ("SM" if "whatsapp" in path else "CA") + uuid.uuid4().hex
        form = dict(fields, **{"MessageSid" if "whatsapp" in path else "CallSid": sid})
        sig = signature(a.token, sign_base + path, form)
        status, body = post(base + path, form, sig)
        ok = 200 <= status < 300 and ("<Record" in body if path.endswith("incoming_call") else True)
        bad_status, _ = post(base + path, form, ("A" if sig[0] != "A" else "B") + sig[1:])
        for what, good, got in (("signed", ok, status), ("wrongly signed -> 403", bad_status == 403, bad_status)):
            print(f"{'ok  ' if good else 'FAIL'} {path} {what}: HTTP {got}")
            failed += not good
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
