"""Tests of the development panel: the real `devpanel serve` over HTTPS on loopback.

Run from the repository root:
    python3 -m unittest discover -s tools -p 'test_*.py' -t tools
"""

import base64
import gzip
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import devpanel_wire as wire  # noqa: E402

DEVPANEL = os.path.join(HERE, "devpanel")
API = "/api/agent/v1"

VECTOR_SECRET = base64.b64decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
VECTOR_SERVER = "srv_0123456789abcdef"


def heartbeat_body(seq=1, **extra):
    doc = {"seq": seq, "agent": {"version": "1.0.0", "started_at": 1795940000, "uptime_s": 3600,
                                 "rss_mb": 9.1, "cpu_percent": 0.1},
           "clock_offset_s": 0, "instances": {"total": 2, "running": 2},
           "spool": {"snapshots": 0, "results": 0, "dropped": 0, "rejected": 0},
           "last_snapshot": {"seq": 41, "sent_at": 1795943500, "sha256": "ab" * 32}}
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":")).encode()


def host_info():
    return {"hostname": "oscam-1", "machine_id": "", "os_id": "debian", "os_version": "12",
            "kernel": "6.1.0", "arch": "x86_64", "agent_version": "1.0.0"}


class Response:
    def __init__(self, status, headers, body, nonce):
        self.status = status
        self.headers = headers
        self.body = body
        self.nonce = nonce

    def json(self):
        return json.loads(self.body)

    @property
    def signed(self):
        return (self.headers.get(wire.H_TIMESTAMP) is not None
                or self.headers.get(wire.H_SIGNATURE) is not None)

    def verifies(self, secret, nonce=None):
        return wire.verify_response(secret, self.status, nonce or self.nonce,
                                    self.headers.get(wire.H_TIMESTAMP),
                                    self.headers.get(wire.H_SIGNATURE), self.body)


class Panel:
    """A `devpanel serve` subprocess with its own data directory, and a tiny signing client."""

    def __init__(self, add_cleanup, *serve_args):
        self.dir = tempfile.mkdtemp(prefix="devpanel-test-")
        add_cleanup(shutil.rmtree, self.dir, True)
        self.data = os.path.join(self.dir, "data")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        add_cleanup(self.log.close)
        self.proc = subprocess.Popen(
            [sys.executable, DEVPANEL, "serve", "--data", self.data, "--port", "0",
             "--port-file", port_file] + list(serve_args),
            stdout=self.log, stderr=subprocess.STDOUT)
        add_cleanup(self.stop)
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("devpanel serve did not start:\n" + self.output())
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.ca = os.path.join(self.data, "ca.pem")
        # Trusts only the panel's own CA.
        self.ctx = ssl.create_default_context(cafile=self.ca)

    def output(self):
        self.log.flush()
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args, check=True):
        proc = subprocess.run([sys.executable, DEVPANEL] + list(args[:1]) + ["--data", self.data]
                              + list(args[1:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError("devpanel %s failed (%d): %s" % (args, proc.returncode,
                                                                  proc.stderr.decode()))
        return proc

    def token(self, ttl=None):
        args = ["token"] + (["--ttl", str(ttl)] if ttl is not None else [])
        return self.cli(*args).stdout.decode().strip()

    def db(self):
        conn = sqlite3.connect(os.path.join(self.data, "devpanel.sqlite3"), timeout=30)
        conn.isolation_level = None
        return conn

    # MARK: client

    def connection(self, timeout=20):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=b"", headers=None, nonce=None, timeout=20):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.headers, data, nonce)
        finally:
            conn.close()

    def signed_headers(self, path, body, server_id, secret, ts=None, nonce=None,
                       content_type="application/json", extra=None, method="POST"):
        ts = str(int(time.time())) if ts is None else str(ts)
        nonce = nonce or secrets.token_hex(16)
        headers = {wire.H_SERVER: server_id, wire.H_TIMESTAMP: ts, wire.H_NONCE: nonce,
                   wire.H_SIGNATURE: wire.sign_request(secret, method, path, server_id, ts, nonce,
                                                       body)}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(extra or {})
        return headers, nonce

    def signed(self, path, body, server_id, secret, timeout=20, method="POST", **kw):
        headers, nonce = self.signed_headers(path, body, server_id, secret, method=method, **kw)
        return self.request(method, path, body, headers, nonce, timeout)

    def register(self, token, secret, secret_text=None, host=None):
        nonce = secrets.token_hex(16)
        body = json.dumps({"install_token": token,
                           "secret": secret_text if secret_text is not None
                           else base64.b64encode(secret).decode(),
                           "host": host or host_info()}).encode()
        headers = {"Content-Type": "application/json", wire.H_TIMESTAMP: str(int(time.time())),
                   wire.H_NONCE: nonce}
        return self.request("POST", API + "/register", body, headers, nonce)

    def new_server(self):
        secret = os.urandom(32)
        resp = self.register(self.token(), secret)
        assert resp.status == 201, (resp.status, resp.body)
        return resp.json()["server_id"], secret


# MARK: - Pure wire tests

class TestVectors(unittest.TestCase):
    def test_request_vector(self):
        body = b'{"seq":1}'
        self.assertEqual(wire.sha256_hex(body),
                         "b41e95c43f388d561b146326d84e3a6b9e31c4ef32ab97c04774c31aada3246a")
        self.assertEqual(
            wire.sign_request(VECTOR_SECRET, "POST", "/api/agent/v1/heartbeat", VECTOR_SERVER,
                              "1795945629", "00112233445566778899aabbccddeeff", body),
            "v1=b454ad487f53ac2659ee052659d07e23e1b1a5589875c1fa3262b04c9774b92c")

    def test_empty_body_vector(self):
        self.assertTrue(wire.sha256_hex(b"").startswith("e3b0c442"))
        self.assertTrue(wire.sha256_hex(b"").endswith("b855"))
        self.assertEqual(
            wire.sign_request(VECTOR_SECRET, "POST", "/api/agent/v1/commands/poll", VECTOR_SERVER,
                              "1795945631", "ffeeddccbbaa99887766554433221100", b""),
            "v1=59605091efde1285306185510baa487f02255b4a079589b57cec5f0adc47b2a1")

    def test_response_vector(self):
        body = b'{"commands_pending":false,"heartbeat_interval_s":60,"snapshot_interval_s":300}'
        self.assertEqual(wire.sha256_hex(body),
                         "24e10a6f89f828c9b9bc59f73eaa1307d8ad409a0df5837ac58490aaf8155b84")
        # The panel's own response encoding produces exactly the vector's body.
        self.assertEqual(wire.dumps({"heartbeat_interval_s": 60, "snapshot_interval_s": 300,
                                     "commands_pending": False}), body)
        self.assertEqual(
            wire.sign_response(VECTOR_SECRET, 200, "00112233445566778899aabbccddeeff", "1795945630",
                               body),
            "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf")

    def test_secret_decoding(self):
        good = base64.b64encode(bytes(range(32))).decode()
        self.assertEqual(wire.decode_secret(good), bytes(range(32)))
        for bad in (base64.b64encode(bytes(31)).decode(), base64.b64encode(bytes(33)).decode(),
                    good.rstrip("="), base64.urlsafe_b64encode(b"\xff" * 32).decode(),
                    good[:-2] + "B=",            # non-zero padding bits
                    " " + good, 32, None, ""):
            self.assertIsNone(wire.decode_secret(bad), bad)

    def test_split_batch_is_byte_exact(self):
        snaps = [b'{"schema":1,"seq":1,"collected_at":5,"x":"\xc3\xbc\\u00fc"}',
                 b'{ "schema" : 1 , "seq":2,"collected_at":6,"f":1.50e0,"n":[ ]}',
                 b'{"schema":1,"seq":3,"collected_at":7,"o":{"a":"]},"}}']
        body = b'{"snapshots":[' + b",".join(snaps) + b"]}"
        _, text = wire.parse_strict(body)
        self.assertEqual(wire.split_batch(text), snaps)
        spaced = b' { "other" : [1,{"snapshots":[]}] , "snapshots" : [ ' + b" , ".join(snaps) + b" ] } "
        _, text = wire.parse_strict(spaced)
        self.assertEqual(wire.split_batch(text), snaps)

    def test_strict_json(self):
        for bad in (b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
                    b'{"a":1e400}', b'{"a":1} x', b'\xef\xbb\xbf{}', b'{"a":"\xff"}', b""):
            with self.assertRaises(wire.WireError, msg=bad):
                wire.parse_strict(bad)


# MARK: - Server tests

class TestPanel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Panel(cls.addClassCleanup)

    # MARK: registration

    def test_register(self):
        p = self.p
        token = p.token()
        secret = os.urandom(32)
        r = p.register(token, secret)
        self.assertEqual(r.status, 201, r.body)
        doc = r.json()
        self.assertRegex(doc["server_id"], r"^srv_[A-Za-z0-9_-]{1,60}$")
        self.assertEqual((doc["heartbeat_interval_s"], doc["snapshot_interval_s"]), (60, 300))
        self.assertLessEqual(abs(doc["server_time"] - time.time()), 5)
        self.assertTrue(r.verifies(secret), "201 must be signed with the secret the request carried")
        # Retry with the same token and secret: 200, same server_id, signed.
        r2 = p.register(token, secret)
        self.assertEqual(r2.status, 200)
        self.assertEqual(r2.json()["server_id"], doc["server_id"])
        self.assertTrue(r2.verifies(secret))
        # ... also after the token's lifetime.
        with p.db() as db:
            db.execute("UPDATE tokens SET expires_at=0")
        r3 = p.register(token, secret)
        self.assertEqual((r3.status, r3.json()["server_id"]), (200, doc["server_id"]))
        # Another secret: token_used.
        r4 = p.register(token, os.urandom(32))
        self.assertEqual((r4.status, r4.json()), (409, {"error": "token_used"}))
        # Unknown token.
        r5 = p.register("mit_nope", os.urandom(32))
        self.assertEqual((r5.status, r5.json()), (401, {"error": "invalid_token"}))
        # Expired, never used.
        r6 = p.register(p.token(ttl=0), os.urandom(32))
        self.assertEqual((r6.status, r6.json()), (401, {"error": "invalid_token"}))
        self.assertEqual(len([s for s in p.cli("servers").stdout.splitlines()
                              if doc["server_id"].encode() in s]), 1)

    def test_register_invalid_secret(self):
        p = self.p
        token = p.token()
        for text in (base64.b64encode(os.urandom(31)).decode(),
                     base64.b64encode(os.urandom(33)).decode(),
                     base64.b64encode(os.urandom(32)).decode().rstrip("="),
                     "not base64 at all!", 12345):
            r = p.register(token, None, secret_text=text)
            self.assertEqual((r.status, r.json()), (400, {"error": "invalid_secret"}), text)
            self.assertFalse(r.signed)
        # The token is still unused: a valid secret registers.
        self.assertEqual(p.register(token, os.urandom(32)).status, 201)

    def test_register_headers_and_body(self):
        p = self.p
        r = p.request("POST", API + "/register", b'{}', {"Content-Type": "application/json"})
        self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}))
        host = host_info()
        del host["arch"]
        r = p.register(p.token(), os.urandom(32), host=host)
        self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}))

    def test_revoke(self):
        p = self.p
        token = p.token()
        secret = os.urandom(32)
        server_id = p.register(token, secret).json()["server_id"]
        p.cli("revoke", server_id)
        r = p.signed(API + "/heartbeat", heartbeat_body(), server_id, secret)
        self.assertEqual((r.status, r.json()), (401, {"error": "unknown_server"}))
        self.assertFalse(r.signed)
        r = p.register(token, secret)
        self.assertEqual((r.status, r.json()), (401, {"error": "invalid_token"}))
        # Undone: accepted again; undoing twice is refused.
        p.cli("unrevoke", server_id)
        r = p.signed(API + "/heartbeat", heartbeat_body(), server_id, secret)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.verifies(secret))
        self.assertEqual(p.cli("unrevoke", server_id, check=False).returncode, 65)
        self.assertEqual(p.cli("unrevoke", "srv_nope", check=False).returncode, 66)

    # MARK: signing

    def test_heartbeat_signed(self):
        p = self.p
        server_id, secret = p.new_server()
        r = p.signed(API + "/heartbeat", heartbeat_body(seq=7), server_id, secret)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"heartbeat_interval_s": 60, "snapshot_interval_s": 300,
                                    "commands_pending": False})
        self.assertTrue(r.verifies(secret))
        self.assertFalse(r.verifies(secret, nonce="0" * 32))
        self.assertNotIn("Content-Encoding", r.headers)
        self.assertLessEqual(abs(int(r.headers[wire.H_TIMESTAMP]) - time.time()), 5)
        out = p.cli("heartbeats", server_id).stdout.decode().splitlines()
        self.assertEqual(json.loads(out[-1])["seq"], 7)
        self.assertEqual(json.loads(out[-1])["body"]["seq"], 7)

    def test_heartbeat_validation(self):
        p = self.p
        server_id, secret = p.new_server()
        bad_bodies = [
            heartbeat_body(seq=True), heartbeat_body(seq=1.0), heartbeat_body(last_snapshot=5),
            heartbeat_body(clock_offset_s="0"), heartbeat_body(spool={"snapshots": 0}),
            b'{"seq":1}', b"[]",
        ]
        doc = json.loads(heartbeat_body())
        del doc["last_snapshot"]
        bad_bodies.append(json.dumps(doc).encode())
        for body in bad_bodies:
            r = p.signed(API + "/heartbeat", body, server_id, secret)
            self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}), body)
            self.assertTrue(r.verifies(secret))
        r = p.signed(API + "/heartbeat", heartbeat_body(last_snapshot=None, future_field=1),
                     server_id, secret)
        self.assertEqual(r.status, 200)

    def test_auth_checks_in_order(self):
        p = self.p
        server_id, secret = p.new_server()
        path = API + "/heartbeat"
        body = heartbeat_body()
        # unknown_server, even with a garbage signature; unsigned.
        for sid in ("srv_doesnotexist", "not valid!", ""):
            r = p.signed(path, body, sid, secret, extra={wire.H_SIGNATURE: "v1=zz"})
            self.assertEqual((r.status, r.json()), (401, {"error": "unknown_server"}))
            self.assertFalse(r.signed)
        r = p.request("POST", path, body, {"Content-Type": "application/json"})
        self.assertEqual(r.json(), {"error": "unknown_server"})

        def expect(resp, name, signed):
            self.assertEqual((resp.status, resp.json()), (401, {"error": name}))
            if signed:
                self.assertTrue(resp.verifies(secret), name)
            else:
                self.assertFalse(resp.signed, name)

        # bad_signature: a wrong HMAC, and header formats even where the HMAC matches them.
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        headers[wire.H_SIGNATURE] = "v1=" + "0" * 64
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        now = int(time.time())
        for ts, nonce in (("0%d" % now, secrets.token_hex(16)), ("+%d" % now, secrets.token_hex(16)),
                          (str(now), secrets.token_hex(16).upper()), (str(now), secrets.token_hex(15))):
            headers, _ = p.signed_headers(path, body, server_id, secret, ts=ts, nonce=nonce)
            expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        headers[wire.H_SIGNATURE] = headers[wire.H_SIGNATURE].upper().replace("V1=", "v1=")
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        headers[wire.H_SIGNATURE] = headers[wire.H_SIGNATURE][3:]
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        del headers[wire.H_NONCE]
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        # The body is covered: same headers, other bytes.
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        expect(p.request("POST", path, heartbeat_body(seq=2), headers, nonce), "bad_signature", False)
        # ... and so is the path with its query.
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        expect(p.request("POST", path + "?x=1", body, headers, nonce), "bad_signature", False)

        # A bad signature's nonce is not remembered: the same nonce then passes.
        headers, nonce = p.signed_headers(path, body, server_id, secret)
        good = dict(headers)
        headers[wire.H_SIGNATURE] = "v1=" + "1" * 64
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        r = p.request("POST", path, body, good, nonce)
        self.assertEqual(r.status, 200)
        # The same request again: replayed_nonce, signed.
        expect(p.request("POST", path, body, good, nonce), "replayed_nonce", True)

        # stale_timestamp beyond 300 s either way, signed; a bad HMAC wins over staleness.
        for delta in (-301 - 2, 301 + 2, -100000):
            r = p.signed(path, body, server_id, secret, ts=now + delta)
            expect(r, "stale_timestamp", True)
        headers, nonce = p.signed_headers(path, body, server_id, secret, ts=now - 1000)
        headers[wire.H_SIGNATURE] = "v1=" + "2" * 64
        expect(p.request("POST", path, body, headers, nonce), "bad_signature", False)
        # Within 300 s: fine.
        self.assertEqual(p.signed(path, body, server_id, secret, ts=int(time.time()) - 250).status, 200)
        # Stale and replayed: stale_timestamp comes first.
        headers, nonce = p.signed_headers(path, body, server_id, secret, ts=now - 1000)
        expect(p.request("POST", path, body, headers, nonce), "stale_timestamp", True)
        expect(p.request("POST", path, body, headers, nonce), "stale_timestamp", True)
        # Another server's nonce is its own business.
        other_id, other_secret = p.new_server()
        self.assertEqual(p.signed(path, body, other_id, other_secret, nonce=good[wire.H_NONCE]).status,
                         200)

    # MARK: bodies

    def test_gzip_and_sizes(self):
        p = self.p
        server_id, secret = p.new_server()
        path = API + "/heartbeat"
        big = heartbeat_body(pad="x" * 9000)
        self.assertGreater(len(big), 8192)
        r = p.signed(path, big, server_id, secret)
        self.assertEqual((r.status, r.json()), (400, {"error": "gzip_required"}))
        self.assertTrue(r.verifies(secret))
        gz = gzip.compress(big)
        r = p.signed(path, gz, server_id, secret, extra={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.verifies(secret))
        # Small bodies may be gzipped too.
        r = p.signed(path, gzip.compress(heartbeat_body()), server_id, secret,
                     extra={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200)
        # Exactly 8192 bytes is still fine uncompressed.
        exact = heartbeat_body(pad="")
        exact = heartbeat_body(pad="x" * (8192 - len(exact)))
        self.assertEqual(len(exact), 8192)
        self.assertEqual(p.signed(path, exact, server_id, secret).status, 200)
        # More than 4 MiB after gunzip.
        bomb = gzip.compress(heartbeat_body(pad="x" * (4 * 1024 * 1024)))
        r = p.signed(path, bomb, server_id, secret, extra={"Content-Encoding": "gzip"})
        self.assertEqual((r.status, r.json()), (413, {"error": "payload_too_large"}))
        self.assertTrue(r.verifies(secret))
        # More than 4 MiB as sent (checked before the gzip rule).
        r = p.signed(path, b" " * (4 * 1024 * 1024 + 1), server_id, secret)
        self.assertEqual((r.status, r.json()), (413, {"error": "payload_too_large"}))
        self.assertTrue(r.verifies(secret))
        # Broken gzip, other encodings, other media types.
        r = p.signed(path, gz[:-10], server_id, secret, extra={"Content-Encoding": "gzip"})
        self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}))
        r = p.signed(path, heartbeat_body(), server_id, secret, extra={"Content-Encoding": "deflate"})
        self.assertEqual((r.status, r.json()), (415, {"error": "unsupported_media_type"}))
        r = p.signed(path, heartbeat_body(), server_id, secret, content_type="text/plain")
        self.assertEqual((r.status, r.json()), (415, {"error": "unsupported_media_type"}))
        self.assertTrue(r.verifies(secret))
        r = p.signed(path, heartbeat_body(), server_id, secret, content_type=None)
        self.assertEqual(r.status, 415)
        r = p.signed(path, heartbeat_body(), server_id, secret,
                     content_type="application/json; charset=utf-8")
        self.assertEqual(r.status, 200)
        # The request log keeps the raw (gzip) bytes as received and the decoded body.
        with p.db() as db:
            rows = db.execute("SELECT raw, body_decoded FROM requests WHERE server_id=? AND status=200 "
                              "ORDER BY id", (server_id,)).fetchall()
        self.assertTrue(any(bytes(raw).endswith(gz) and bytes(dec) == big for raw, dec in rows))
        self.assertTrue(any(bytes(raw).startswith(b"POST " + path.encode() + b" HTTP/1.1\r\n")
                            for raw, _ in rows))
        decoded = p.cli("requests", "--server", server_id, "--decoded").stdout
        self.assertIn(big, decoded)

    def test_strict_json_rejected(self):
        p = self.p
        server_id, secret = p.new_server()
        dup = heartbeat_body()[:-1] + b',"seq":2}'
        for body in (dup, heartbeat_body()[:-1] + b',"x":NaN}', heartbeat_body()[:-1] + b',"x":1e999}',
                     heartbeat_body() + b"{}", b"", b"\xff\xfe"):
            r = p.signed(API + "/heartbeat", body, server_id, secret)
            self.assertEqual((r.status, r.json()), (400, {"error": "invalid_json"}), body)
            self.assertTrue(r.verifies(secret))
        r = p.register(p.token(), os.urandom(32))
        body = b'{"install_token":"a","install_token":"b","secret":"x","host":{}}'
        r = p.request("POST", API + "/register", body,
                      {"Content-Type": "application/json", wire.H_TIMESTAMP: "1",
                       wire.H_NONCE: secrets.token_hex(16)})
        self.assertEqual((r.status, r.json()), (400, {"error": "invalid_json"}))

    def test_keep_alive_chunked_and_expect_continue(self):
        # What libcurl does: reuse connections, chunked bodies, Expect: 100-continue on big ones.
        p = self.p
        server_id, secret = p.new_server()
        path = API + "/heartbeat"
        conn = p.connection()
        try:
            for seq in (1, 2):
                body = heartbeat_body(seq=seq)
                headers, nonce = p.signed_headers(path, body, server_id, secret)
                conn.request("POST", path, headers=headers,
                             body=body if seq == 1 else iter([body[:10], body[10:]]))
                resp = conn.getresponse()
                data = resp.read()
                self.assertEqual(resp.status, 200, data)
                self.assertTrue(Response(resp.status, resp.headers, data, nonce).verifies(secret))
        finally:
            conn.close()
        body = gzip.compress(heartbeat_body(seq=3, pad=secrets.token_hex(8000)))
        headers, nonce = p.signed_headers(path, body, server_id, secret,
                                          extra={"Content-Encoding": "gzip"})
        raw = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        tls = p.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        try:
            head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" \
                   "Expect: 100-continue\r\n" % (path, len(body))
            head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
            tls.sendall(head.encode())
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += tls.recv(1)
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            tls.sendall(body)
            resp = http.client.HTTPResponse(tls)
            resp.begin()
            data = resp.read()
            self.assertEqual(resp.status, 200, data)
            self.assertTrue(Response(resp.status, resp.headers, data, nonce).verifies(secret))
        finally:
            tls.close()

    def test_routing(self):
        p = self.p
        r = p.request("GET", API + "/heartbeat")
        self.assertEqual((r.status, r.json()), (405, {"error": "method_not_allowed"}))
        self.assertEqual(r.headers["Allow"], "POST")
        for path in (API + "/nope", "/", API + "/heartbeat/", "/api/agent/v2/heartbeat"):
            r = p.request("POST", path, b"{}", {"Content-Type": "application/json"})
            self.assertEqual((r.status, r.json()), (404, {"error": "not_found"}), path)

    # MARK: snapshots

    def test_snapshots_stored_exactly_and_deduplicated(self):
        p = self.p
        server_id, secret = p.new_server()
        snaps = [b'{"schema":1,"seq":1,"collected_at":1795940000,"host":{"hostname":"h\xc3\xa4"}}',
                 b'{"collected_at":1795940300,"schema":1,"seq":2,"note":"\\u00e4 \\"q\\"","x":1.50}',
                 b'{"schema":1,"seq":3,"collected_at":1795940600,"list":[ ],"o":{"a":"]},"}}']

        def batch(items):
            return b'{"snapshots":[' + b",".join(items) + b"]}"

        r = p.signed(API + "/snapshots", batch(snaps[:2]), server_id, secret)
        self.assertEqual((r.status, r.json()), (200, {"accepted": 2}))
        self.assertTrue(r.verifies(secret))
        # Overlapping resend (as after a lost response), gzipped.
        r = p.signed(API + "/snapshots", gzip.compress(batch(snaps)), server_id, secret,
                     extra={"Content-Encoding": "gzip"})
        self.assertEqual((r.status, r.json()), (200, {"accepted": 3}))
        for i, raw in enumerate(snaps, 1):
            out = p.cli("snapshots", server_id, "--raw", "--seq", str(i)).stdout
            self.assertEqual(out, raw)
        listing = [json.loads(l) for l in p.cli("snapshots", server_id).stdout.splitlines()]
        self.assertEqual([s["seq"] for s in listing], [1, 2, 3])
        self.assertEqual([s["duplicates"] for s in listing], [1, 1, 0])
        self.assertEqual(listing[0]["sha256"], hashlib.sha256(snaps[0]).hexdigest())
        self.assertEqual(p.cli("snapshots", server_id, "--raw").stdout, b"\n".join(snaps) + b"\n")
        # Empty batch, too many, bad snapshots.
        r = p.signed(API + "/snapshots", b'{"snapshots":[]}', server_id, secret)
        self.assertEqual((r.status, r.json()), (200, {"accepted": 0}))
        many = [b'{"schema":1,"seq":%d,"collected_at":1}' % (10 + i) for i in range(17)]
        r = p.signed(API + "/snapshots", batch(many), server_id, secret)
        self.assertEqual((r.status, r.json()), (413, {"error": "batch_too_large"}))
        self.assertTrue(r.verifies(secret))
        self.assertEqual(p.signed(API + "/snapshots", batch(many[:16]), server_id, secret).json(),
                         {"accepted": 16})
        for bad in (b'{"schema":2,"seq":40,"collected_at":1}', b'{"schema":1,"collected_at":1}',
                    b'{"schema":1,"seq":0,"collected_at":1}', b'[1]'):
            r = p.signed(API + "/snapshots", batch([bad]), server_id, secret)
            self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}), bad)
        r = p.signed(API + "/snapshots", b'{"snapshots":{}}', server_id, secret)
        self.assertEqual(r.status, 400)

    # MARK: commands

    def test_long_poll_returns_when_a_command_is_queued(self):
        p = self.p
        server_id, secret = p.new_server()
        # Nothing queued: an empty-body poll answers at once, wait_s 1 after about a second.
        r = p.signed(API + "/commands/poll", b"", server_id, secret, content_type=None)
        self.assertEqual((r.status, r.json()), (200, {"commands": []}))
        self.assertTrue(r.verifies(secret))
        t0 = time.monotonic()
        r = p.signed(API + "/commands/poll", b'{"wait_s":1}', server_id, secret)
        self.assertEqual(r.json(), {"commands": []})
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        r = p.signed(API + "/commands/poll", b'{"wait_s":-1}', server_id, secret)
        self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}))

        result = {}

        def poll():
            start = time.monotonic()
            result["resp"] = p.signed(API + "/commands/poll", b'{"wait_s":20}', server_id, secret,
                                      timeout=40)
            result["took"] = time.monotonic() - start

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.5)
        queued = json.loads(p.cli("command", server_id, '{"type":"resync"}').stdout)
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertLess(result["took"], 5)
        resp = result["resp"]
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.verifies(secret))
        cmds = resp.json()["commands"]
        self.assertEqual(cmds, [queued])
        self.assertRegex(queued["id"], r"^cmd_[0-9a-f]+$")
        self.assertEqual(queued["expires_at"] - queued["issued_at"], 600)
        # Delivered: not pending, not delivered again right away.
        hb = p.signed(API + "/heartbeat", heartbeat_body(), server_id, secret)
        self.assertFalse(hb.json()["commands_pending"])
        self.assertEqual(p.signed(API + "/commands/poll", b"{}", server_id, secret).json(),
                         {"commands": []})
        # A queued, undelivered command shows in the heartbeat and is delivered at once.
        p.cli("command", server_id, '{"id":"cmd_second","type":"resync","expires_at":1}')
        hb = p.signed(API + "/heartbeat", heartbeat_body(), server_id, secret)
        self.assertTrue(hb.json()["commands_pending"])
        r = p.signed(API + "/commands/poll", b'{"wait_s":25}', server_id, secret)
        self.assertEqual([c["id"] for c in r.json()["commands"]], ["cmd_second"])
        # Duplicate id refused by the CLI; a command for an unknown server too.
        self.assertEqual(p.cli("command", server_id, '{"id":"cmd_second"}', check=False).returncode, 65)
        self.assertEqual(p.cli("command", "srv_nope", '{"type":"resync"}', check=False).returncode, 66)
        self.assertEqual(p.cli("command", server_id, '{"a":1,"a":2}', check=False).returncode, 65)

    def test_results(self):
        p = self.p
        server_id, secret = p.new_server()
        cmd = json.loads(p.cli("command", server_id, '{"type":"service","instance":"i1",'
                                                     '"action":"restart"}').stdout)
        p.signed(API + "/commands/poll", b"{}", server_id, secret)
        path = API + "/commands/%s/result" % cmd["id"]
        result = {"status": "succeeded", "started_at": 1, "finished_at": 2, "message": "ok",
                  "details": {"pid": 42}}
        r = p.signed(path, json.dumps(result).encode(), server_id, secret)
        self.assertEqual((r.status, r.json()), (200, {}))
        self.assertTrue(r.verifies(secret))
        # A resent result (even with another status) does not change the stored one.
        result2 = dict(result, status="failed")
        self.assertEqual(p.signed(path, json.dumps(result2).encode(), server_id, secret).status, 200)
        rows = [json.loads(l) for l in p.cli("results", server_id).stdout.splitlines()]
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["status"], rows[0]["resends"], rows[0]["body"]["details"]),
                         ("succeeded", 1, {"pid": 42}))
        # Unknown commands, another server's command, invalid ids: 404 unknown_command, signed.
        other_id, other_secret = p.new_server()
        for sid, sec, cid in ((server_id, secret, "cmd_unknown"), (other_id, other_secret, cmd["id"]),
                              (server_id, secret, "bad%20id")):
            r = p.signed(API + "/commands/%s/result" % cid, json.dumps(result).encode(), sid, sec)
            self.assertEqual((r.status, r.json()), (404, {"error": "unknown_command"}), cid)
            self.assertTrue(r.verifies(sec))
        r = p.signed(path, b'{"status":"done"}', server_id, secret)
        self.assertEqual((r.status, r.json()), (400, {"error": "bad_request"}))
        # With a result, the command is never delivered again.
        with p.db() as db:
            db.execute("UPDATE commands SET last_delivered_at=0")
        self.assertEqual(p.signed(API + "/commands/poll", b"{}", server_id, secret).json(),
                         {"commands": []})


class TestFaults(unittest.TestCase):
    """Each fault mode, set at runtime with `devpanel fault` (and one at start with --fault)."""

    @classmethod
    def setUpClass(cls):
        cls.p = Panel(cls.addClassCleanup, "--fault", "rate-limit")
        cls.server_id, cls.secret = None, None

    def fault(self, name):
        self.p.cli("fault", name)

    def hb(self, **kw):
        return self.p.signed(API + "/heartbeat", heartbeat_body(), self.server_id, self.secret, **kw)

    def poll(self):
        return self.p.signed(API + "/commands/poll", b"{}", self.server_id, self.secret)

    def test_faults(self):
        p = self.p
        # --fault at start: rate-limit, signed (registration carries a valid secret).
        secret = os.urandom(32)
        token = p.token()
        r = p.register(token, secret)
        self.assertEqual((r.status, r.json()), (429, {"error": "rate_limited"}))
        self.assertTrue(r.verifies(secret))
        self.fault("none")
        self.assertEqual(p.cli("fault").stdout.strip(), b"none")
        r = p.register(token, secret)
        self.assertEqual(r.status, 201)
        type(self).server_id, type(self).secret = r.json()["server_id"], secret
        before = self.hb()
        self.assertEqual(before.status, 200)

        with self.subTest("500"):
            self.fault("500")
            r = self.hb()
            self.assertEqual((r.status, r.json()), (500, {"error": "internal_error"}))
            self.assertTrue(r.verifies(secret))

        with self.subTest("rate-limit"):
            self.fault("rate-limit")
            r = self.hb()
            self.assertEqual((r.status, r.json()), (429, {"error": "rate_limited"}))
            self.assertTrue(r.verifies(secret))

        with self.subTest("garbage"):
            self.fault("garbage")
            r = self.hb()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.verifies(secret))
            with self.assertRaises(ValueError):
                json.loads(r.body)

        with self.subTest("bad-signature"):
            self.fault("bad-signature")
            r = self.hb()
            self.assertEqual(r.status, 200)
            self.assertIn("heartbeat_interval_s", r.json())
            self.assertRegex(r.headers[wire.H_SIGNATURE], r"^v1=[0-9a-f]{64}$")
            self.assertFalse(r.verifies(secret))

        with self.subTest("unsigned"):
            self.fault("unsigned")
            r = self.hb()
            self.assertEqual(r.status, 200)
            self.assertIn("heartbeat_interval_s", r.json())
            self.assertFalse(r.signed)

        with self.subTest("replay"):
            self.fault("replay")
            r = self.hb()
            self.assertEqual(r.status, 200)
            self.assertFalse(r.verifies(secret))
            # It is the earlier genuine response, bound to that request's nonce.
            self.assertEqual(r.body, before.body)
            self.assertEqual(r.headers[wire.H_SIGNATURE], before.headers[wire.H_SIGNATURE])
            self.assertTrue(r.verifies(secret, nonce=before.nonce))

        with self.subTest("clock-skew"):
            self.fault("clock-skew:1000")
            r = self.hb()
            self.assertEqual((r.status, r.json()), (401, {"error": "stale_timestamp"}))
            self.assertTrue(r.verifies(secret))
            offset = int(r.headers[wire.H_TIMESTAMP]) - int(time.time())
            self.assertTrue(995 <= offset <= 1005, offset)
            r = self.hb(ts=int(time.time()) + offset)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.verifies(secret))

        with self.subTest("truncated"):
            self.fault("truncated")
            headers, nonce = p.signed_headers(API + "/heartbeat", heartbeat_body(), self.server_id,
                                              secret)
            conn = p.connection()
            try:
                conn.request("POST", API + "/heartbeat", heartbeat_body(), headers)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                declared = int(resp.headers["Content-Length"])
                with self.assertRaises(http.client.IncompleteRead) as cm:
                    resp.read()
                self.assertLess(len(cm.exception.partial), declared)
            finally:
                conn.close()

        with self.subTest("slow-drip"):
            self.fault("slow-drip")
            headers, nonce = p.signed_headers(API + "/heartbeat", heartbeat_body(), self.server_id,
                                              secret)
            conn = p.connection()
            try:
                conn.request("POST", API + "/heartbeat", heartbeat_body(), headers)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertGreater(int(resp.headers["Content-Length"]), 10)
                t0 = time.monotonic()
                first = resp.read(1)
                second = resp.read(1)
                took = time.monotonic() - t0
                self.assertEqual(first + second, b'{"')
                self.assertGreaterEqual(took, 0.8)
            finally:
                conn.close()

        with self.subTest("huge"):
            self.fault("huge")
            headers, nonce = p.signed_headers(API + "/heartbeat", heartbeat_body(), self.server_id,
                                              secret)
            conn = p.connection(timeout=30)
            try:
                conn.request("POST", API + "/heartbeat", heartbeat_body(), headers)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertEqual(int(resp.headers["Content-Length"]), 100 * 1024 * 1024)
                self.assertTrue(resp.read(65536).startswith(b'{"commands":[],"pad":"xxx'))
            finally:
                conn.close()

        for kind in ("invalid-json", "invalid-utf8"):
            with self.subTest(kind):
                self.fault(kind)
                # Signed, and tempting: only a strict parser refuses it.
                r = self.hb()
                self.assertEqual(r.status, 200)
                self.assertTrue(r.verifies(secret))
                with self.assertRaises(wire.WireError):
                    wire.parse_strict(r.body)
                lenient = json.loads(r.body.decode("utf-8", "replace"))
                self.assertTrue(lenient["commands_pending"])
                r = self.poll()
                self.assertTrue(r.verifies(secret))
                self.assertEqual(json.loads(r.body.decode("utf-8", "replace"))["commands"][0]["id"],
                                 "cmd_fault_" + kind.replace("-", "_"))
                batch = json.dumps({"snapshots": [{"schema": 1, "seq": 900 + i, "collected_at": 1}
                                                  for i in range(3)]}).encode()
                r = p.signed(API + "/snapshots", batch, self.server_id, secret)
                self.assertEqual(json.loads(r.body.decode("utf-8", "replace"))["accepted"], 3)
                self.assertTrue(r.verifies(secret))
                # Not processed.
                self.assertNotIn(b'"seq":900', p.cli("snapshots", self.server_id, "--raw").stdout)

        with self.subTest("duplicate-ids"):
            self.fault("duplicate-ids")
            queued = json.loads(p.cli("command", self.server_id, '{"type":"resync"}').stdout)
            r = self.poll()
            self.assertTrue(r.verifies(secret))
            commands = r.json()["commands"]
            self.assertEqual([c["id"] for c in commands], [queued["id"]] * 3)
            self.assertEqual(commands[:2], [queued, queued])
            self.assertEqual(commands[2]["type"], "service")

        with self.subTest("hostile-commands"):
            self.fault("hostile-commands")
            r = self.poll()
            self.assertTrue(r.verifies(secret))
            commands = r.json()["commands"]
            ids = [c.get("id") for c in commands]
            self.assertIn("../../../../tmp/myosicam-hostile", ids)
            self.assertIn(None, ids)
            self.assertIn(12345, ids)
            by_suffix = {c["id"].split("_", 2)[2]: c for c in commands
                         if isinstance(c.get("id"), str) and c["id"].startswith("hostile_")}
            self.assertIn("\n[account]", by_suffix["nl_value"]["edits"][0]["set"]["pwd"])
            self.assertEqual(len(by_suffix["enormous_edits"]["edits"]), 30000)
            self.assertEqual(by_suffix["traversal_instance"]["instance"], "../../../../etc")
            self.assertLess(len(r.body), 4 << 20, "the agent must be able to read the answer")
            # Queued once: the next poll (after they were delivered) has none of them.
            self.assertEqual(p.signed(API + "/commands/poll", b"{}", self.server_id, secret).json(),
                             {"commands": []})

        with self.subTest("down"):
            self.fault("down")
            with self.assertRaises((OSError, http.client.HTTPException)):
                self.hb(timeout=5)

        with self.subTest("unknown fault"):
            self.assertEqual(p.cli("fault", "wobble", check=False).returncode, 64)

        self.fault("none")
        self.assertEqual(self.hb().status, 200)


class TestServeOptions(unittest.TestCase):
    def test_ipv6_loopback_and_refusal_of_other_hosts(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no ::1")
        p = Panel(self.addCleanup, "--host", "::1")
        conn = http.client.HTTPSConnection("::1", p.port, context=p.ctx, timeout=10)
        try:
            conn.request("POST", API + "/heartbeat", b"{}", {"Content-Type": "application/json"})
            resp = conn.getresponse()
            self.assertEqual((resp.status, json.loads(resp.read())), (401, {"error": "unknown_server"}))
        finally:
            conn.close()
        proc = subprocess.run([sys.executable, DEVPANEL, "serve", "--data", p.data, "--port", "0",
                               "--host", "0.0.0.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)
        self.assertEqual(proc.returncode, 69)
        self.assertIn(b"loopback only", proc.stderr)


if __name__ == "__main__":
    unittest.main()
