# shellcheck shell=sh disable=SC2034
# Shared by install.sh and uninstall.sh (sourced, never run). POSIX sh.
#
# Every path below is relative to $ROOT ("" for a real install, a staging dir with --root).

AGENT_USER=myosicam
UNIT_NAME=myosicam-agent.service
CONF_DIR=/etc/myosicam
STATE_DIR=/var/lib/myosicam
# The installer's own record (root 0700): what it created and every ACL it changed, so that
# uninstall.sh can put back exactly what was there. Not writable by the agent: a record the
# agent could edit would let it choose the ACLs root restores.
RECORD_DIR=/var/lib/myosicam-install
UNIT_PATH=/etc/systemd/system/$UNIT_NAME
DROPIN_DIR=/etc/systemd/system/$UNIT_NAME.d
SUDOERS_FILE=/etc/sudoers.d/myosicam
BIN_PATH=/usr/local/bin/myosicam-agent
PACKAGE_BIN_PATH=/usr/bin/myosicam-agent
LIB_DIR=/usr/local/lib/myosicam-agent
BACKUP_DIR_NAME=myosicam-backup

PROG=${PROG:-myosicam}
umask 022

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
# die CODE MESSAGE: sysexits codes (64 usage, 69 unavailable, 70 software, 73 cannot create, 77 no
# permission, 78 configuration).
die() {
    code=$1
    shift
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit "$code"
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die 77 "must run as root (it creates a system user, files in /etc and ACLs)"
}

# A path or name the installer writes into unit files, sudoers and shell loops: absolute-path
# characters only, so nothing needs quoting or escaping anywhere (no spaces, %, \, quotes).
safe_path() {
    case $1 in
        /*) ;;
        *) return 1 ;;
    esac
    case $1 in
        *[!A-Za-z0-9._/+@:,=~-]*) return 1 ;;
    esac
    return 0
}

# set_root DIR: the staging root ("" for this system), absolute.
set_root() {
    ROOT=$1
    [ -n "$ROOT" ] || return 0
    [ -d "$ROOT" ] || die 64 "--root $ROOT is not a directory"
    ROOT=$(cd "$ROOT" && pwd -P)
    [ "$ROOT" != / ] || ROOT=""
}

# systemd system running (PID 1)?
systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

path_hash() { printf '%s' "$1" | sha256sum | cut -c1-32; }

# getfacl of one path without the owner and group comments: `setfacl --restore` would otherwise
# also put back the owner, which the installer never changed.
acl_snapshot() { getfacl -p -n -- "$1" 2>/dev/null | grep -v -e '^# owner:' -e '^# group:'; }

# Puts back the ACL of the path recorded under hash $1 and forgets the record. If the ACL is still
# exactly what the installer left, the saved original is restored byte for byte; if someone changed
# it since, only the agent's entry is removed (their change is kept) and that is said.
acl_revoke() {
    record=$ROOT$RECORD_DIR/acl/$1
    target=$(cat "$record.path")
    if [ ! -e "$target" ] && [ ! -L "$target" ]; then
        say "ACL: $target is gone; nothing to restore"
    elif acl_snapshot "$target" | cmp -s - "$record.after"; then
        setfacl --restore="$record.before" || die 70 "setfacl --restore failed for $target"
        say "ACL: restored the original ACL of $target"
    else
        setfacl -x "u:$AGENT_USER" -- "$target" 2>/dev/null || true
        if ! getfacl -p -n -- "$target" | grep -q -E '^(user|group):[^:]+:'; then
            setfacl -b -- "$target"
        fi
        say "ACL: $target changed since install; removed only the $AGENT_USER entry"
    fi
    rm -f "$record.path" "$record.before" "$record.after" "$record.perms"
}

# Records that this installer created something (user, group, file, dir): uninstall removes only
# what is recorded.
record_created() {
    grep -qxF "$1" "$ROOT$RECORD_DIR/created" 2>/dev/null || printf '%s\n' "$1" >>"$ROOT$RECORD_DIR/created"
}

was_created() { grep -qxF "$1" "$ROOT$RECORD_DIR/created" 2>/dev/null; }

# The user's and group's entries as the target sees them (ROOT/etc/passwd with --root).
# account_entry passwd|group: the agent's line in the target's database, empty if none.
account_entry() {
    if [ -n "$ROOT" ]; then
        grep "^$AGENT_USER:" "$ROOT/etc/$1" 2>/dev/null || true
    else
        getent "$1" "$AGENT_USER" || true
    fi
}
user_exists() { [ -n "$(account_entry passwd)" ]; }
group_exists() { [ -n "$(account_entry group)" ]; }
# Numeric ids, so chown works the same for a staging root whose passwd the host does not know.
user_uid() { account_entry passwd | cut -d: -f3; }
group_gid() { account_entry group | cut -d: -f3; }

# Option parsing helper: the value of an option that needs one.
need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then die 64 "$1 needs a value (see --help)"; fi
}
