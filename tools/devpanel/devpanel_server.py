"""The HTTPS side of the development panel: Panel API v1 endpoints and the fault knobs.

Threading HTTP/1.1 server (keep-alive, 100-continue, chunked request bodies) on loopback only.
The TLS handshake runs in the connection's own thread, so one slow client never blocks accept.
Check order of every request, first failure answers:

  connection: fault `down`
  routing:    404 not_found, 405 method_not_allowed               (unsigned: no principal yet)
  framing:    400 bad_request (Content-Length / chunked), 413 payload_too_large over 16 MiB
              (connection closed, body not read)                   (unsigned)
  register:   400 bad_request (timestamp/nonce headers), 413/415/400 gzip_required/
              invalid_json/bad_request, 400 invalid_secret         (unsigned: no secret yet)
              content faults, then 401 invalid_token / 409 token_used / 201 / 200
                                                                   (signed with the carried secret)
  others:     401 unknown_server, 401 bad_signature                (unsigned)
              401 stale_timestamp, 401 replayed_nonce               (signed)
              content faults, 413 payload_too_large (4 MiB as sent), 415, 400 gzip_required,
              413 payload_too_large (after gunzip), 400 invalid_json, 400 bad_request /
              413 batch_too_large / 404 unknown_command, 200        (signed)
"""

import hashlib
import hmac
import http.server
import ipaddress
import json
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback

import devpanel_wire as wire
import devpanel_faults as faults
from devpanel_faults import CONTENT_FAULTS, fault_text, parse_fault, skew
from devpanel_wire import WireError

HARD_CAP = 16 * 1024 * 1024       # larger bodies are not even read
RAW_LOG_CAP = wire.MAX_BODY + 256 * 1024
IDLE_TIMEOUT = 75                  # keep-alive idle, like nginx's default
HANDSHAKE_TIMEOUT = 10
HUGE_SIZE = 100 * 1024 * 1024
DB_POLL_S = 0.1

GARBAGE_BODY = b"<html><body>devpanel fault: this is not JSON</body></html>\n"

ROUTES = {
    "/register": "register",
    "/heartbeat": "heartbeat",
    "/snapshots": "snapshots",
    "/commands/poll": "poll",
}
RESULT_RE = re.compile(re.escape(wire.API_PREFIX) + r"/commands/([^/]+)/result\Z")


# MARK: - Shared state

class Panel:
    """What the handlers share: the store, the stop event, settings read per request."""

    def __init__(self, store, redeliver_after=60, log=sys.stderr):
        self.store = store
        self.redeliver_after = redeliver_after
        self.stop = threading.Event()
        self.log_stream = log
        self.log_lock = threading.Lock()
        self._huge_sha = None
        self._huge_lock = threading.Lock()
        self._hostile_lock = threading.Lock()

    def fault(self):
        try:
            return parse_fault(self.store.get_setting("fault"))
        except ValueError:
            return None

    def now(self, fault):
        return int(time.time()) + skew(fault)

    def intervals(self):
        def get(key, default):
            try:
                return int(self.store.get_setting(key, default))
            except ValueError:
                return default
        return get("heartbeat_interval_s", 60), get("snapshot_interval_s", 300)

    def log(self, level, msg, **fields):
        parts = ["level=%s" % level, "msg=%s" % json.dumps(msg)]
        for key, value in fields.items():
            if value is None:
                value = "-"
            value = str(value)
            if not value or any(c in value for c in ' "=\\') or not value.isprintable():
                value = json.dumps(value)
            parts.append("%s=%s" % (key, value))
        with self.log_lock:
            self.log_stream.write(" ".join(parts) + "\n")
            self.log_stream.flush()

    def queue_hostile_commands(self, server_id):
        """`hostile-commands`: queues the crafted commands for this server, once per store,
        aimed at the first instance of its latest snapshot."""
        with self._hostile_lock:
            marker = "hostile_commands_queued:" + server_id
            if self.store.get_setting(marker):
                return
            instance = "osc_0000000000000000"
            snaps = self.store.snapshots(server_id)
            try:
                ids = [i.get("id") for i in json.loads(snaps[-1][4]).get("instances", [])] if snaps else []
                instance = next(i for i in ids if isinstance(i, str))
            except (ValueError, AttributeError, StopIteration):
                pass
            now = self.now(self.fault())
            tag = hashlib.sha256(server_id.encode()).hexdigest()[:8]
            for key, command in faults.hostile_commands(instance, now, tag):
                self.store.queue_command(server_id, key, json.dumps(command, sort_keys=True,
                                                                    separators=(",", ":")), now)
            self.store.set_setting(marker, str(now))

    def huge_sha(self):
        with self._huge_lock:
            if self._huge_sha is None:
                h = hashlib.sha256()
                for chunk in huge_chunks():
                    h.update(chunk)
                self._huge_sha = h.hexdigest()
            return self._huge_sha


def huge_chunks():
    head = b'{"commands":[],"pad":"'
    tail = b'"}'
    fill = HUGE_SIZE - len(head) - len(tail)
    yield head
    block = b"x" * 65536
    while fill > 0:
        n = min(fill, len(block))
        yield block[:n]
        fill -= n
    yield tail


# MARK: - Plumbing

class ClientGone(Exception):
    pass


class Answer(Exception):
    """Ends the handling of a request with an error answer."""

    def __init__(self, name, close=False):
        super().__init__(name)
        self.name = name
        self.close = close


class RecordingReader:
    """Wraps the connection's rfile and keeps every byte read, for the request log."""

    def __init__(self, inner):
        self._inner = inner
        self._buf = bytearray()
        self.truncated = False

    def _keep(self, data):
        room = RAW_LOG_CAP - len(self._buf)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        self._buf += data

    def read(self, *args):
        data = self._inner.read(*args)
        self._keep(data)
        return data

    def readline(self, *args):
        data = self._inner.readline(*args)
        self._keep(data)
        return data

    def take(self):
        data, truncated = bytes(self._buf), self.truncated
        self._buf = bytearray()
        self.truncated = False
        return data, truncated

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Body:
    def __init__(self, data, sha256_hex, length, overflow):
        self.data = data
        self.sha256_hex = sha256_hex
        self.length = length
        self.overflow = overflow


class RequestState:
    def __init__(self):
        self.t0 = time.time()
        self.fault = None
        self.server_id = None
        self.sign = None            # (secret, nonce) once the response must be signed
        self.status = None
        self.error = None
        self.body_decoded = None
        self.logged = False


# MARK: - Handler

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"   # so even an unparsable request gets a status line
    server_version = "myosicam-devpanel/1"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    @property
    def panel(self):
        return self.server.panel

    def setup(self):
        super().setup()
        self.rfile = RecordingReader(self.rfile)

    def parse_request(self):
        self._expect_continue = False
        self._head = False
        self.rq = RequestState()
        return super().parse_request()

    def handle_expect_100(self):
        # Deferred: "100 Continue" goes out only once the body is going to be read.
        self._expect_continue = True
        return True

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        pass

    def send_error(self, code, message=None, explain=None):
        # Malformed request lines and headers (http.server's own checks).
        if getattr(self, "rq", None) is None or self.rq.logged:
            self.rq = RequestState()
        name = "method_not_allowed" if code == 501 else "bad_request"
        self.close_connection = True
        try:
            self._send(wire.ERROR_STATUS[name], wire.error_body(name), error=name, close=True)
        finally:
            self._log_request()

    def do_any(self):
        try:
            self._dispatch()
        except Answer as a:
            self._error(a.name, close=a.close)
        except ClientGone:
            self.close_connection = True
        except (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout):
            self.close_connection = True
        except Exception:
            self.panel.log("error", "internal error", path=self.path,
                           trace=traceback.format_exc().strip().splitlines()[-1])
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            if self.rq.status is None:
                try:
                    self._error("internal_error", close=True)
                except Exception:
                    pass
        finally:
            self._log_request()

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_any

    def do_HEAD(self):
        self._head = True
        self.do_any()

    # MARK: Dispatch

    def _dispatch(self):
        rq = self.rq
        rq.fault = self.panel.fault()
        if rq.fault is not None and rq.fault[0] == "down":
            rq.error = "fault_down"
            abort_socket(self.connection)
            raise ClientGone()
        route_path = self.path.split("?", 1)[0]
        route, arg = None, None
        if route_path.startswith(wire.API_PREFIX + "/"):
            route = ROUTES.get(route_path[len(wire.API_PREFIX):])
            if route is None:
                m = RESULT_RE.match(route_path)
                if m:
                    route, arg = "result", m.group(1)
        # The body is not read for these: the connection cannot be reused.
        if route is None:
            raise Answer("not_found", close=True)
        if self.command != "POST":
            raise Answer("method_not_allowed", close=True)
        body = self._read_body()
        if route == "register":
            self._register(body)
        else:
            self._signed(route, arg, body)

    def _single_header(self, name):
        values = self.headers.get_all(name) or []
        return values[0].strip() if len(values) == 1 else None

    def _read_body(self):
        te = self.headers.get_all("Transfer-Encoding")
        cl = self.headers.get_all("Content-Length")
        if te:
            if cl or ",".join(te).strip().lower() != "chunked":
                raise Answer("bad_request", close=True)
            return self._read_chunked()
        if not cl:
            return Body(b"", wire.sha256_hex(b""), 0, False)
        if len(set(v.strip() for v in cl)) != 1 or not re.fullmatch(r"[0-9]{1,12}", cl[0].strip()):
            raise Answer("bad_request", close=True)
        length = int(cl[0].strip())
        if length > HARD_CAP:
            raise Answer("payload_too_large", close=True)
        self._continue()
        h = hashlib.sha256()
        kept = []
        kept_len = 0
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                raise ClientGone()
            left -= len(chunk)
            h.update(chunk)
            if kept_len < wire.MAX_BODY:
                kept.append(chunk[:wire.MAX_BODY - kept_len])
                kept_len += len(kept[-1])
        return Body(b"".join(kept), h.hexdigest(), length, length > wire.MAX_BODY)

    def _read_chunked(self):
        self._continue()
        h = hashlib.sha256()
        kept = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            if not line:
                raise ClientGone()
            if not line.endswith(b"\n"):
                raise Answer("bad_request", close=True)
            size_text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
                raise Answer("bad_request", close=True)
            size = int(size_text, 16)
            if size == 0:
                break
            if total + size > HARD_CAP:
                raise Answer("payload_too_large", close=True)
            left = size
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    raise ClientGone()
                left -= len(chunk)
                h.update(chunk)
                if total < wire.MAX_BODY:
                    kept.append(chunk[:wire.MAX_BODY - total])
                total += len(chunk)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise Answer("bad_request", close=True)
        for _ in range(100):            # trailers, up to the empty line
            line = self.rfile.readline(8194)
            if not line:
                raise ClientGone()
            if line in (b"\r\n", b"\n"):
                break
        else:
            raise Answer("bad_request", close=True)
        return Body(b"".join(kept), h.hexdigest(), total, total > wire.MAX_BODY)

    def _continue(self):
        if self._expect_continue:
            self._expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()

    def _decode_json(self, body, allow_empty=False):
        """Content-Type, Content-Encoding, gzip rule, sizes and strict JSON: (doc, text)."""
        if body.overflow:
            raise Answer("payload_too_large")
        data = body.data
        if not data and allow_empty:
            return {}, ""
        ctype = self._single_header("Content-Type")
        if ctype is None:
            raise Answer("unsupported_media_type")
        parts = [p.strip() for p in ctype.split(";")]
        if parts[0].lower() != "application/json":
            raise Answer("unsupported_media_type")
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise Answer("unsupported_media_type")
        encodings = [t.strip().lower() for t in ",".join(self.headers.get_all("Content-Encoding") or [])
                     .split(",") if t.strip()]
        if encodings in ([], ["identity"]):
            if len(data) > wire.GZIP_THRESHOLD:
                raise Answer("gzip_required")
            decoded = data
        elif encodings == ["gzip"]:
            try:
                decoded = wire.gunzip_limited(data)
            except WireError as e:
                raise Answer(e.name)
        else:
            raise Answer("unsupported_media_type")
        self.rq.body_decoded = decoded
        try:
            return wire.parse_strict(decoded)
        except WireError as e:
            raise Answer(e.name)

    # MARK: Register

    def _register(self, body):
        rq = self.rq
        ts = self._single_header(wire.H_TIMESTAMP)
        nonce = self._single_header(wire.H_NONCE)
        if ts is None or nonce is None or not wire.TIMESTAMP_RE.match(ts) or not wire.NONCE_RE.match(nonce):
            raise Answer("bad_request")
        doc, _ = self._decode_json(body)
        try:
            wire.validate_register(doc)
        except WireError as e:
            raise Answer(e.name)
        secret = wire.decode_secret(doc["secret"])
        if secret is None:
            raise Answer("invalid_secret")
        rq.sign = (secret, nonce)
        token = doc["install_token"]
        if self._content_fault(lambda: self.panel.store.server_for_token(token), "register", body):
            return
        now = self.panel.now(rq.fault)
        host = wire.dumps({k: doc["host"][k] for k in sorted(doc["host"])}).decode("ascii")
        outcome, server_id = self.panel.store.register(
            token, secret, host, now, lambda a, b: hmac.compare_digest(a, b))
        if server_id is None:
            raise Answer(outcome)
        rq.server_id = server_id
        hb, snap = self.panel.intervals()
        self._json(outcome, {"server_id": server_id, "heartbeat_interval_s": hb,
                             "snapshot_interval_s": snap, "server_time": now})

    # MARK: Signed endpoints

    def _signed(self, route, arg, body):
        rq = self.rq
        store = self.panel.store
        server_id = self._single_header(wire.H_SERVER)
        if server_id is None or not wire.ID_RE.match(server_id):
            raise Answer("unknown_server")
        rq.server_id = server_id
        secret = store.server_secret(server_id)
        if secret is None:
            raise Answer("unknown_server")
        ts = self._single_header(wire.H_TIMESTAMP)
        nonce = self._single_header(wire.H_NONCE)
        sig = self._single_header(wire.H_SIGNATURE)
        if (ts is None or nonce is None or sig is None or not wire.TIMESTAMP_RE.match(ts)
                or not wire.NONCE_RE.match(nonce) or not wire.SIGNATURE_RE.match(sig)):
            raise Answer("bad_signature")
        want = wire.sign_request(secret, self.command, self.path, server_id, ts, nonce,
                                 body_sha256_hex=body.sha256_hex)
        if not hmac.compare_digest(want.encode("ascii"), sig.encode("ascii")):
            raise Answer("bad_signature")
        rq.sign = (secret, nonce)
        stale = abs(self.panel.now(rq.fault) - int(ts)) > wire.MAX_SKEW_S
        replayed = store.check_and_remember_nonce(server_id, nonce, time.time(), wire.NONCE_WINDOW_S)
        if stale:
            raise Answer("stale_timestamp")
        if replayed:
            raise Answer("replayed_nonce")
        store.touch_server(server_id, self.panel.now(rq.fault))
        if self._content_fault(lambda: server_id, route, body):
            return
        doc, text = self._decode_json(body, allow_empty=(route == "poll"))
        try:
            if route == "heartbeat":
                self._heartbeat(server_id, doc)
            elif route == "snapshots":
                self._snapshots(server_id, doc, text)
            elif route == "poll":
                self._poll(server_id, doc)
            else:
                self._result(server_id, arg, doc)
        except WireError as e:
            raise Answer(e.name)

    def _heartbeat(self, server_id, doc):
        wire.validate_heartbeat(doc)
        store = self.panel.store
        store.add_heartbeat(server_id, doc["seq"], self.rq.body_decoded, self.panel.now(self.rq.fault))
        pending = store.has_due_commands(server_id, time.time(), self.panel.redeliver_after)
        hb, snap = self.panel.intervals()
        self._json(200, {"heartbeat_interval_s": hb, "snapshot_interval_s": snap,
                         "commands_pending": pending})

    def _snapshots(self, server_id, doc, text):
        if not isinstance(doc, dict) or not isinstance(doc.get("snapshots"), list):
            raise WireError("bad_request")
        snaps = doc["snapshots"]
        if len(snaps) > wire.MAX_BATCH:
            raise WireError("batch_too_large")
        for snap in snaps:
            wire.validate_snapshot(snap)
        raws = wire.split_batch(text)
        if raws is None or len(raws) != len(snaps):
            raise RuntimeError("batch split disagrees with the parse")
        items = [(s["seq"], s["collected_at"], raw) for s, raw in zip(snaps, raws)]
        self.panel.store.add_snapshots(server_id, items, self.panel.now(self.rq.fault))
        self._json(200, {"accepted": len(items)})

    def _poll(self, server_id, doc):
        wait = wire.poll_wait(doc)
        store = self.panel.store
        kind = self.rq.fault[0] if self.rq.fault else None
        if kind == "hostile-commands":
            self.panel.queue_hostile_commands(server_id)
        deadline = time.monotonic() + wait
        redeliver = self.panel.redeliver_after
        while True:
            if store.has_due_commands(server_id, time.time(), redeliver):
                commands = store.take_due_commands(server_id, time.time(), redeliver)
                if commands:
                    break
            left = deadline - time.monotonic()
            if left <= 0 or self.panel.stop.is_set():
                commands = []
                break
            self.panel.stop.wait(min(DB_POLL_S, left))
        commands = [json.loads(c) for c in commands]
        if kind == "duplicate-ids":
            commands = faults.duplicated(commands)
        self._json(200, {"commands": commands})

    def _result(self, server_id, command_id, doc):
        wire.validate_result(doc)
        if not wire.ID_RE.match(command_id):
            raise WireError("unknown_command")
        if not self.panel.store.add_result(server_id, command_id, doc["status"], self.rq.body_decoded,
                                           self.panel.now(self.rq.fault)):
            raise WireError("unknown_command")
        self._json(200, {})

    # MARK: Faults replacing the answer

    def _content_fault(self, server_of, route, body):
        fault = self.rq.fault
        if fault is None or fault[0] not in CONTENT_FAULTS:
            return False
        kind = fault[0]
        if kind in ("invalid-json", "invalid-utf8"):
            self._send(200, faults.tempting_answer(kind, route, self.panel.now(fault), batch_size(body),
                                                   self.panel.intervals()))
            return True
        if kind == "500":
            self._error("internal_error")
        elif kind == "rate-limit":
            self._error("rate_limited")
        elif kind == "garbage":
            self._send(200, GARBAGE_BODY)
        elif kind == "huge":
            self._send_huge()
        elif kind == "replay":
            server_id = server_of()
            old = self.panel.store.replayable_response(server_id, self.path, self.rq.sign[1]) \
                if server_id else None
            if old is None:
                self.rq.error = "fault_replay_nothing_recorded"
                abort_socket(self.connection)
                raise ClientGone()
            status, ts, sig, body = old
            self._send(status, body, replay=(ts, sig))
        return True

    # MARK: Responses

    def _error(self, name, close=False):
        self._send(wire.ERROR_STATUS[name], wire.error_body(name), error=name, close=close)

    def _json(self, status, obj):
        self._send(status, wire.dumps(obj))

    def _send(self, status, body, error=None, close=False, replay=None):
        rq = self.rq
        rq.status = status
        rq.error = error
        fault = rq.fault[0] if rq.fault else None
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if status == 405:
            headers.append(("Allow", "POST"))
        if replay is not None:
            headers += [(wire.H_TIMESTAMP, replay[0]), (wire.H_SIGNATURE, replay[1])]
        elif rq.sign is not None:
            secret, nonce = rq.sign
            ts = str(self.panel.now(rq.fault))
            sig = wire.sign_response(secret, status, nonce, ts, body)
            if fault is None and rq.server_id:
                self.panel.store.record_signed_response(rq.server_id, self.path, nonce, status, ts,
                                                        sig, body)
            if fault == "bad-signature":
                # Well-formed, but over another body: it can never verify.
                sig = wire.sign_response(secret, status, nonce, ts, body + b" ")
            if fault != "unsigned":
                headers += [(wire.H_TIMESTAMP, ts), (wire.H_SIGNATURE, sig)]
        if close:
            self.close_connection = True
        declared = len(body)
        if fault == "truncated":
            declared = len(body) + 1024
            self.close_connection = True
        elif fault == "slow-drip":
            self.close_connection = True
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(declared))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "_head", False):
            return
        if fault == "slow-drip":
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                if i + 1 < len(body) and self.panel.stop.wait(1.0):
                    break
        else:
            self.wfile.write(body)
            self.wfile.flush()

    def _send_huge(self):
        rq = self.rq
        rq.status = 200
        secret, nonce = rq.sign
        ts = str(self.panel.now(rq.fault))
        sig = wire.sign_response(secret, 200, nonce, ts, body_sha256_hex=self.panel.huge_sha())
        self.close_connection = True
        self.send_response_only(200)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/json")
        self.send_header(wire.H_TIMESTAMP, ts)
        self.send_header(wire.H_SIGNATURE, sig)
        self.send_header("Content-Length", str(HUGE_SIZE))
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in huge_chunks():
            if self.panel.stop.is_set():
                break
            self.wfile.write(chunk)

    # MARK: Request log

    def _log_request(self):
        rq = getattr(self, "rq", None)
        if rq is None or rq.logged:
            return
        rq.logged = True
        raw, truncated = self.rfile.take()
        method = getattr(self, "command", None)
        path = getattr(self, "path", None)
        fault = fault_text(rq.fault)
        try:
            self.panel.store.log_request(rq.t0, self.client_address[0], method, path, rq.server_id,
                                         rq.status, rq.error, fault, raw, truncated, rq.body_decoded)
        except Exception as e:          # the log must never break an answer
            self.panel.log("error", "request log failed", error=e)
        self.panel.log("info", "request", method=method, path=path, server=rq.server_id,
                       status=rq.status, error=rq.error, fault=fault,
                       signed=signed_label(rq), ms=int((time.time() - rq.t0) * 1000))


def batch_size(body):
    """How many snapshots a batch body holds, read leniently (for a fault's answer only)."""
    try:
        data = wire.gunzip_limited(body.data) if body.data[:2] == b"\x1f\x8b" else body.data
        return len(json.loads(data)["snapshots"])
    except Exception:
        return 1


def signed_label(rq):
    """How the answer was signed, for the log line."""
    kind = rq.fault[0] if rq.fault else None
    if rq.sign is None or kind == "unsigned":
        return "no"
    return {"bad-signature": "wrong", "replay": "replayed"}.get(kind, "yes")


def abort_socket(sock):
    """Closes with RST, so the client sees the connection die at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# MARK: - Server

class PanelServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host, port, panel, ssl_context):
        try:
            addr = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
        except ValueError:
            raise ValueError("devpanel binds to loopback only: 127.0.0.1, ::1 or localhost")
        host = str(addr)
        if not addr.is_loopback:
            raise ValueError("devpanel binds to loopback only, not %s" % host)
        self.address_family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        self.panel = panel
        self.ssl_context = ssl_context
        super().__init__((host, port), Handler)

    def server_bind(self):
        # No reverse DNS lookup (HTTPServer's getfqdn) on start.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def verify_request(self, request, client_address):
        fault = self.panel.fault()
        if fault is not None and fault[0] == "down":
            abort_socket(request)
            return False
        return True

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            tls.settimeout(IDLE_TIMEOUT)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            self.shutdown_request(tls)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            return
        self.panel.log("error", "connection error", remote=client_address[0], error=repr(exc))


def make_ssl_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
