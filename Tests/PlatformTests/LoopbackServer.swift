import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP server on 127.0.0.1 for the transport tests: Python 3's standard library, started
/// per test on port 0 and stopped when the test ends (and, should the test process die, when its
/// stdin closes).
///
/// The script lives here rather than in `testdata/` because SwiftPM warns about any unhandled
/// file in a test target, and `PlatformTests` does not exclude `testdata` in Package.swift.
final class LoopbackServer {
    static let digestUser = "admin"
    static let digestPassword = "pä:ss w0rd"

    let port: Int
    private let process: Process
    private let input: Pipe

    struct StartFailed: Error, CustomStringConvertible {
        let description: String
    }

    init() throws {
        process = Process()
        input = Pipe()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script, Self.digestUser, Self.digestPassword]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line is the port; EOF before it means python3 is missing or the script failed.
        var line: [UInt8] = []
        let reader = output.fileHandleForReading
        while let chunk = try reader.read(upToCount: 1), let byte = chunk.first, byte != 0x0A {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw StartFailed(description: "the loopback server did not start (is python3 installed?)")
        }
        self.port = port
    }

    deinit {
        stop()
    }

    /// Stops the server; safe to call more than once. SIGKILL, not `terminate()`: the child
    /// inherits the signal mask of the thread that spawned it, and the test runner's threads
    /// block SIGTERM.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    func url(_ path: String) -> String {
        "http://127.0.0.1:\(port)\(path)"
    }

    /// Endpoints:
    /// - `/echo`: 200 and a JSON description of the request as received (method, target, header
    ///   lines in order, body as hex), plus response headers in mixed case, one of them twice.
    /// - `/status/<code>`: that status, with a `Location` header.
    /// - `/bytes?n=<count>`: a body of exactly `count` bytes.
    /// - `/hang`: reads the request and never answers.
    /// - `/drip`: announces 100 kB, then sends one byte every 20 ms.
    /// - `/digest...`: OScam's WebIF access check (OSCAM.md §7.2): Digest, MD5, qop=auth, realm
    ///   "Forbidden", a fresh nonce and opaque per challenge; 200 with `Authentication-Info` and
    ///   the body "secret page:" + request body when the response hash is right.
    static let script = #"""
import hashlib, http.server, json, os, re, secrets, sys, threading, time

USER, PASSWORD, REALM = sys.argv[1], sys.argv[2], "Forbidden"
NONCES = set()
LOCK = threading.Lock()


def md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "webserver/1.0"
    sys_version = ""

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status not in (204, 304):
            self.wfile.write(body)

    def handle_any(self):
        path, _, query = self.path.partition("?")
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        body = self.read_body()
        if path == "/echo":
            echo = {"method": self.command, "target": self.path, "version": self.request_version,
                    "headers": [[name, value] for name, value in self.headers.items()], "body_hex": body.hex()}
            self.reply(200, json.dumps(echo).encode(), [
                ("Content-Type", "application/json"), ("X-Mixed-Case", "  Value: with colon  "),
                ("X-Dup", "1"), ("X-Dup", "2")])
        elif path.startswith("/status/"):
            self.reply(int(path[len("/status/"):]), b"status body", [("Location", "/echo")])
        elif path == "/bytes":
            self.reply(200, b"x" * int(params["n"]))
        elif path == "/hang":
            time.sleep(60)
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)
        elif path.startswith("/digest"):
            self.digest(body)
        else:
            self.reply(404, b"not found")

    def digest(self, body):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Digest "):
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[len("Digest "):]))
            if (fields.get("username") == USER and fields.get("realm") == REALM
                    and fields.get("nonce") in NONCES and fields.get("qop") == "auth"
                    and fields.get("uri", "").startswith(self.path.partition("?")[0])
                    and fields.get("algorithm", "MD5") == "MD5" and "nc" in fields and "cnonce" in fields):
                ha1 = md5(f"{USER}:{REALM}:{PASSWORD}")
                ha2 = md5(f"{self.command}:{fields['uri']}")
                expected = md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
                if fields.get("response") == expected:
                    self.reply(200, b"secret page:" + body,
                               [("Authentication-Info", f'nextnonce="{secrets.token_hex(16)}"')])
                    return
        nonce = secrets.token_hex(16)
        with LOCK:
            NONCES.add(nonce)
        challenge = (f'Digest algorithm="MD5", realm="{REALM}", qop="auth", '
                     f'opaque="{secrets.token_hex(16)}", nonce="{nonce}"')
        self.reply(401, b"<html>401 Unauthorized</html>", [("WWW-Authenticate", challenge)])

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early are expected here


def exit_with_parent():
    sys.stdin.read()
    os._exit(0)


server = Server(("127.0.0.1", 0), Handler)
threading.Thread(target=exit_with_parent, daemon=True).start()
print(server.server_address[1], flush=True)
server.serve_forever()
"""#
}

/// A loopback port nobody listens on: bound (so no one else takes it) but not listening, so a
/// connection is refused. Closed on `close()` or deinit.
final class ClosedPort {
    let port: Int
    private var descriptor: Int32

    struct Unavailable: Error {}

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else {
            throw Unavailable()
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(descriptor)
            throw Unavailable()
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        close()
    }

    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }
}
