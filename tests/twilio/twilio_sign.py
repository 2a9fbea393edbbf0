#!/usr/bin/env python3
"""Posts a webhook the way Twilio does, signed by Twilio's official Python SDK.

usage: twilio_sign.py --public-url URL --target URL [--token T] [-p NAME=VALUE ...]
                      [--idem KEY] [--bad-signature | --no-signature] [--expect STATUS]

The signature (X-Twilio-Signature) is computed by twilio.request_validator.RequestValidator over
--public-url, the URL Twilio is configured to call; the request itself goes to --target (the
server under test on 127.0.0.1). The body is the form of the -p pairs in the order given
(repeat a name for a repeated key; an empty value is sent and signed too). Headers are Twilio's:
a urlencoded UTF-8 form, User-Agent TwilioProxy/1.1 and I-Twilio-Idempotency-Token (random
unless --idem). Prints "HTTP <status> <content-type>" and the body.

Exit status: 0, or 1 when --expect names another status; 2 when nothing could be sent.
"""

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

try:
    from twilio.request_validator import RequestValidator
except ImportError:
    sys.exit("twilio_sign.py needs the PyPI package `twilio` (pip install -r tests/twilio/requirements.txt)")


class Form(dict):
    """name -> [values]: the SDK asks getall() for the values of a repeated key."""

    def getall(self, name):
        return self[name]


def signature(token, public_url, pairs):
    form = Form()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return RequestValidator(token).compute_signature(public_url, form)


def pair(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public-url", required=True, help="the URL Twilio signs (PUBLIC_HOST + path)")
    ap.add_argument("--target", required=True, help="where the request is sent")
    ap.add_argument("--token", default=os.environ.get("TWILIO_AUTH_TOKEN"), help="Auth Token")
    ap.add_argument("-p", dest="pairs", type=pair, action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--idem", help="I-Twilio-Idempotency-Token (the same one twice is a redelivery)")
    bad = ap.add_mutually_exclusive_group()
    bad.add_argument("--bad-signature", action="store_true", help="send a signature that cannot match")
    bad.add_argument("--no-signature", action="store_true", help="send no X-Twilio-Signature")
    ap.add_argument("--expect", type=int, metavar="STATUS", help="exit 1 unless the answer has it")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    if not a.token:
        ap.error("--token or $TWILIO_AUTH_TOKEN is required")

    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": a.idem or str(uuid.uuid4()),
    }
    if not a.no_signature:
        sig = signature(a.token, a.public_url, a.pairs)
        # Flipping one base64 character keeps the shape of a real signature.
        headers["X-Twilio-Signature"] = ("A" if sig[0] != "A" else "B") + sig[1:] if a.bad_signature else sig
    body = urllib.parse.urlencode(a.pairs).encode("utf-8")
    request = urllib.request.Request(a.target, data=body, headers=headers, method="POST")
    # The target is local: never send it through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=a.timeout) as resp:
            status, ctype, answer = resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        status, ctype, answer = e.code, e.headers.get("Content-Type", ""), e.read()
    except (urllib.error.URLError, OSError) as e:
        print(f"cannot send to {a.target}: {e}", file=sys.stderr)
        return 2
    print(f"HTTP {status} {ctype}")
    print(answer.decode("utf-8", "replace"))
    if a.expect is not None and status != a.expect:
        print(f"expected HTTP {a.expect}, got {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
