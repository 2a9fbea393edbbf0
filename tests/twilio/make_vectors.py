#!/usr/bin/env python3
"""Writes the X-Twilio-Signature test vectors from their cases, signed by Twilio's Python SDK.

usage: make_vectors.py [--cases tests/twilio/vector-cases.json]
                       [--out jobs/tests/data/signature-vectors.json] [--check]

Each case (vector-cases.json) states a request as the server receives it (`token`, `url`,
`params` or a raw JSON `body`, `algorithm`), what Twilio signed (`signed_url`; null for a
deliberately wrong signature, which the case then gives literally as `signature`) and the verdict
a strict validator must reach (`valid`). For every case this script
  1. computes `signature` with the SDK's RequestValidator.compute_signature over `signed_url`
     (and the params; none in JSON mode), and checks that a plain HMAC over the documented
     signed string agrees;
  2. checks that the SDK's RequestValidator.validate on the URL *as received* reaches `valid`
     (JSON mode: the URL must carry bodySHA256; without it nothing authenticates the body);
  3. adds `form_body`, an urlencoded body that decodes to `params` (form posts only).
It writes the vectors (moked-jobs' unit test reads them), or with --check compares them to the
committed file and exits 1 when they differ or any case fails (run by scripts/test).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
from urllib.parse import parse_qs, urlencode, urlparse

try:
    import twilio
    from twilio.request_validator import RequestValidator
except ImportError:
    sys.exit("make_vectors.py needs the PyPI package `twilio` (pip install -r tests/twilio/requirements.txt)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = [
    "signed string = url + for each name in sorted order (code point order = byte order of UTF-8), "
    "for each distinct value of that name in sorted order: name + value",
    "signature = base64(HMAC(token, signed string)); compare in constant time",
    "accept if the signature matches the url with its port removed, or with the default port "
    "(:443/:80) added when it has none",
    "JSON mode: if the query has bodySHA256, sign the url alone (no params) and require "
    "hex(sha256(raw body)) == bodySHA256; a raw body without bodySHA256 is rejected",
    "missing or empty header, or empty token: reject",
]


class Form(dict):
    """name -> [values]: the SDK asks getall() for the values of a repeated key."""

    def getall(self, name):
        return self[name]


def plain_hmac(token, url, params, algorithm):
    """The documented algorithm without the SDK (the first two rules)."""
    signed = url + "".join(n + v for n in sorted(params) for v in sorted(set(params[n])))
    digest = hashlib.sha256 if algorithm == "HMAC_SHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), digest).digest()).decode()


def accepted(case, signature):
    """The SDK's verdict on the request as the server receives it."""
    validator = RequestValidator(case["token"])
    if "body" not in case:
        return validator.validate(case["url"], Form(case["params"]), signature, case["algorithm"])
    if "bodySHA256" not in parse_qs(urlparse(case["url"]).query):
        return False
    return validator.validate(case["url"], case["body"], signature, case["algorithm"])


def vector(n, case):
    """(the vector for one case, the problems found with it)."""
    problems = []
    if case.get("signed_url") is not None:
        signed_params = {} if "body" in case else case["params"]
        sig = RequestValidator(case["token"]).compute_signature(
            case["signed_url"], Form(signed_params), case["algorithm"]
        )
        plain = plain_hmac(case["token"], case["signed_url"], signed_params, case["algorithm"])
        if plain != sig:
            problems.append(f"a plain HMAC gives {plain}, the SDK {sig}")
    elif "signature" in case:
        sig = case["signature"]
    else:
        problems.append("a case without signed_url must give its signature")
        sig = ""
    verdict = accepted(case, sig)
    if verdict != case["valid"]:
        problems.append(f"the SDK's validate() says {verdict}, the case says valid={case['valid']}")
    out = {"n": n, "name": case["name"], "source": case["source"]}
    for key in ("token", "url", "signed_url", "params"):
        out[key] = case.get(key)
    if "body" in case:
        out["body"] = case["body"]
    else:
        out["form_body"] = urlencode([(k, v) for k, vs in case["params"].items() for v in vs])
    out.update(algorithm=case["algorithm"], signature=sig, valid=case["valid"])
    if case.get("note"):
        out["note"] = case["note"]
    return out, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "tests/twilio/vector-cases.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "jobs/tests/data/signature-vectors.json"))
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    a = ap.parse_args()
    with open(a.cases, encoding="utf-8") as f:
        cases = json.load(f)
    vectors, failed = [], 0
    for n, case in enumerate(cases["cases"], start=1):
        v, problems = vector(n, case)
        vectors.append(v)
        for p in problems:
            print(f"#{n} {case['name']}: {p}")
        failed += bool(problems)
    doc = {
        "about": "X-Twilio-Signature test vectors, written by tests/twilio/make_vectors.py from "
        "tests/twilio/vector-cases.json: signatures computed and verdicts checked with PyPI "
        f"twilio {twilio.__version__} (RequestValidator).",
        "rules": RULES,
        "vectors": vectors,
    }
    text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    print(f"{len(vectors) - failed} passed, {failed} failed")
    if a.check:
        try:
            with open(a.out, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            print(f"cannot read {a.out}: {e}")
            return 1
        if current != text:
            print(f"{a.out} is not what the cases give: run tests/twilio/make_vectors.py")
            return 1
    elif not failed:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {a.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
