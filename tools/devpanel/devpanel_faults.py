"""Fault modes of the development panel, for the agent's robustness tests (see README.md).

The mode lives in the store (`settings.fault`), so `devpanel fault` changes it while `serve`
runs; the server reads it for every connection and request.
"""

import re

FAULT_NAMES = ("down", "500", "garbage", "bad-signature", "unsigned", "replay", "slow-drip",
               "huge", "truncated", "rate-limit")
# These replace the answer of an authenticated request; the request itself is not processed.
CONTENT_FAULTS = ("500", "garbage", "rate-limit", "huge", "replay")


def parse_fault(text):
    """(kind, arg) for a fault spelling, None for none. Raises ValueError on unknown names."""
    if text is None:
        return None
    text = text.strip()
    if text in ("", "none"):
        return None
    if text.startswith("clock-skew:"):
        arg = text[len("clock-skew:"):]
        if not re.fullmatch(r"[+-]?[0-9]{1,10}", arg):
            raise ValueError("clock-skew takes whole seconds, e.g. clock-skew:-400")
        return ("clock-skew", int(arg))
    if text not in FAULT_NAMES:
        raise ValueError("unknown fault %r (one of: %s, clock-skew:<seconds>, none)"
                         % (text, ", ".join(FAULT_NAMES)))
    return (text, None)


def fault_text(fault):
    if fault is None:
        return None
    return "%s:%d" % fault if fault[0] == "clock-skew" else fault[0]


def skew(fault):
    """Seconds the panel's clock is off under this fault (0 unless clock-skew)."""
    return fault[1] if fault is not None and fault[0] == "clock-skew" else 0
