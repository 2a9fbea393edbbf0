#!/usr/bin/env python3
"""Writes the OpenAPI document Prism serves: Twilio's official v2010 spec plus what a mock needs.

usage: make_mock_spec.py [--spec tests/twilio/spec/twilio_api_v2010.json] --out FILE

The official document (tests/twilio/spec/, unmodified) declares only the success answers and no
recording media. The mock needs three more things, added here and nothing else:
  * Twilio's REST error body {code, message, more_info, status} as the declared answer for
    401/429/500/503 on every operation the workers call, 400 on the message create and 404 on
    the by-Sid ones, so that Prism answers a missing Basic auth with Twilio's 20003 body (not its
    own problem+json) and `Prefer: code=NNN` can force any of them; 429 carries Retry-After;
  * GET .../Recordings/{Sid}.wav and .mp3 answering 200 with a small real WAV (8 kHz, 8-bit mono)
    and a bare ID3 header, the media URLs the voice worker downloads.
Standard library only; scripts/test writes the result under target/.
"""

import argparse
import copy
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"

# Twilio error codes of the answers the mock can give (https://www.twilio.com/docs/errors/CODE).
TWILIO_ERRORS = {
    400: (21604, "A 'To' phone number is required."),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}
EVERYWHERE = (401, 429, 500, 503)
# The operations the workers call, with the statuses they may see besides EVERYWHERE.
CALLED = [
    ("/Messages.json", "post", (400,)),
    ("/Messages.json", "get", ()),
    ("/Messages/{Sid}.json", "get", (404,)),
    ("/Calls/{Sid}.json", "get", (404,)),
    ("/Recordings/{Sid}.json", "get", (404,)),
    ("/Recordings/{Sid}.json", "delete", (404,)),
]


def twilio_error(status):
    code, message = TWILIO_ERRORS[status]
    example = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    answer = {
        "description": f"Twilio error {code}",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/twilio_error"}, "example": example}
        },
    }
    if status == 429:  # clients must honour it
        answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "example": 1}}
    return answer


def small_wav():
    """80 samples of silence as a WAV. Every byte is below 0x80, so the file survives as a JSON
    string example and Prism sends it byte for byte."""
    samples = b"\x7f" * 80
    chunks = (
        b"WAVE"
        + struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8)
        + struct.pack("<4sI", b"data", len(samples))
        + samples
    )
    return (b"RIFF" + struct.pack("<I", len(chunks)) + chunks).decode("ascii")


# An ID3v2.4 header with no frames: a file an MP3 sniffer recognises.
ID3_HEADER = "ID3\x04\x00\x00\x00\x00\x00\x00"


def media(spec, ext, mime, example):
    """The GET of a recording's media, with the path parameters of the recording fetch."""
    fetch = spec["paths"][ACCOUNT + "/Recordings/{Sid}.json"]["get"]
    answers = {
        "200": {
            "description": f"the recording as {ext}",
            "content": {mime: {"schema": {"type": "string", "format": "binary"}, "example": example}},
        }
    }
    answers.update({str(s): twilio_error(s) for s in (404, *EVERYWHERE)})
    return {
        "get": {
            "operationId": f"FetchRecordingMedia{ext.upper()}",
            "summary": "Recording media (not in Twilio's document; added for the mock)",
            "parameters": [copy.deepcopy(p) for p in fetch["parameters"] if p["in"] == "path"],
            "security": copy.deepcopy(fetch.get("security", [{"accountSid_authToken": []}])),
            "responses": answers,
        }
    }


def mock_spec(official):
    spec = copy.deepcopy(official)
    spec["info"]["title"] += " (moked test mock)"
    spec["components"]["schemas"]["twilio_error"] = {
        "type": "object",
        "required": ["code", "message", "more_info", "status"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "more_info": {"type": "string"},
            "status": {"type": "integer"},
        },
    }
    for path, method, extra in CALLED:
        answers = spec["paths"][ACCOUNT + path][method]["responses"]
        for status in (*extra, *EVERYWHERE):
            answers.setdefault(str(status), twilio_error(status))
    spec["paths"][ACCOUNT + "/Recordings/{Sid}.wav"] = media(spec, "wav", "audio/x-wav", small_wav())
    spec["paths"][ACCOUNT + "/Recordings/{Sid}.mp3"] = media(spec, "mp3", "audio/mpeg", ID3_HEADER)
    return spec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=os.path.join(HERE, "spec", "twilio_api_v2010.json"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.spec, encoding="utf-8") as f:
        spec = mock_spec(json.load(f))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = f"{a.out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))
    os.replace(tmp, a.out)  # parallel writers never leave a half-written spec for Prism


if __name__ == "__main__":
    main()
