#!/usr/bin/env python3
"""Checks a TwiML document against the TwiML model of Twilio's official Python SDK.

usage: twiml_check.py [FILE|-] [--kind voice|messaging]    (default: stdin, kind guessed)
       twiml_check.py --self-test                          (the checker's own known-good/bad cases)

Twilio publishes no schema for TwiML; the PyPI `twilio` package's classes
(twilio.twiml.voice_response, twilio.twiml.messaging_response) are generated from Twilio's own
TwiML definitions, so they are the oracle. The model is read from the installed SDK: every method
of a TwiML class that nests a child is called once with a marker value per parameter, and the
child it returns tells its tag, which parameters became attributes (as the SDK spells them:
finishOnKey, xml:lang ...), which one became the element's text, and whether that text is a
required argument. The document then passes when it is well-formed, its root is <Response>, and
every element, attribute and text node is one the model allows at that place. Attribute values
are not checked (the SDK does not check them either).

Exit status: 0 valid, 1 invalid (one line per problem), 2 usage or input error.
"""

import argparse
import inspect
import sys
import xml.etree.ElementTree as ET

try:
    from twilio.twiml import TwiML, messaging_response, voice_response
except ImportError:
    sys.exit("twiml_check.py needs the PyPI package `twilio` (pip install -r tests/twilio/requirements.txt)")

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Methods of the TwiML base class that nest arbitrary things; they are not part of the model.
GENERIC = {"append", "nest", "add_child", "add_text", "to_xml", "xml"}


class Element:
    """What the SDK allows for one element: its children (tag -> Element) and attributes."""

    def __init__(self):
        self.children = {}
        self.attrs = set()
        self.text = False  # may carry text
        self.text_required = False


def child_factories(cls):
    """(method, its named parameters) for every method of `cls` that may nest a child element."""
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in GENERIC:
            continue
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        yield fn, params


def marker(i):
    # Shaped like a language code ("ab-AB") because the SDK reformats `language` arguments and
    # refuses anything else; distinct per parameter so each attribute maps back to its parameter.
    a, b = chr(ord("a") + i // 26), chr(ord("a") + i % 26)
    return f"{a}{b}-{a.upper()}{b.upper()}"


def build_model(root_cls):
    """The Element tree reachable from `root_cls` (VoiceResponse or MessagingResponse)."""
    elements = {}  # class -> Element; classes are shared between parents (e.g. <Say> in <Gather>)

    def visit(cls):
        if cls in elements:
            return elements[cls]
        element = elements[cls] = Element()
        for fn, params in child_factories(cls):
            args = {p.name: marker(i) for i, p in enumerate(params)}
            try:
                child = _call(cls, fn, args)
            except Exception:  # not a nesting method (or one that refuses markers): not a child
                continue
            if not isinstance(child, TwiML) or type(child) is TwiML:
                continue
            by_value = {v: k for k, v in args.items()}
            spec = visit(type(child))
            element.children[child.name] = spec
            spec.attrs.update(a for a, v in child.attrs.items() if v in by_value)
            if child.value is not None and child.value in by_value:
                spec.text = True
                first = params[0] if params else None
                if first is not None and by_value[child.value] == first.name:
                    spec.text_required = spec.text_required or first.default is inspect.Parameter.empty
        return element

    return visit(root_cls)


def _call(cls, fn, args):
    """Calls `fn` on a fresh instance of `cls` (built without arguments where possible)."""
    try:
        parent = cls()
    except TypeError:  # elements whose text is a required argument
        parent = cls(marker(0))
    return fn(parent, **args)


MODELS = {
    "voice": build_model(voice_response.VoiceResponse),
    "messaging": build_model(messaging_response.MessagingResponse),
}


def problems(root, model):
    """Every place where the document leaves the SDK's model."""
    found = []

    def walk(node, spec, where):
        for attr in node.attrib:
            name = "xml:lang" if attr == XML_LANG else attr
            if name not in spec.attrs:
                found.append(f"{where}: attribute {name!r} is not allowed")
        text = (node.text or "").strip()
        if text and not spec.text:
            found.append(f"{where}: text {text[:30]!r} is not allowed here")
        if not text and spec.text_required and len(node) == 0:
            found.append(f"{where}: text is required")
        for child in node:
            here = f"{where}/{child.tag}"
            if (child.tail or "").strip() and not spec.text:
                found.append(f"{here}: text after it is not allowed")
            if child.tag not in spec.children:
                found.append(f"{here}: <{child.tag}> is not allowed in <{node.tag}>")
                continue
            walk(child, spec.children[child.tag], here)

    if root.tag != "Response":
        return [f"the root is <{root.tag}>, not <Response>"]
    walk(root, model, "/Response")
    return found


def guess_kind(root):
    """The model that knows more of the top-level elements (ties go to voice)."""
    known = {k: sum(child.tag in m.children for child in root) for k, m in MODELS.items()}
    return "messaging" if known["messaging"] > known["voice"] else "voice"


def check(text, kind=None):
    """(kind, problems) for one document."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        return kind or "voice", [f"not well-formed XML: {e}"]
    kind = kind or guess_kind(root)
    return kind, problems(root, MODELS[kind])


# The checker's own cases: documents it must accept, and classic mistakes it must refuse.
SELF_TEST = [
    ("voice", True, '<Response><Say language="he-IL" voice="Google.he-IL-Standard-A">שלום</Say>'
     '<Record action="/webhook/handle_recording" maxLength="120" playBeep="true" '
     'recordingStatusCallback="/s" recordingStatusCallbackEvent="completed"/></Response>'),
    ("voice", True, '<Response><Gather numDigits="1" action="/g"><Play>https://x/a.mp3</Play>'
     '</Gather><Redirect method="POST">/again</Redirect></Response>'),
    ("voice", True, '<Response><Reject reason="busy"/></Response>'),
    ("messaging", True, "<Response/>"),
    ("messaging", True, '<Response><Message to="+972501234567"><Body>hi</Body></Message></Response>'),
    ("voice", False, '<Response><Say lang="he-IL">x</Say></Response>'),
    ("voice", False, '<Response><Record maxlength="5"/></Response>'),
    ("voice", False, '<Response><Record recordingStatusCallBack="/s"/></Response>'),
    ("voice", False, "<Response><Gather><Record/></Gather></Response>"),
    ("voice", False, "<Response><Message>x</Message></Response>"),
    ("voice", False, "<Response><Pause>3</Pause></Response>"),
    ("voice", False, "<Response><Redirect/></Response>"),
    ("voice", False, "<Say>x</Say>"),
    ("voice", False, "<Response><Say>x</Response>"),
]


def self_test():
    failures = 0
    for kind, valid, doc in SELF_TEST:
        _, found = check(doc, kind)
        if (not found) != valid:
            failures += 1
            print(f"FAIL ({kind}, expected {'valid' if valid else 'invalid'}): {doc} {found}")
    print(f"{len(SELF_TEST) - failures} passed, {failures} failed")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="-", help="TwiML file, or - for stdin (default)")
    ap.add_argument("--kind", choices=sorted(MODELS), help="force the model (default: guessed)")
    ap.add_argument("--self-test", action="store_true", help="run the checker's own cases")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    try:
        text = sys.stdin.buffer.read() if a.file == "-" else open(a.file, "rb").read()
    except OSError as e:
        print(f"cannot read {a.file}: {e}", file=sys.stderr)
        return 2
    kind, found = check(text, a.kind)
    if found:
        print("\n".join(found))
        return 1
    print(f"OK: {a.file} is valid {kind} TwiML")
    return 0


if __name__ == "__main__":
    sys.exit(main())
