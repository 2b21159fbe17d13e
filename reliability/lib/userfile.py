"""A model of the agent's oscam.user edits, for the files the kill test writes: `[account]`
blocks of `key = value` lines, one blank line between blocks. It does what
Sources/OScam/Config/ConfigDocument+Edits.swift does to such a file (set a value in place, add a
key after the block's last setting, append a block after one blank line, remove a block with the
blank line that separated it), so the test knows every "after" a command can produce, also for
commands whose write was interrupted and rolled back. The test checks the model against every
`sha256_after` the agent reports, so a difference shows up as a failure, not as silence.
"""

import hashlib


class ParseError(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def lines_of(data):
    text = data.decode("utf-8")
    if not text.endswith("\n"):
        raise ParseError("no final newline")
    return text[:-1].split("\n")


def render(lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def accounts(data):
    """{user: {key: value}} of a file in the test's format; raises ParseError on anything else
    (a half-written file: a cut line, a block without its user, a line that is no setting)."""
    out = {}
    current = None
    for number, line in enumerate(lines_of(data) + ["[account]"], 1):
        if line == "" or line.startswith("#"):
            continue
        if line == "[account]":
            if current is not None and "user" not in current:
                raise ParseError("line %d: a block without its user" % number)
            current = {}
            continue
        key, sep, value = line.partition(" = ")
        if current is None or not sep or not key.isidentifier() or not value or value != value.strip():
            raise ParseError("line %d: %r" % (number, line))
        if key == "user":
            if current or value in out:
                raise ParseError("line %d: user %r not first in its block, or twice" % (number, value))
            out[value] = current
        elif "user" not in current:
            raise ParseError("line %d: a setting before the block's user" % number)
        current[key] = value
    return out


def _blocks(lines):
    """(header index, last setting index) of each account block, with its user."""
    found = {}
    index = 0
    while index < len(lines):
        if lines[index] == "[account]":
            last = index
            user = None
            scan = index + 1
            while scan < len(lines) and lines[scan] != "[account]":
                if " = " in lines[scan]:
                    last = scan
                    if lines[scan].startswith("user = "):
                        user = lines[scan][len("user = "):]
                scan += 1
            if user is not None:
                found[user] = (index, last)
            index = scan
        else:
            index += 1
    return found


def apply(data, edits):
    """The file after `edits` (the test only sends upsert_account with `set`, and
    delete_account)."""
    lines = lines_of(data)
    for edit in edits:
        blocks = _blocks(lines)
        if edit["op"] == "upsert_account":
            user = edit["user"]
            pairs = sorted(edit.get("set", {}).items())
            if user in blocks:
                header, last = blocks[user]
                for key, value in pairs:
                    rows = [i for i in range(header + 1, last + 1) if lines[i].startswith(key + " = ")]
                    if rows:
                        lines[rows[-1]] = "%s = %s" % (key, value)
                    else:
                        last += 1
                        lines.insert(last, "%s = %s" % (key, value))
            else:
                if lines and lines[-1] != "":
                    lines.append("")
                lines += ["[account]", "user = " + user] + ["%s = %s" % pair for pair in pairs]
        elif edit["op"] == "delete_account":
            if edit["user"] not in blocks:
                continue
            header, last = blocks[edit["user"]]
            previous_blank = header == 0 or lines[header - 1] == ""
            end = last + 1
            if previous_blank and end < len(lines) and lines[end] == "":
                end += 1
            del lines[header:end]
        else:
            raise ValueError("the model knows upsert_account and delete_account only")
    return render(lines)
