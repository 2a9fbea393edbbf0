#!/usr/bin/env python3
"""Posts N signed `POST /webhook/incoming_call` webhooks to a running moked-intake, as Twilio
would: each with a CallSid no other request had, callers drawn from a pool of distinct Israeli
mobile numbers (so the drain creates customers, not one customer N times), the business number
one of a few. Stdlib only; threads with keep-alive connections.

    fill.py URL N [--callers 10000] [--businesses 3] [--token T] [--threads 8]

Prints one line: `FILL requests=N ok=N rps=R seconds=S`; exits 1 when any answer is not 2xx.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import sys
import threading
import time
import urllib.parse
import uuid


def sign(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's signature: base64(HMAC-SHA1(token, url + every name+value, names sorted))."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", help="the intake's base URL, which is also PUBLIC_HOST")
    ap.add_argument("n", type=int)
    ap.add_argument("--callers", type=int, default=10_000)
    ap.add_argument("--businesses", type=int, default=3)
    ap.add_argument("--token", default="bench-auth-token-0123456789abcdef")
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    base = a.url.rstrip("/")
    path = "/webhook/incoming_call"
    u = urllib.parse.urlsplit(base)
    run = uuid.uuid4().hex[:12]
    failures: list[str] = []
    ok = [0]
    lock = threading.Lock()

    def worker(t: int) -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        for i in range(t, a.n, a.threads):
            params = [
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", f"CA{run}{i:020x}"),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("From", f"+97250{i % a.callers:07d}"),
                ("To", f"+9723333{i % a.businesses:04d}"),
                ("CallerCountry", "IL"),
            ]
            body = urllib.parse.urlencode(params)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(a.token, base + path, params),
            }
            conn.request("POST", path, body, headers)
            r = conn.getresponse()
            r.read()
            with lock:
                if 200 <= r.status < 300:
                    ok[0] += 1
                elif len(failures) < 5:
                    failures.append(f"{r.status}")

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(a.threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.monotonic() - start
    print(f"FILL requests={a.n} ok={ok[0]} rps={a.n / secs:.1f} seconds={secs:.2f}")
    if failures:
        print(f"non-2xx answers, first: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
