"""The development panel's store: one sqlite3 file in the data directory.

`serve` and the admin subcommands open it at the same time, each with its own connections, so
it runs in WAL mode with a busy timeout and every write is one short `BEGIN IMMEDIATE`
transaction. Raw bytes (snapshots, requests) are BLOBs, stored exactly as received.
"""

import hashlib
import json
import os
import secrets
import sqlite3

DB_NAME = "devpanel.sqlite3"
SCHEMA_VERSION = 1
RESPONSES_KEPT = 50         # signed responses kept per server for the `replay` fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    server_id TEXT,
    used_at INTEGER
);
CREATE TABLE IF NOT EXISTS servers (
    server_id TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    token_sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    register_count INTEGER NOT NULL DEFAULT 1,
    last_seen_at INTEGER,
    last_heartbeat_at INTEGER,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS nonces (
    server_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (server_id, nonce)
);
CREATE TABLE IF NOT EXISTS heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_server ON heartbeats (server_id, id);
CREATE TABLE IF NOT EXISTS snapshots (
    server_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    collected_at INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    raw BLOB NOT NULL,
    duplicates INTEGER NOT NULL DEFAULT 0,
    mismatches INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_id, seq)
);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    queued_order INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    first_delivered_at REAL,
    last_delivered_at REAL
);
CREATE INDEX IF NOT EXISTS commands_server ON commands (server_id, queued_order);
CREATE TABLE IF NOT EXISTS results (
    command_id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    resends INTEGER NOT NULL DEFAULT 0,
    last_received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signed_responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    path TEXT NOT NULL,
    nonce TEXT NOT NULL,
    status INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    signature TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS signed_responses_server ON signed_responses (server_id, id);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    remote TEXT NOT NULL,
    method TEXT,
    path TEXT,
    server_id TEXT,
    status INTEGER,
    error TEXT,
    fault TEXT,
    raw BLOB NOT NULL,
    raw_truncated INTEGER NOT NULL DEFAULT 0,
    body_decoded BLOB
);
"""


class StoreError(Exception):
    """An admin-side failure with a message for the operator."""


def db_path(data_dir):
    return os.path.join(data_dir, DB_NAME)


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """Opens a fresh connection per use; safe to share between threads."""

    def __init__(self, data_dir, create=False):
        self.data_dir = os.path.abspath(data_dir)
        self.path = db_path(self.data_dir)
        if create:
            os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        elif not os.path.exists(self.path):
            raise StoreError("no devpanel store at %s (run `devpanel serve` or `devpanel token` "
                             "with this --data first)" % self.path)
        old_umask = os.umask(0o077)
        try:
            with self.connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                             (str(SCHEMA_VERSION),))
        finally:
            os.umask(old_umask)

    def connect(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        return _Conn(conn)

    # MARK: - Settings (fault mode, intervals)

    def get_setting(self, key, default=None):
        with self.connect() as c:
            row = c.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key, value):
        with self.connect() as c:
            if value is None:
                c.execute("DELETE FROM settings WHERE key=?", (key,))
            else:
                c.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, str(value)))

    # MARK: - Tokens and registration

    def mint_token(self, now, ttl):
        token = "mit_" + secrets.token_urlsafe(32)
        with self.connect() as c:
            c.execute("INSERT INTO tokens (token_sha256, created_at, expires_at) VALUES (?, ?, ?)",
                      (token_hash(token), now, now + ttl))
        return token

    def register(self, token, secret, host_json, now, compare):
        """Runs the register decision in one transaction.

        Returns (status, server_id) with status 201 or 200, or (error_name, None).
        `compare` is the constant-time comparison for the secrets.
        """
        th = token_hash(token)
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT expires_at, server_id FROM tokens WHERE token_sha256=?",
                            (th,)).fetchone()
            if row is None:
                c.execute("COMMIT")
                return "invalid_token", None
            expires_at, server_id = row
            if server_id is not None:
                srv = c.execute("SELECT secret, revoked_at FROM servers WHERE server_id=?",
                                (server_id,)).fetchone()
                if srv is None or srv[1] is not None:
                    c.execute("COMMIT")
                    return "invalid_token", None
                if not compare(bytes(srv[0]), secret):
                    c.execute("COMMIT")
                    return "token_used", None
                c.execute("UPDATE servers SET register_count=register_count+1, last_seen_at=? "
                          "WHERE server_id=?", (now, server_id))
                c.execute("COMMIT")
                return 200, server_id
            if now >= expires_at:
                c.execute("COMMIT")
                return "invalid_token", None
            server_id = "srv_" + secrets.token_hex(8)
            c.execute("INSERT INTO servers (server_id, secret, token_sha256, host, created_at, "
                      "last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                      (server_id, secret, th, host_json, now, now))
            c.execute("UPDATE tokens SET server_id=?, used_at=? WHERE token_sha256=?",
                      (server_id, now, th))
            c.execute("COMMIT")
            return 201, server_id

    def server_secret(self, server_id):
        """The secret of a known, non-revoked server, or None."""
        with self.connect() as c:
            row = c.execute("SELECT secret FROM servers WHERE server_id=? AND revoked_at IS NULL",
                            (server_id,)).fetchone()
        return bytes(row[0]) if row else None

    def server_for_token(self, token):
        with self.connect() as c:
            row = c.execute("SELECT server_id FROM tokens WHERE token_sha256=?",
                            (token_hash(token),)).fetchone()
        return row[0] if row else None

    def touch_server(self, server_id, now):
        with self.connect() as c:
            c.execute("UPDATE servers SET last_seen_at=? WHERE server_id=?", (now, server_id))

    def revoke(self, server_id, now):
        with self.connect() as c:
            cur = c.execute("UPDATE servers SET revoked_at=? WHERE server_id=? AND revoked_at IS NULL",
                            (now, server_id))
            if cur.rowcount == 0:
                self.require_server(server_id, c)

    def unrevoke(self, server_id):
        with self.connect() as c:
            if self.require_server(server_id, c) is None:
                raise StoreError("server %s is not revoked" % server_id)
            c.execute("UPDATE servers SET revoked_at=NULL WHERE server_id=?", (server_id,))

    def require_server(self, server_id, conn=None):
        def check(c):
            row = c.execute("SELECT revoked_at FROM servers WHERE server_id=?",
                            (server_id,)).fetchone()
            if row is None:
                raise StoreError("unknown server %s" % server_id)
            return row[0]
        if conn is not None:
            return check(conn)
        with self.connect() as c:
            return check(c)

    def servers(self):
        with self.connect() as c:
            rows = c.execute("SELECT server_id, host, created_at, register_count, last_seen_at, "
                             "last_heartbeat_at, revoked_at FROM servers ORDER BY created_at, server_id"
                             ).fetchall()
        out = []
        for r in rows:
            out.append({"server_id": r[0], "host": json.loads(r[1]), "created_at": r[2],
                        "register_count": r[3], "last_seen_at": r[4], "last_heartbeat_at": r[5],
                        "revoked_at": r[6]})
        return out

    # MARK: - Nonces

    def check_and_remember_nonce(self, server_id, nonce, now, window):
        """Remembers a verified request's nonce. True when it was seen within `window` seconds."""
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT seen_at FROM nonces WHERE server_id=? AND nonce=?",
                            (server_id, nonce)).fetchone()
            replayed = row is not None and now - row[0] <= window
            c.execute("INSERT INTO nonces (server_id, nonce, seen_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(server_id, nonce) DO UPDATE SET seen_at=excluded.seen_at",
                      (server_id, nonce, now))
            c.execute("DELETE FROM nonces WHERE seen_at < ?", (now - window - 60,))
            c.execute("COMMIT")
        return replayed

    # MARK: - Heartbeats and snapshots

    def add_heartbeat(self, server_id, seq, body, now):
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO heartbeats (server_id, received_at, seq, body) VALUES (?, ?, ?, ?)",
                      (server_id, now, seq, body))
            c.execute("UPDATE servers SET last_heartbeat_at=?, last_seen_at=? WHERE server_id=?",
                      (now, now, server_id))
            c.execute("COMMIT")

    def heartbeats(self, server_id, last=None):
        with self.connect() as c:
            rows = c.execute("SELECT received_at, seq, body FROM heartbeats WHERE server_id=? "
                             "ORDER BY id", (server_id,)).fetchall()
        if last is not None:
            rows = rows[-last:] if last > 0 else []
        return rows

    def add_snapshots(self, server_id, items, now):
        """Stores (seq, collected_at, raw) items; existing seqs are kept (counted, not replaced)."""
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            for seq, collected_at, raw in items:
                row = c.execute("SELECT raw FROM snapshots WHERE server_id=? AND seq=?",
                                (server_id, seq)).fetchone()
                if row is None:
                    c.execute("INSERT INTO snapshots (server_id, seq, received_at, collected_at, "
                              "sha256, raw) VALUES (?, ?, ?, ?, ?, ?)",
                              (server_id, seq, now, collected_at, hashlib.sha256(raw).hexdigest(),
                               raw))
                else:
                    mismatch = 0 if bytes(row[0]) == raw else 1
                    c.execute("UPDATE snapshots SET duplicates=duplicates+1, "
                              "mismatches=mismatches+? WHERE server_id=? AND seq=?",
                              (mismatch, server_id, seq))
            c.execute("UPDATE servers SET last_seen_at=? WHERE server_id=?", (now, server_id))
            c.execute("COMMIT")

    def snapshots(self, server_id):
        with self.connect() as c:
            rows = c.execute("SELECT seq, received_at, collected_at, sha256, raw, duplicates, "
                             "mismatches FROM snapshots WHERE server_id=? ORDER BY seq",
                             (server_id,)).fetchall()
        return [(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6]) for r in rows]

    # MARK: - Commands and results

    def queue_command(self, server_id, command_id, body_text, now):
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            if self.require_server(server_id, c) is not None:
                c.execute("ROLLBACK")
                raise StoreError("server %s is revoked" % server_id)
            if c.execute("SELECT 1 FROM commands WHERE id=?", (command_id,)).fetchone():
                c.execute("ROLLBACK")
                raise StoreError("command id %s already exists" % command_id)
            order = c.execute("SELECT COALESCE(MAX(queued_order), 0) + 1 FROM commands").fetchone()[0]
            c.execute("INSERT INTO commands (id, server_id, body, created_at, queued_order) "
                      "VALUES (?, ?, ?, ?, ?)", (command_id, server_id, body_text, now, order))
            c.execute("COMMIT")

    def _due_where(self):
        return ("server_id=? AND id NOT IN (SELECT command_id FROM results) AND "
                "(last_delivered_at IS NULL OR last_delivered_at <= ?)")

    def has_due_commands(self, server_id, real_now, redeliver_after):
        with self.connect() as c:
            row = c.execute("SELECT 1 FROM commands WHERE " + self._due_where() + " LIMIT 1",
                            (server_id, real_now - redeliver_after)).fetchone()
        return row is not None

    def take_due_commands(self, server_id, real_now, redeliver_after):
        """Due commands (no result; never delivered or last delivered long enough ago), oldest
        first, marked as delivered in the same transaction."""
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            rows = c.execute("SELECT id, body FROM commands WHERE " + self._due_where() +
                             " ORDER BY queued_order", (server_id, real_now - redeliver_after)
                             ).fetchall()
            for cid, _ in rows:
                c.execute("UPDATE commands SET delivery_count=delivery_count+1, "
                          "first_delivered_at=COALESCE(first_delivered_at, ?), last_delivered_at=? "
                          "WHERE id=?", (real_now, real_now, cid))
            c.execute("COMMIT")
        return [body for _, body in rows]

    def commands(self, server_id):
        with self.connect() as c:
            rows = c.execute("SELECT c.id, c.body, c.created_at, c.delivery_count, "
                             "c.first_delivered_at, c.last_delivered_at, r.status FROM commands c "
                             "LEFT JOIN results r ON r.command_id = c.id WHERE c.server_id=? "
                             "ORDER BY c.queued_order", (server_id,)).fetchall()
        return rows

    def command_owner(self, command_id):
        with self.connect() as c:
            row = c.execute("SELECT server_id FROM commands WHERE id=?", (command_id,)).fetchone()
        return row[0] if row else None

    def add_result(self, server_id, command_id, status, body, now):
        """Stores the first result of a command; a resend only counts. False: unknown command."""
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT server_id FROM commands WHERE id=?", (command_id,)).fetchone()
            if row is None or row[0] != server_id:
                c.execute("COMMIT")
                return False
            cur = c.execute("UPDATE results SET resends=resends+1, last_received_at=? "
                            "WHERE command_id=?", (now, command_id))
            if cur.rowcount == 0:
                c.execute("INSERT INTO results (command_id, server_id, status, body, received_at, "
                          "last_received_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (command_id, server_id, status, body, now, now))
            c.execute("COMMIT")
        return True

    def results(self, server_id):
        with self.connect() as c:
            rows = c.execute("SELECT r.command_id, r.status, r.body, r.received_at, r.resends, "
                             "r.last_received_at FROM results r JOIN commands c ON c.id=r.command_id "
                             "WHERE r.server_id=? ORDER BY c.queued_order", (server_id,)).fetchall()
        return rows

    # MARK: - Signed responses (for the `replay` fault)

    def record_signed_response(self, server_id, path, nonce, status, ts, sig, body):
        with self.connect() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO signed_responses (server_id, path, nonce, status, timestamp, "
                      "signature, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (server_id, path, nonce, status, ts, sig, body))
            c.execute("DELETE FROM signed_responses WHERE server_id=? AND id NOT IN (SELECT id FROM "
                      "signed_responses WHERE server_id=? ORDER BY id DESC LIMIT ?)",
                      (server_id, server_id, RESPONSES_KEPT))
            c.execute("COMMIT")

    def replayable_response(self, server_id, path, nonce):
        """The latest recorded signed response to this server for another nonce, same path first."""
        with self.connect() as c:
            for extra, args in (("AND path=?", (path,)), ("", ())):
                row = c.execute("SELECT status, timestamp, signature, body FROM signed_responses "
                                "WHERE server_id=? AND nonce<>? " + extra + " ORDER BY id DESC LIMIT 1",
                                (server_id, nonce) + args).fetchone()
                if row:
                    return row[0], row[1], row[2], bytes(row[3])
        return None

    # MARK: - Request log

    def log_request(self, received_at, remote, method, path, server_id, status, error, fault,
                    raw, raw_truncated, body_decoded):
        with self.connect() as c:
            c.execute("INSERT INTO requests (received_at, remote, method, path, server_id, status, "
                      "error, fault, raw, raw_truncated, body_decoded) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (received_at, remote, method, path, server_id, status, error, fault, raw,
                       1 if raw_truncated else 0, body_decoded))

    def requests(self, server_id=None):
        with self.connect() as c:
            if server_id is None:
                rows = c.execute("SELECT id, received_at, remote, method, path, server_id, status, "
                                 "error, fault, raw, raw_truncated, body_decoded FROM requests "
                                 "ORDER BY id").fetchall()
            else:
                rows = c.execute("SELECT id, received_at, remote, method, path, server_id, status, "
                                 "error, fault, raw, raw_truncated, body_decoded FROM requests "
                                 "WHERE server_id=? ORDER BY id", (server_id,)).fetchall()
        return rows


class _Conn:
    """A connection that closes at the end of a `with` block (sqlite3's own only commits)."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, *args):
        return self._conn.execute(*args)

    def executescript(self, script):
        return self._conn.executescript(script)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            self._conn.close()
        return False
