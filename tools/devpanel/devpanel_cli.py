"""Command line of the development panel: `serve` and the admin subcommands.

Admin subcommands work on the sqlite store directly and may run while `serve` runs. Listings
print one JSON object per line (stable keys, sorted), so tests and shells can parse them.
Exit codes follow sysexits: 64 usage, 65 bad data, 66 no such store/server/item, 69 cannot
serve (port in use, openssl missing).
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time

import devpanel_faults as faults
import devpanel_store as store_mod
import devpanel_wire as wire

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69


class UsageError(Exception):
    pass


class DataError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("%s: error: %s\n" % (self.prog, message))
        sys.exit(EX_USAGE)


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


def text_or_b64(raw):
    """A stored body for a JSON listing: parsed JSON when it is JSON, else its UTF-8 text."""
    try:
        return json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return bytes(raw).decode("utf-8", "replace")


def panel_now(store):
    try:
        fault = faults.parse_fault(store.get_setting("fault"))
    except ValueError:
        fault = None
    return int(time.time()) + faults.skew(fault)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("%r is negative" % text)
    return value


def any_int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)


# MARK: - serve

def cmd_serve(args):
    import devpanel_server as server_mod    # only `serve` pays for http.server and ssl
    import devpanel_tls as tls_mod
    try:
        fault = faults.parse_fault(args.fault)
    except ValueError as e:
        raise UsageError(str(e))
    store = store_mod.Store(args.data, create=True)
    try:
        tls = tls_mod.ensure(store.data_dir)
        pin = tls_mod.pin_sha256(tls["server.key"])
    except (tls_mod.TLSError, OSError) as e:
        sys.stderr.write("devpanel: cannot create the loopback CA: %s\n" % e)
        return EX_UNAVAILABLE
    panel = server_mod.Panel(store, redeliver_after=args.redeliver_after)
    ctx = server_mod.make_ssl_context(tls["server.pem"], tls["server.key"])
    try:
        httpd = server_mod.PanelServer(args.host, args.port, panel, ctx)
    except (OSError, ValueError) as e:
        sys.stderr.write("devpanel: cannot listen on %s port %d: %s\n" % (args.host, args.port, e))
        return EX_UNAVAILABLE
    # Only once listening: a second `serve` that cannot bind must not reset the running one.
    store.set_setting("fault", faults.fault_text(fault))
    store.set_setting("heartbeat_interval_s", args.heartbeat_interval)
    store.set_setting("snapshot_interval_s", args.snapshot_interval)
    port = httpd.server_address[1]
    host = "[%s]" % args.host if ":" in args.host else args.host
    with open(os.path.join(store.data_dir, "pin-sha256.txt"), "w") as f:
        f.write(pin + "\n")
    print("devpanel: listening on https://%s:%d%s" % (host, port, wire.API_PREFIX))
    print("devpanel: panel url https://%s:%d" % (host, port))
    print("devpanel: CA certificate %s" % tls["ca.pem"])
    print("devpanel: server key pin %s" % pin)
    print("devpanel: fault %s" % (faults.fault_text(fault) or "none"))
    sys.stdout.flush()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)

    def stop(signum, frame):
        panel.stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        panel.stop.set()
        httpd.server_close()
    return 0


# MARK: - admin

def open_store(args):
    try:
        return store_mod.Store(args.data)
    except store_mod.StoreError as e:
        raise LookupError(str(e))


def cmd_token(args):
    store = store_mod.Store(args.data, create=True)
    print(store.mint_token(panel_now(store), args.ttl))
    return 0


def cmd_servers(args):
    for srv in open_store(args).servers():
        emit(srv)
    return 0


def require_server(store, server_id):
    try:
        store.require_server(server_id)
    except store_mod.StoreError as e:
        raise LookupError(str(e))


def cmd_snapshots(args):
    store = open_store(args)
    require_server(store, args.server)
    rows = store.snapshots(args.server)
    if args.seq is not None:
        rows = [r for r in rows if r[0] == args.seq]
        if not rows:
            raise LookupError("server %s has no snapshot with seq %d" % (args.server, args.seq))
    elif args.latest:
        rows = rows[-1:]
        if not rows:
            raise LookupError("server %s has no snapshot" % args.server)
    if args.raw:
        out = sys.stdout.buffer
        if len(rows) == 1 and (args.seq is not None or args.latest):
            out.write(rows[0][4])
        else:
            for row in rows:
                out.write(row[4] + b"\n")
        out.flush()
        return 0
    for seq, received_at, collected_at, sha, raw, dups, mism in rows:
        emit({"seq": seq, "received_at": received_at, "collected_at": collected_at, "sha256": sha,
              "bytes": len(raw), "duplicates": dups, "mismatched_duplicates": mism})
    return 0


def cmd_heartbeats(args):
    store = open_store(args)
    require_server(store, args.server)
    for received_at, seq, body in store.heartbeats(args.server, args.last):
        emit({"received_at": received_at, "seq": seq, "body": text_or_b64(body)})
    return 0


def cmd_command(args):
    store = open_store(args)
    text = sys.stdin.read() if args.json == "-" else args.json
    try:
        doc, _ = wire.parse_strict(text.encode("utf-8"))
    except (wire.WireError, UnicodeEncodeError):
        raise DataError("the command is not strict JSON (duplicate keys, NaN and trailing data "
                        "are refused)")
    if not isinstance(doc, dict):
        raise DataError("the command must be a JSON object")
    now = panel_now(store)
    doc.setdefault("id", "cmd_" + secrets.token_hex(8))
    doc.setdefault("issued_at", now)
    doc.setdefault("expires_at", (doc["issued_at"] if wire.is_int(doc["issued_at"]) else now) + args.ttl)
    if not isinstance(doc["id"], str) or (not args.allow_invalid_id and not wire.ID_RE.match(doc["id"])):
        raise DataError("command id must match [A-Za-z0-9_-]{1,64} (--allow-invalid-id to send a "
                        "bad one on purpose)")
    body = wire.dumps(doc).decode("ascii")
    try:
        store.queue_command(args.server, doc["id"], body, now)
    except store_mod.StoreError as e:
        if "unknown server" in str(e):
            raise LookupError(str(e))
        raise DataError(str(e))
    print(body)
    return 0


def cmd_commands(args):
    store = open_store(args)
    require_server(store, args.server)
    for cid, body, created_at, count, first, last, status in store.commands(args.server):
        emit({"id": cid, "command": json.loads(body), "created_at": created_at,
              "delivery_count": count,
              "first_delivered_at": int(first) if first is not None else None,
              "last_delivered_at": int(last) if last is not None else None,
              "result_status": status})
    return 0


def cmd_results(args):
    store = open_store(args)
    require_server(store, args.server)
    for cid, status, body, received_at, resends, last in store.results(args.server):
        emit({"command_id": cid, "status": status, "received_at": received_at, "resends": resends,
              "last_received_at": last, "body": text_or_b64(body)})
    return 0


def cmd_revoke(args):
    store = open_store(args)
    try:
        store.revoke(args.server, panel_now(store))
    except store_mod.StoreError as e:
        raise LookupError(str(e))
    print("revoked %s" % args.server)
    return 0


def cmd_unrevoke(args):
    store = open_store(args)
    try:
        store.unrevoke(args.server)
    except store_mod.StoreError as e:
        if "not revoked" in str(e):
            raise DataError(str(e))
        raise LookupError(str(e))
    print("unrevoked %s" % args.server)
    return 0


def cmd_fault(args):
    store = open_store(args)
    if args.name is None:
        print(store.get_setting("fault") or "none")
        return 0
    try:
        fault = faults.parse_fault(args.name)
    except ValueError as e:
        raise UsageError(str(e))
    store.set_setting("fault", faults.fault_text(fault))
    print("fault %s" % (faults.fault_text(fault) or "none"))
    return 0


def cmd_intervals(args):
    store = open_store(args)
    if args.heartbeat is not None:
        store.set_setting("heartbeat_interval_s", args.heartbeat)
    if args.snapshot is not None:
        store.set_setting("snapshot_interval_s", args.snapshot)
    emit({"heartbeat_interval_s": int(store.get_setting("heartbeat_interval_s", 60)),
          "snapshot_interval_s": int(store.get_setting("snapshot_interval_s", 300))})
    return 0


def cmd_requests(args):
    store = open_store(args)
    rows = store.requests(args.server)
    if args.raw or args.decoded:
        out = sys.stdout.buffer
        for row in rows:
            data = row[9] if args.raw else row[11]
            if data is not None:
                out.write(bytes(data) + b"\n")
        out.flush()
        return 0
    for (rid, received_at, remote, method, path, server_id, status, error, fault, raw, trunc,
         decoded) in rows:
        emit({"id": rid, "received_at": round(received_at, 3), "remote": remote, "method": method,
              "path": path, "server_id": server_id, "status": status, "error": error,
              "fault": fault, "raw_bytes": len(raw), "raw_truncated": bool(trunc),
              "decoded_bytes": len(decoded) if decoded is not None else None})
    return 0


# MARK: - main

def build_parser():
    p = Parser(prog="devpanel", description="Development panel for myosicam-agent (Panel API v1).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    def add(name, func, help_text, server=False):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--data", required=True, metavar="DIR", help="data directory (store, CA)")
        if server:
            sp.add_argument("server", metavar="SERVER", help="server id (srv_...)")
        sp.set_defaults(func=func)
        return sp

    sp = add("serve", cmd_serve, "run the HTTPS panel on loopback")
    sp.add_argument("--host", default="127.0.0.1", help="loopback address: 127.0.0.1 (default) or ::1")
    sp.add_argument("--port", type=positive_int, default=8443, help="port; 0 picks a free one")
    sp.add_argument("--port-file", metavar="FILE", help="write the bound port here once listening")
    sp.add_argument("--fault", default=None, metavar="NAME", help="start with this fault mode")
    sp.add_argument("--heartbeat-interval", type=any_int, default=60, metavar="S",
                    help="heartbeat_interval_s sent to agents (not clamped: tests clamp on the agent)")
    sp.add_argument("--snapshot-interval", type=any_int, default=300, metavar="S",
                    help="snapshot_interval_s sent to agents")
    sp.add_argument("--redeliver-after", type=positive_int, default=60, metavar="S",
                    help="deliver a command again when it has no result this long after delivery")

    sp = add("token", cmd_token, "mint a one-time install token")
    sp.add_argument("--ttl", type=positive_int, default=86400, metavar="SECONDS",
                    help="lifetime of a first use (default 86400)")

    add("servers", cmd_servers, "list registered servers (JSON lines)")

    sp = add("snapshots", cmd_snapshots, "list a server's snapshots, or print their bytes", server=True)
    sp.add_argument("--raw", action="store_true", help="print the stored bytes exactly")
    sp.add_argument("--seq", type=positive_int, help="only this seq (with --raw: no trailing newline)")
    sp.add_argument("--latest", action="store_true", help="only the highest seq")

    sp = add("heartbeats", cmd_heartbeats, "list a server's heartbeats (JSON lines)", server=True)
    sp.add_argument("--last", type=positive_int, metavar="N", help="only the last N")

    sp = add("command", cmd_command, "queue a command for a server; prints it", server=True)
    sp.add_argument("json", metavar="JSON", help="the command object, or - for stdin")
    sp.add_argument("--ttl", type=any_int, default=600, metavar="SECONDS",
                    help="expires_at = issued_at + this, when not given (default 600)")
    sp.add_argument("--allow-invalid-id", action="store_true",
                    help="queue an id outside [A-Za-z0-9_-]{1,64} (agent robustness tests)")

    add("commands", cmd_commands, "list a server's commands and their delivery state", server=True)
    add("results", cmd_results, "list a server's command results (JSON lines)", server=True)
    add("revoke", cmd_revoke, "revoke a server: its requests get 401 unknown_server", server=True)
    add("unrevoke", cmd_unrevoke, "undo revoke: the server's requests are accepted again", server=True)

    sp = add("fault", cmd_fault, "show or set the fault mode of a running panel")
    sp.add_argument("name", nargs="?", metavar="NAME|none")

    sp = add("intervals", cmd_intervals, "show or set the intervals sent to agents")
    sp.add_argument("--heartbeat", type=any_int, metavar="S")
    sp.add_argument("--snapshot", type=any_int, metavar="S")

    sp = add("requests", cmd_requests, "the request log (JSON lines; --raw/--decoded: bytes)")
    sp.add_argument("--server", metavar="SERVER", help="only this server's requests")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--raw", action="store_true", help="raw request bytes as received, one per line")
    g.add_argument("--decoded", action="store_true", help="bodies after gunzip, one per line")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        sys.stderr.write("devpanel: %s\n" % e)
        return EX_USAGE
    except DataError as e:
        sys.stderr.write("devpanel: %s\n" % e)
        return EX_DATAERR
    except LookupError as e:
        sys.stderr.write("devpanel: %s\n" % (e.args[0] if e.args else e))
        return EX_NOINPUT
    except BrokenPipeError:
        return 0
