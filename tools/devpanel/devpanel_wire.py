"""Wire-level pieces of Panel API v1 (/work/shared/PANEL-API.md), free of I/O.

Signing strings, header formats, strict JSON, gzip with limits, the byte-exact split of a
snapshot batch and the body validators. The server and the tests both use this module; the
test vectors of PANEL-API.md are checked against it.
"""

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import zlib

# MARK: - Constants from the contract

API_PREFIX = "/api/agent/v1"
MAX_BODY = 4 * 1024 * 1024          # per request body, as sent and after gunzip
GZIP_THRESHOLD = 8192               # identity bodies larger than this are refused
MAX_BATCH = 16                      # snapshots per batch
MAX_SKEW_S = 300                    # |panel clock - timestamp|
NONCE_WINDOW_S = 600                # a nonce may not repeat within this window
MAX_WAIT_S = 30                     # long-poll hold
SECRET_LEN = 32

H_SERVER = "X-MyOsicam-Server"
H_TIMESTAMP = "X-MyOsicam-Timestamp"
H_NONCE = "X-MyOsicam-Nonce"
H_SIGNATURE = "X-MyOsicam-Signature"

REQUEST_PREFIX = "MYOSICAM-HMAC-SHA256-V1"
RESPONSE_PREFIX = "MYOSICAM-HMAC-SHA256-V1-RESPONSE"

ERROR_STATUS = {
    "bad_request": 400, "invalid_json": 400, "invalid_secret": 400, "gzip_required": 400,
    "invalid_token": 401, "bad_signature": 401, "unknown_server": 401, "stale_timestamp": 401,
    "replayed_nonce": 401,
    "not_found": 404, "unknown_command": 404,
    "method_not_allowed": 405,
    "token_used": 409,
    "payload_too_large": 413, "batch_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
}

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
# Canonical decimal: no sign, no leading zeros. 19 digits bounds it well inside int64.
TIMESTAMP_RE = re.compile(r"(0|[1-9][0-9]{0,18})\Z")
NONCE_RE = re.compile(r"[0-9a-f]{32}\Z")
SIGNATURE_RE = re.compile(r"v1=([0-9a-f]{64})\Z")
HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")


class WireError(Exception):
    """A request failure with one of the contract's error names."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name
        self.status = ERROR_STATUS[name]


# MARK: - Signing

def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def request_string_to_sign(method, path, server_id, timestamp, nonce, body_sha256_hex):
    return "\n".join([REQUEST_PREFIX, method.upper(), path, server_id, str(timestamp), nonce,
                      body_sha256_hex])


def sign_request(secret, method, path, server_id, timestamp, nonce, body=None, body_sha256_hex=None):
    """Returns the X-MyOsicam-Signature header value for a request."""
    if body_sha256_hex is None:
        body_sha256_hex = sha256_hex(body)
    sts = request_string_to_sign(method, path, server_id, timestamp, nonce, body_sha256_hex)
    return "v1=" + hmac.new(secret, sts.encode("utf-8"), hashlib.sha256).hexdigest()


def response_string_to_sign(status, request_nonce, timestamp, body_sha256_hex):
    return "\n".join([RESPONSE_PREFIX, str(int(status)), request_nonce, str(timestamp),
                      body_sha256_hex])


def sign_response(secret, status, request_nonce, timestamp, body=None, body_sha256_hex=None):
    """Returns the X-MyOsicam-Signature header value for a response."""
    if body_sha256_hex is None:
        body_sha256_hex = sha256_hex(body)
    sts = response_string_to_sign(status, request_nonce, timestamp, body_sha256_hex)
    return "v1=" + hmac.new(secret, sts.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_response(secret, status, request_nonce, headers_ts, headers_sig, body):
    """True when a response's signature verifies (used by the tests' client)."""
    if headers_ts is None or headers_sig is None or not TIMESTAMP_RE.match(headers_ts):
        return False
    want = sign_response(secret, status, request_nonce, headers_ts, body)
    return hmac.compare_digest(want.encode("ascii"), headers_sig.encode("ascii", "replace"))


# MARK: - Secrets

def decode_secret(value):
    """The 32 secret bytes of a register request, or None when it is not canonical base64."""
    if not isinstance(value, str) or len(value) != 44:
        return None
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    # Re-encoding rejects non-zero padding bits, so one secret has exactly one spelling.
    if len(raw) != SECRET_LEN or base64.b64encode(raw).decode("ascii") != value:
        return None
    return raw


# MARK: - Strict JSON

class _StrictJSONError(ValueError):
    pass


def _pairs(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _StrictJSONError("duplicate key")
        obj[key] = value
    return obj


def _constant(name):
    raise _StrictJSONError("non-finite number " + name)


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise _StrictJSONError("non-finite number")
    return value


STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant,
                                  parse_float=_float)


def parse_strict(body):
    """Parses UTF-8 JSON bytes strictly; returns (value, text). Raises WireError(invalid_json)."""
    try:
        text = body.decode("utf-8")
        value = STRICT_DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WireError("invalid_json")
    return value, text


def dumps(value):
    """Compact, sorted, ASCII JSON: the panel's response encoding."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def error_body(name):
    return dumps({"error": name})


# MARK: - Snapshot batch split

_WS = " \t\n\r"


def _skip_ws(text, i):
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def split_batch(text):
    """Byte-exact spans of a batch's snapshots.

    `text` must already have passed parse_strict and be an object. Returns the list of each
    element of the top-level "snapshots" array as the exact UTF-8 bytes it had in the body
    (surrounding whitespace excluded), or None when there is no "snapshots" array. Nothing is
    re-serialized: the UTF-8 encoding of a slice of the decoded text is the original byte slice.
    """
    scan = json.decoder.scanstring
    i = _skip_ws(text, 0)
    if text[i] != "{":
        return None
    i = _skip_ws(text, i + 1)
    if text[i] == "}":
        return None
    spans = None
    while True:
        key, i = scan(text, i + 1)
        i = _skip_ws(text, i)
        i = _skip_ws(text, i + 1)          # past ':'
        if key == "snapshots" and text[i] == "[":
            spans = []
            i = _skip_ws(text, i + 1)
            if text[i] == "]":
                i += 1
            else:
                while True:
                    _, end = STRICT_DECODER.raw_decode(text, i)
                    spans.append(text[i:end].encode("utf-8"))
                    i = _skip_ws(text, end)
                    if text[i] == ",":
                        i = _skip_ws(text, i + 1)
                        continue
                    i += 1                   # past ']'
                    break
        else:
            _, i = STRICT_DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        return spans


# MARK: - Content encoding

def gunzip_limited(data, limit=MAX_BODY):
    """Decompresses one or more gzip members. Raises WireError on bad data or > limit bytes."""
    if not data:
        raise WireError("bad_request")
    out = []
    total = 0
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk_in = rest
        while True:
            try:
                piece = d.decompress(chunk_in, limit + 1 - total)
            except zlib.error:
                raise WireError("bad_request")
            total += len(piece)
            out.append(piece)
            if total > limit:
                raise WireError("payload_too_large")
            if d.eof:
                break
            if not d.unconsumed_tail:
                raise WireError("bad_request")   # truncated stream
            chunk_in = d.unconsumed_tail
        rest = d.unused_data
    return b"".join(out)


# MARK: - Validators

def is_int(v, lo=None, hi=None):
    if not isinstance(v, int) or isinstance(v, bool):
        return False
    if lo is not None and v < lo:
        return False
    if hi is not None and v > hi:
        return False
    return True


def is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


INT64_MAX = 2 ** 63 - 1
_HOST_FIELDS = ("hostname", "machine_id", "os_id", "os_version", "kernel", "arch", "agent_version")


def validate_register(doc):
    """Structure of a register body (the secret is checked apart: invalid_secret)."""
    if not isinstance(doc, dict):
        raise WireError("bad_request")
    token = doc.get("install_token")
    if not isinstance(token, str) or "secret" not in doc or not isinstance(doc.get("host"), dict):
        raise WireError("bad_request")
    host = doc["host"]
    for field in _HOST_FIELDS:
        value = host.get(field)
        if not isinstance(value, str) or len(value) > 1024:
            raise WireError("bad_request")
        if field != "machine_id" and value == "":
            raise WireError("bad_request")


def validate_heartbeat(doc):
    def need(cond):
        if not cond:
            raise WireError("bad_request")

    need(isinstance(doc, dict))
    need(is_int(doc.get("seq"), 1, INT64_MAX))
    agent = doc.get("agent")
    need(isinstance(agent, dict))
    need(isinstance(agent.get("version"), str))
    need(is_int(agent.get("started_at"), 0, INT64_MAX))
    need(is_int(agent.get("uptime_s"), 0, INT64_MAX))
    need(is_number(agent.get("rss_mb")) and agent["rss_mb"] >= 0)
    need(is_number(agent.get("cpu_percent")) and agent["cpu_percent"] >= 0)
    need(is_int(doc.get("clock_offset_s"), -INT64_MAX, INT64_MAX))
    inst = doc.get("instances")
    need(isinstance(inst, dict))
    need(is_int(inst.get("total"), 0) and is_int(inst.get("running"), 0))
    spool = doc.get("spool")
    need(isinstance(spool, dict))
    for key in ("snapshots", "results", "dropped", "rejected"):
        need(is_int(spool.get(key), 0, INT64_MAX))
    need("last_snapshot" in doc)
    last = doc["last_snapshot"]
    if last is not None:
        need(isinstance(last, dict))
        need(is_int(last.get("seq"), 1, INT64_MAX))
        need(is_int(last.get("sent_at"), 0, INT64_MAX))
        need(isinstance(last.get("sha256"), str) and HEX64_RE.match(last["sha256"]) is not None)


def validate_snapshot(doc):
    if not isinstance(doc, dict):
        raise WireError("bad_request")
    schema = doc.get("schema")
    if not is_int(schema) or schema != 1:
        raise WireError("bad_request")
    if not is_int(doc.get("seq"), 1, INT64_MAX) or not is_int(doc.get("collected_at"), 0, INT64_MAX):
        raise WireError("bad_request")


RESULT_STATUSES = ("succeeded", "failed", "rejected", "conflict")


def validate_result(doc):
    def need(cond):
        if not cond:
            raise WireError("bad_request")

    need(isinstance(doc, dict))
    need(doc.get("status") in RESULT_STATUSES)
    need(is_int(doc.get("started_at"), 0, INT64_MAX))
    need(is_int(doc.get("finished_at"), 0, INT64_MAX))
    msg = doc.get("message")
    need(isinstance(msg, str) and "\n" not in msg and "\r" not in msg)
    need(isinstance(doc.get("details"), dict))


def poll_wait(doc):
    """The hold time of a poll body, clamped to 0..MAX_WAIT_S. An absent wait_s holds 0 s."""
    if not isinstance(doc, dict):
        raise WireError("bad_request")
    if "wait_s" not in doc:
        return 0
    wait = doc["wait_s"]
    if not is_int(wait, 0):
        raise WireError("bad_request")
    return min(wait, MAX_WAIT_S)
