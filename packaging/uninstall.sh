#!/bin/sh
# Removes what packaging/install.sh installed and takes back every privilege it granted: the
# service, the sudoers file, the ACLs on OScam's files (restored exactly as they were), the binary.
# Keeps the configuration, the agent's state (its registration) and its user unless --purge is
# given. OScam's files, units and processes are left exactly as they were.
set -eu
PROG=myosicam-uninstall
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

usage() {
    cat <<'EOF'
usage: uninstall.sh [--purge] [--root DIR]

  --purge     also remove /etc/myosicam, /var/lib/myosicam (the registration and spool), the
              backups the agent made beside OScam's files, and the myosicam user and group if
              the installer created them
  --root DIR  uninstall from a staging root made with install.sh --root
EOF
}

ROOT=""
PURGE=0
while [ "$#" -gt 0 ]; do
    case $1 in
        --purge) PURGE=1 ;;
        --root) need_value "$@"; ROOT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die 64 "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
require_root
set_root "$ROOT"

if [ ! -d "$ROOT$RECORD_DIR" ] && [ ! -e "$ROOT$UNIT_PATH" ] && [ ! -e "$ROOT$SUDOERS_FILE" ]; then
    say "nothing to uninstall (no $RECORD_DIR)"
    exit 0
fi

# The service first, so nothing runs while its privileges go.
if systemd_running && [ -e "$UNIT_PATH" ]; then
    systemctl disable --now "$UNIT_NAME" >/dev/null 2>&1 || warn "systemctl disable --now $UNIT_NAME failed"
    say "stopped and disabled $UNIT_NAME"
fi
# remove PATH...: removes what exists and says so.
remove() {
    for target in "$@"; do
        if [ -e "$ROOT$target" ] || [ -L "$ROOT$target" ]; then
            rm -rf -- "$ROOT$target"
            say "removed $target"
        fi
    done
}
remove "$SUDOERS_FILE" /etc/sudoers.d/.myosicam.new "$UNIT_PATH" "$DROPIN_DIR"
if systemd_running; then systemctl daemon-reload || true; fi

for p in "$ROOT$RECORD_DIR"/acl/*.path; do
    [ -f "$p" ] || continue
    acl_revoke "$(basename "$p" .path)"
done

# The binary only if the installer put it there (a package's own binary stays).
if was_created "file $BIN_PATH"; then remove "$BIN_PATH"; fi
remove "$LIB_DIR"

if [ "$PURGE" -eq 0 ]; then
    say "kept $CONF_DIR, $STATE_DIR, the backups beside OScam's files and the user $AGENT_USER (--purge removes them)"
    exit 0
fi

if [ -f "$ROOT$RECORD_DIR/created" ]; then
    grep '^backup ' "$ROOT$RECORD_DIR/created" | while read -r _ dir; do
        # Only a directory the agent owns; anything else found there now is not ours to remove.
        if [ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %U "$dir")" = "$AGENT_USER" ]; then
            rm -rf -- "$dir"
            say "removed $dir"
        fi
    done
fi
remove "$CONF_DIR" "$STATE_DIR"
if [ -n "$ROOT" ]; then set -- --root "$ROOT"; else set --; fi
if was_created "user $AGENT_USER" && user_exists; then
    userdel "$@" "$AGENT_USER"
    say "removed the user $AGENT_USER"
fi
if was_created "group $AGENT_USER" && group_exists; then
    groupdel "$@" "$AGENT_USER"
    say "removed the group $AGENT_USER"
fi
rm -rf "$ROOT$RECORD_DIR"
