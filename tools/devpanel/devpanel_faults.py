"""Fault modes of the development panel, for the agent's robustness tests (see README.md).

The mode lives in the store (`settings.fault`), so `devpanel fault` changes it while `serve`
runs; the server reads it for every connection and request.
"""

import json
import re

FAULT_NAMES = ("down", "500", "garbage", "bad-signature", "unsigned", "replay", "slow-drip",
               "huge", "truncated", "rate-limit", "invalid-json", "invalid-utf8",
               "hostile-commands", "duplicate-ids")
# These replace the answer of an authenticated request; the request itself is not processed.
CONTENT_FAULTS = ("500", "garbage", "rate-limit", "huge", "replay", "invalid-json", "invalid-utf8")


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


# MARK: - Tempting answers

def tempting_answer(kind, route, now, batch_size=1, intervals=(60, 300)):
    """The signed body of `invalid-json` / `invalid-utf8`: the answer that would make the agent
    act (a command to run, a batch to drop from its spool, a server id to store, a poll to
    start at once), made invalid in one way only, so that only the agent's strict JSON parser
    stands between it and acting on it."""
    hb, snap = intervals
    if route == "register":
        members = [("server_id", '"srv_fault_%s"' % kind.replace("-", "_")), ("heartbeat_interval_s", str(hb)),
                   ("snapshot_interval_s", str(snap)), ("server_time", str(now))]
    elif route == "heartbeat":
        members = [("commands_pending", "true"), ("heartbeat_interval_s", str(hb)),
                   ("snapshot_interval_s", str(snap))]
    elif route == "snapshots":
        members = [("accepted", str(batch_size))]
    elif route == "poll":
        command = json.dumps({"id": "cmd_fault_" + kind.replace("-", "_"), "type": "resync",
                              "issued_at": now, "expires_at": now + 600}, sort_keys=True,
                             separators=(",", ":"))
        members = [("commands", "[%s]" % command)]
    else:
        members = [("ok", "true")]
    body = ",".join('"%s":%s' % pair for pair in members).encode("ascii")
    if kind == "invalid-json":
        # The first member again with another value: lenient parsers take one or the other.
        key, value = members[0]
        other = "[]" if value.startswith("[") else ("false" if value == "true" else '"other"')
        body = ('"%s":%s,' % (key, other)).encode("ascii") + body
    else:
        # A string member holding bytes that are not UTF-8 (a lone continuation byte, an
        # overlong encoding and a surrogate).
        body += b',"note":"\x80\xc0\xaf\xed\xa0\x80"'
    return b"{" + body + b"}"


# MARK: - Hostile commands

KEY = object()     # a hostile command's id is its store key


def hostile_commands(instance, now, tag):
    """The commands the `hostile-commands` fault queues once per server, as (store key, command).

    None of them may be run: injected newlines and control characters in values, keys, user
    and section names; path traversal in the file, the instance id and the command id; too
    many and enormously many edits; ids that are not ids at all. The ones with a valid id must
    each be answered `rejected`; the others can only be ignored (and are delivered again after
    `--redeliver-after`, since they can never get a result)."""
    expires = now + 3600
    out = []

    def add(suffix, command, command_id=KEY):
        key = "hostile_%s_%s" % (tag, suffix)
        doc = {"id": key if command_id is KEY else command_id, "issued_at": now, "expires_at": expires}
        doc.update(command)
        out.append((key, doc))

    def apply(edits, file="oscam.user", target=instance):
        return {"type": "apply_config", "instance": target, "file": file, "edits": edits}

    def upsert(user, **values):
        return {"op": "upsert_account", "user": user, "set": values}

    injected = "\n[account]\nuser = injected\npwd = injected"
    add("nl_value", apply([upsert("mallory", pwd="x" + injected)]))
    add("cr_value", apply([upsert("mallory", group="1\r[account]")]))
    add("tab_value", apply([upsert("mallory", group="1\tx")]))
    add("nul_value", apply([upsert("mallory", pwd="a\u0000b")]))
    add("nl_user", apply([upsert("eve" + injected, pwd="x")]))
    add("nl_key", apply([{"op": "upsert_account", "user": "mallory", "set": {"pwd\n[reader]": "x"}}]))
    add("nl_unset", apply([{"op": "upsert_account", "user": "mallory", "unset": ["group\n[x]"]}]))
    add("nl_section", apply([{"op": "set", "section": "global]\n[webif", "key": "httpallowed",
                              "value": "0.0.0.0-255.255.255.255"}], file="oscam.conf"))
    add("nl_conf_value", apply([{"op": "set", "section": "webif", "key": "httpallowed",
                                 "value": "127.0.0.1\nhttpallowed = 0.0.0.0-255.255.255.255"}],
                               file="oscam.conf"))
    add("traversal_file", apply([upsert("mallory", pwd="x")], file="../../../etc/passwd"))
    add("server_file", apply([upsert("mallory", pwd="x")], file="oscam.server"))
    add("traversal_instance", {"type": "service", "instance": "../../../../etc", "action": "reload"})
    add("traversal_instance_apply", apply([upsert("mallory", pwd="x")], target="../" + instance))
    add("too_many_edits", apply([{"op": "delete_account", "user": "u%d" % i} for i in range(1001)]))
    add("enormous_edits", apply([{"op": "delete_account", "user": "u%05d" % i} for i in range(30000)]))
    add("account_op_in_conf", apply([upsert("mallory", pwd="x")], file="oscam.conf"))
    # Ids that must never reach a URL, a path or a file name.
    for index, bad in enumerate(["../../../../tmp/myosicam-hostile", "cmd_x/../../../etc/passwd", "..", ".",
                                 "cmd_\u0000nul", "cmd_nl\n", "a" * 65, "", 12345, None]):
        add("badid_%d" % index, {"type": "resync"}, command_id=bad)
    return out


def duplicated(commands):
    """The poll answer of the `duplicate-ids` fault: every command twice, then a twin with the
    same id and another content (a `resync` becomes a `service` reload, anything else a
    `resync`)."""
    out = []
    for command in commands:
        twin = dict(command)
        if command.get("type") == "resync":
            twin.update({"type": "service", "action": "reload"})
        else:
            twin = {k: v for k, v in command.items() if k in ("id", "issued_at", "expires_at")}
            twin["type"] = "resync"
        out += [command, dict(command), twin]
    return out
