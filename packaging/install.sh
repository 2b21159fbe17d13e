#!/bin/sh
# Installs myosicam-agent: run once as root; the agent then runs unprivileged. Idempotent: a second
# run with the same inputs changes nothing. Every privilege it grants is listed in the summary and
# in docs/security.md; packaging/uninstall.sh takes them back.
set -eu
PROG=myosicam-install
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

usage() {
    cat <<'EOF'
usage: install.sh --panel-url URL --token-file FILE|- --binary FILE [options]

Installs the agent, its user, configuration, systemd unit and sudoers rule, grants it access to
every OScam instance found on this host, registers it with the panel and starts it.

  --panel-url URL      the panel's https:// URL (needed on the first install)
  --token-file FILE    the one-time install token, read from FILE, or from standard input with
                       '-'; never pass the token itself on the command line
  --binary FILE        the myosicam-agent binary to install (default: the one already installed)
  --ca-file FILE       a PEM bundle to trust alone for the panel (copied to /etc/myosicam)
  --pin sha256//B64    a public-key pin for the panel, on top of the CA check
  --unit NAME          also allow start/stop/restart of this OScam unit (repeatable); units of
                       the instances found are allowed without it
  --set SECTION.KEY=VALUE
                       set a key of agent.conf (repeatable), e.g. --set discovery.auto=no
                       --set discovery.config_dirs=/etc/oscam
  --systemctl PATH     the systemctl to allow (default: resolved on the target)
  --no-start           do not enable and start the service (no systemd here, or start later)
  --root DIR           install into a staging root instead of this system: files, user and
                       sudoers only; no discovery, ACLs, registration or start
  -h, --help           this text

Exit codes: 0 done, 64 usage, 69 panel or package source unavailable, 77 not root,
78 configuration problem or token refused by the panel (the panel's reason is printed).
EOF
}

# MARK: - Arguments

ROOT=""
PANEL_URL=""
TOKEN_FILE=""
BINARY=""
CA_FILE=""
PIN=""
UNITS=""
SETS=""
SYSTEMCTL=""
NO_START=0
while [ "$#" -gt 0 ]; do
    case $1 in
        --panel-url) need_value "$@"; PANEL_URL=$2; shift ;;
        --token-file) need_value "$@"; TOKEN_FILE=$2; shift ;;
        --binary) need_value "$@"; BINARY=$2; shift ;;
        --ca-file) need_value "$@"; CA_FILE=$2; shift ;;
        --pin) need_value "$@"; PIN=$2; shift ;;
        --unit) need_value "$@"; UNITS="$UNITS $2"; shift ;;
        --set) need_value "$@"; SETS="$SETS
$2"; shift ;;
        --systemctl) need_value "$@"; SYSTEMCTL=$2; shift ;;
        --no-start) NO_START=1 ;;
        --root) need_value "$@"; ROOT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        --token) die 64 "the token is never taken on the command line (ps shows it to every user);" \
            "use --token-file FILE or --token-file - (stdin)" ;;
        *) die 64 "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

require_root
set_root "$ROOT"
case $PANEL_URL in
    "" | https://*) ;;
    *) die 64 "--panel-url must be an https:// URL" ;;
esac
for value in "$PANEL_URL" "$PIN"; do
    case $value in *[[:space:]#]*) die 64 "--panel-url and --pin cannot hold spaces or '#'" ;; esac
done
if [ -z "$ROOT" ] && [ "$NO_START" -eq 0 ] && ! systemd_running; then
    die 69 "systemd is not running on this host; use --no-start to install without starting"
fi

# One installer at a time on a host (the lock file goes when this one ends).
LOCK=""
if [ -z "$ROOT" ] && [ -d /run/lock ] && command -v flock >/dev/null 2>&1; then
    exec 9>>/run/lock/myosicam-install.lock
    flock -n 9 || die 75 "another myosicam installer is running"
    LOCK=/run/lock/myosicam-install.lock
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" $LOCK' EXIT
trap 'exit 130' INT TERM
: >"$TMP/summary"
note() {
    say "$*"
    printf '  %s\n' "$*" >>"$TMP/summary"
}

# MARK: - Helpers

# Writes stdin to DEST (under ROOT) only when the bytes differ, atomically, then sets owner and
# mode. A second run therefore leaves files, times and inodes alone.
put_file() {
    dest=$ROOT$1
    mode=$2
    owner=$3
    cat >"$TMP/put"
    mkdir -p "$(dirname "$dest")"
    if ! cmp -s "$TMP/put" "$dest" 2>/dev/null; then
        [ -e "$dest" ] || record_created "file $1"
        cp "$TMP/put" "$dest.myosicam-new"
        chown "$owner" "$dest.myosicam-new"
        chmod "$mode" "$dest.myosicam-new"
        mv -f "$dest.myosicam-new" "$dest"
    fi
    chown "$owner" "$dest"
    chmod "$mode" "$dest"
}

put_dir() {
    dest=$ROOT$1
    if [ ! -d "$dest" ]; then
        mkdir -p "$dest"
        record_created "dir $1"
    fi
    chown "$3" "$dest"
    chmod "$2" "$dest"
}

# conf_set FILE SECTION KEY VALUE: sets one key of an agent.conf, keeping everything else
# (comments, order, the operator's other keys). A missing key goes after its section's
# last line; a missing section at the end.
conf_set() {
    case $4 in *"
"* | *" #"* | *"	#"*) die 64 "the value of $2.$3 cannot hold a newline or a comment" ;; esac
    awk -v s="$2" -v k="$3" -v v="$4" '
        function header(line) {
            sub(/^[ \t]*\[[ \t]*/, "", line); sub(/[ \t]*\][ \t]*$/, "", line); return line
        }
        function iskey(line,   rest) {
            sub(/^[ \t]*/, "", line)
            if (index(line, k) != 1) return 0
            rest = substr(line, length(k) + 1)
            return rest ~ /^[ \t]*=/
        }
        FNR == NR { if ($0 ~ /^[ \t]*\[/) cur = header($0); else if (cur == s && iskey($0)) found = 1
                    if (cur == s) have = 1; next }
        /^[ \t]*$/ { blank = blank $0 "\n"; next }
        /^[ \t]*\[/ { if (cur == s && !found) { print k " = " v; found = 1 }; cur = header($0) }
        { printf "%s", blank; blank = "" }
        cur == s && iskey($0) { print k " = " v; found = 1; next }
        { print }
        END { if (cur == s && !found) print k " = " v; printf "%s", blank
              if (!have) { print ""; print "[" s "]"; print k " = " v } }
    ' "$1" "$1" >"$1.new"
    mv -f "$1.new" "$1"
}

# A program the agent may run through sudo must not be replaceable by anyone but root: the file
# and every directory above it are root-owned and not writable by group or others.
trusted_program() {
    p=$(readlink -f -- "$1") || return 1
    [ -f "$p" ] && [ -x "$p" ] || return 1
    while :; do
        [ "$(stat -c '%u' -- "$p")" -eq 0 ] || return 1
        [ $((0$(stat -c '%a' -- "$p") & 022)) -eq 0 ] || return 1
        [ "$p" != / ] || return 0
        p=$(dirname "$p")
    done
}

# MARK: - Inputs

# The binary: given, else the one installed by an earlier run, else the package's.
if [ -z "$BINARY" ]; then
    for candidate in "$ROOT$BIN_PATH" "$ROOT$PACKAGE_BIN_PATH"; do
        if [ -x "$candidate" ]; then BINARY=$candidate; break; fi
    done
    [ -n "$BINARY" ] || die 64 "--binary FILE is needed (no installed myosicam-agent found)"
fi
if [ ! -f "$BINARY" ] || [ ! -x "$BINARY" ]; then die 64 "--binary $BINARY is not an executable file"; fi
BINARY=$(readlink -f -- "$BINARY")
AGENT_VERSION=$("$BINARY" version 2>/dev/null) || die 64 "$BINARY does not run ('version' failed)"
# Where the unit runs it from: the package's own copy stays where dpkg put it.
if [ "$BINARY" = "$ROOT$PACKAGE_BIN_PATH" ]; then TARGET_BIN=$PACKAGE_BIN_PATH; else TARGET_BIN=$BIN_PATH; fi

if [ -n "$TOKEN_FILE" ]; then
    if [ "$TOKEN_FILE" = - ]; then
        (umask 077 && cat >"$TMP/token")
    else
        [ -r "$TOKEN_FILE" ] || die 64 "cannot read the token file $TOKEN_FILE"
        (umask 077 && cat -- "$TOKEN_FILE" >"$TMP/token")
    fi
    [ -n "$(tr -d '[:space:]' <"$TMP/token")" ] || die 64 "the install token is empty"
fi
if [ -n "$CA_FILE" ]; then
    grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_FILE" 2>/dev/null \
        || die 64 "--ca-file $CA_FILE is not a PEM certificate file"
fi

for unit in $UNITS; do
    case $unit in
        *[!A-Za-z0-9_.@-]* | [.@-]*) die 64 "--unit $unit: only letters, digits and _ . @ - are accepted" ;;
    esac
done

# systemctl and sudo: absolute, resolved on the target, root-owned all the way up.
if [ -z "$SYSTEMCTL" ]; then
    for candidate in /usr/bin/systemctl /bin/systemctl; do
        if [ -x "$ROOT$candidate" ]; then SYSTEMCTL=$candidate; break; fi
    done
    if [ -z "$SYSTEMCTL" ]; then
        [ -n "$ROOT" ] || die 69 "systemctl not found in /usr/bin or /bin"
        SYSTEMCTL=/usr/bin/systemctl
        note "systemctl: not in the staging root; assumed $SYSTEMCTL (use --systemctl to choose)"
    fi
fi
safe_path "$SYSTEMCTL" || die 64 "--systemctl must be a plain absolute path"
if [ -z "$ROOT" ] && ! trusted_program "$SYSTEMCTL"; then
    die 77 "$SYSTEMCTL (or a directory above it) is not root-owned, or is writable by others;" \
        "refusing to allow it through sudo"
fi
SUDO=/usr/bin/sudo

# MARK: - agent.conf, composed before anything changes

if [ -f "$ROOT$CONF_DIR/agent.conf" ]; then
    cp "$ROOT$CONF_DIR/agent.conf" "$TMP/agent.conf"
else
    [ -n "$PANEL_URL" ] || die 64 "--panel-url is needed on the first install"
    cp "$HERE/config/agent.conf" "$TMP/agent.conf"
fi
[ -z "$PANEL_URL" ] || conf_set "$TMP/agent.conf" panel url "$PANEL_URL"
[ -z "$CA_FILE" ] || conf_set "$TMP/agent.conf" panel ca_file "$CONF_DIR/panel-ca.pem"
[ -z "$PIN" ] || conf_set "$TMP/agent.conf" panel pin_sha256 "$PIN"
conf_set "$TMP/agent.conf" service sudo "$SUDO"
conf_set "$TMP/agent.conf" service systemctl "$SYSTEMCTL"
printf '%s\n' "$SETS" | while IFS= read -r assignment; do
    [ -n "$assignment" ] || continue
    name=${assignment%%=*}
    [ "$name" != "$assignment" ] || die 64 "--set $assignment: expected SECTION.KEY=VALUE"
    case $name in
        service.*) die 64 "--set $name: the [service] paths come from --systemctl and the target" ;;
        panel.*) die 64 "--set $name: use --panel-url, --ca-file and --pin" ;;
        *.*) ;;
        *) die 64 "--set $assignment: expected SECTION.KEY=VALUE" ;;
    esac
    conf_set "$TMP/agent.conf" "${name%%.*}" "${name#*.}" "${assignment#*=}"
done

# A copy of agent.conf whose own files point into DIR ($1): to check the composed file before it is
# installed, and to register before anything on the host changes.
conf_variant() {
    cp "$TMP/agent.conf" "$TMP/variant.conf"
    conf_set "$TMP/variant.conf" agent collectors_file "$2"
    conf_set "$TMP/variant.conf" agent state_dir "$1/state"
    conf_set "$TMP/variant.conf" agent install_token_file "$1/token"
    [ -z "$CA_FILE" ] || conf_set "$TMP/variant.conf" panel ca_file "$(readlink -f -- "$CA_FILE")"
}
conf_variant "$TMP" "$HERE/config/collectors.conf"
if ! "$BINARY" check-config --agent-only --config "$TMP/variant.conf" >"$TMP/check.log" 2>&1; then
    sed "s|$TMP/variant.conf|agent.conf|" "$TMP/check.log" >&2
    die 78 "the agent.conf this install would write is not valid; nothing was changed"
fi

# MARK: - Registration, first: a refused token leaves the host exactly as it was

# A registration made by a run that then failed waits here (root 0700) for the next run.
PENDING=$RECORD_DIR/registration
if [ -n "$ROOT" ]; then
    note "staging root: registration skipped; the install token (if given) is left for the agent's first start"
elif [ -f "$PENDING/state.json" ]; then
    note "registration: using the one an earlier, unfinished run made"
elif [ -f "$STATE_DIR/state.json" ]; then
    note "registration: kept the agent's existing state in $STATE_DIR (use uninstall.sh --purge to register anew)"
    [ ! -f "$TMP/token" ] || warn "the install token given was not used: this host already has agent state"
else
    [ -f "$TMP/token" ] || die 64 "--token-file is needed: this host is not registered yet"
    mkdir -m 0700 "$TMP/state"
    if "$BINARY" register --config "$TMP/variant.conf" >"$TMP/register.log" 2>&1; then
        # Kept at once: the token is spent, so a later failure must not lose the registration.
        mkdir -p "$PENDING"
        chmod 0700 "$RECORD_DIR" "$PENDING"
        cp -p "$TMP"/state/* "$PENDING/"
        registered=$(sed -n 's/.*server_id=\([A-Za-z0-9_-]*\).*/\1/p' "$TMP/register.log" | tail -n 1)
        note "registered with the panel as ${registered:-a new server}; the install token was used up"
    else
        code=$?
        sed -e "s|$TMP/token|the install token file|g" -e "s|$TMP/[^ \"]*|(temporary file)|g" \
            "$TMP/register.log" >&2
        die "$code" "registration failed (the panel's answer is above); nothing on this host was changed." \
            "Rerun the installer (with a new install token if it was refused)"
    fi
fi

# MARK: - Packages: acl for setfacl, sudo for the service actions

if [ -z "$ROOT" ]; then
    need=""
    command -v setfacl >/dev/null 2>&1 || need="$need acl"
    { [ -x "$SUDO" ] && command -v visudo >/dev/null 2>&1; } || need="$need sudo"
    if [ -n "$need" ]; then
        command -v apt-get >/dev/null 2>&1 || die 69 "missing:$need, and there is no apt-get to install it"
        say "installing:$need"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null \
            || die 69 "apt-get could not install:$need"
        note "installed packages:$need"
    fi
else
    command -v visudo >/dev/null 2>&1 || die 69 "visudo is needed to check the sudoers file (install sudo on this host)"
fi

# MARK: - The installer's record, user and group

mkdir -p "$ROOT$(dirname "$RECORD_DIR")"
mkdir -p "$ROOT$RECORD_DIR/acl"
chmod 0700 "$ROOT$RECORD_DIR" "$ROOT$RECORD_DIR/acl"
touch "$ROOT$RECORD_DIR/created"
chmod 0600 "$ROOT$RECORD_DIR/created"

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT/etc"
    for f in passwd group; do [ -e "$ROOT/etc/$f" ] || : >"$ROOT/etc/$f"; done
    set -- --root "$ROOT"
else
    set --
fi
if ! group_exists; then
    groupadd "$@" --system "$AGENT_USER" 2>"$TMP/useradd.log" \
        || { cat "$TMP/useradd.log" >&2; die 73 "groupadd failed"; }
    record_created "group $AGENT_USER"
    note "created the system group $AGENT_USER"
fi
if ! user_exists; then
    useradd "$@" --system --gid "$AGENT_USER" --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "MyOsicam agent" "$AGENT_USER" 2>"$TMP/useradd.log" \
        || { cat "$TMP/useradd.log" >&2; die 73 "useradd failed"; }
    record_created "user $AGENT_USER"
    note "created the system user $AGENT_USER (no login shell, no home)"
fi
OWNER="$(user_uid):$(group_gid)"
ROOT_GROUP="0:$(group_gid)"

# MARK: - Files

put_dir "$CONF_DIR" 0750 "$ROOT_GROUP"
put_dir "$STATE_DIR" 0700 "$OWNER"
put_file "$CONF_DIR/agent.conf" 0640 "$ROOT_GROUP" <"$TMP/agent.conf"
# The operator's choices survive a rerun: these two are written only when absent.
for f in collectors.conf allowed-actions; do
    if [ -f "$ROOT$CONF_DIR/$f" ]; then
        chown "$ROOT_GROUP" "$ROOT$CONF_DIR/$f"
        chmod 0640 "$ROOT$CONF_DIR/$f"
    else
        put_file "$CONF_DIR/$f" 0640 "$ROOT_GROUP" <"$HERE/config/$f"
    fi
done
[ -z "$CA_FILE" ] || put_file "$CONF_DIR/panel-ca.pem" 0640 "$ROOT_GROUP" <"$CA_FILE"
if [ -n "$ROOT" ] && [ -f "$TMP/token" ]; then
    put_file "$CONF_DIR/install-token" 0600 "$OWNER" <"$TMP/token"
fi
if [ -d "$PENDING" ]; then
    for f in "$PENDING"/*; do
        [ -f "$f" ] || continue
        name=${f##*/}
        put_file "$STATE_DIR/$name" 0600 "$OWNER" <"$f"
    done
    rm -rf "$PENDING"
fi

if [ "$BINARY" != "$ROOT$TARGET_BIN" ]; then
    put_file "$TARGET_BIN" 0755 0:0 <"$BINARY"
fi
sed "s|/usr/local/bin/myosicam-agent|$TARGET_BIN|g" "$HERE/systemd/myosicam-agent.service" \
    | put_file "$UNIT_PATH" 0644 0:0
put_file "$LIB_DIR/uninstall.sh" 0755 0:0 <"$HERE/uninstall.sh"
put_file "$LIB_DIR/common.sh" 0644 0:0 <"$HERE/common.sh"

if [ -z "$ROOT" ]; then
    runuser -u "$AGENT_USER" -- "$ROOT$TARGET_BIN" check-config --agent-only --config "$CONF_DIR/agent.conf" \
        >"$TMP/check.log" 2>&1 \
        || { cat "$TMP/check.log" >&2; die 78 "the agent cannot read its installed configuration"; }
fi

# MARK: - OScam instances: discovery, ACLs, backup dirs

# One line per instance: name, config dir, temp dir, pid file, unit ("-" when unknown). Read from
# `inspect --json`, whose layout the agent's own encoder fixes (two-space indent, one key a line).
parse_instances() {
    awk '
        function flush() { if (dir != "") print name "\t" dir "\t" tmp "\t" pid "\t" unit; dir = "" }
        /^    \{$/ { flush(); name = "-"; dir = ""; tmp = "-"; pid = "-"; unit = "-"; next }
        /^      "(name|config_dir|temp_dir|pid_file|unit)": "/ {
            key = $0; sub(/^      "/, "", key); sub(/".*/, "", key)
            value = $0; sub(/^      "[a-z_]+": "/, "", value); sub(/",?$/, "", value)
            if (value ~ /[\\"]/ || value == "") value = "?"
            if (key == "name") name = value; else if (key == "config_dir") dir = value
            else if (key == "temp_dir") tmp = value; else if (key == "pid_file") pid = value
            else unit = value
        }
        END { flush() }
    '
}

# plan PERMS PATH: the access the agent needs on PATH, and --x on every directory above it that
# others cannot already traverse.
plan() {
    printf '%s %s\n' "$1" "$2" >>"$TMP/plan"
    up=$(dirname "$2")
    while [ "$up" != / ]; do
        printf '%s %s\n' --x "$up" >>"$TMP/plan"
        up=$(dirname "$up")
    done
}

# The permission bits of PERMS that "other" does not already give on PATH: only those are granted.
missing_perms() {
    mode=$(stat -c '%a' -- "$2")
    other=${mode#"${mode%?}"}
    r=${1%??}
    w=${1#?}; w=${w%?}
    x=${1#??}
    [ $((other & 4)) -eq 0 ] || r=-
    [ $((other & 2)) -eq 0 ] || w=-
    [ $((other & 1)) -eq 0 ] || x=-
    printf '%s%s%s' "$r" "$w" "$x"
}

: >"$TMP/instances"
: >"$TMP/plan"
: >"$TMP/rwpaths"
: >"$TMP/units"
for unit in $UNITS; do
    case $unit in *.service) ;; *) unit=$unit.service ;; esac
    printf '%s\n' "$unit" >>"$TMP/units"
done
if [ -z "$ROOT" ]; then
    "$ROOT$TARGET_BIN" inspect --json --config "$CONF_DIR/agent.conf" >"$TMP/inspect.json" 2>"$TMP/inspect.log" \
        || { cat "$TMP/inspect.log" >&2; die 70 "myosicam-agent inspect failed"; }
    parse_instances <"$TMP/inspect.json" >"$TMP/instances"
    # The discovery problems (the top-level "problems" list), so a missing instance is explained.
    sed -n '/^  "problems": \[$/,/^  \]/s/^    "\(.*\)",\{0,1\}$/\1/p' "$TMP/inspect.json" \
        | while IFS= read -r problem; do note "discovery: $problem"; done
    [ -s "$TMP/instances" ] || note "no OScam instance found: nothing granted (rerun the installer after adding one)"
fi

while IFS="	" read -r name dir tmp pid unit; do
    dir=${dir%/}
    if ! safe_path "$dir" || [ ! -d "$dir" ] || [ -L "$dir" ]; then
        note "instance $name: config dir $dir skipped (missing, a symlink, or characters the installer does not handle)"
        continue
    fi
    note "instance $name: config dir $dir"
    plan r-x "$dir"
    # The sandbox opens the whole dir, not single files: a file bind-mounted into the agent's
    # namespace keeps pointing at its old inode after an editor or a package replaces it by
    # rename. What the agent may actually write is still decided by the ACLs above.
    printf '%s\n' "$dir" >>"$TMP/rwpaths"
    for f in "$dir"/*; do
        if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
        case ${f##*/} in
            # OScam's WebIF certificate sits in one file with its private key: never read.
            *.pem | *.key) continue ;;
            oscam.user | oscam.conf) plan rw- "$f" ;;
            *)
                if safe_path "$f"; then
                    plan r-- "$f"
                else
                    note "instance $name: $f skipped (characters the installer does not handle)"
                fi
                ;;
        esac
    done
    backup=$dir/$BACKUP_DIR_NAME
    if [ -L "$backup" ] || { [ -e "$backup" ] && [ ! -d "$backup" ]; }; then
        note "instance $name: $backup exists and is not a directory; backups go to $STATE_DIR/backup"
    else
        if [ ! -d "$backup" ]; then
            mkdir "$backup"
            record_created "backup $backup"
        fi
        chown "$OWNER" "$backup"
        chmod 0700 "$backup"
        printf '%s\n' "$backup" >>"$TMP/rwpaths"
        note "instance $name: the agent's backups of its edits go to $backup ($AGENT_USER, 0700)"
    fi
    if [ "$tmp" != - ] && safe_path "$tmp" && [ -d "$tmp" ] && [ ! -L "$tmp" ]; then
        plan r-x "$tmp"
        for f in "$tmp/oscam.pid" "$tmp/oscam.version"; do
            [ ! -f "$f" ] || [ -L "$f" ] || plan r-- "$f"
        done
    elif [ "$tmp" != - ]; then
        note "instance $name: temp dir $tmp not there now; not granted (rerun the installer while OScam runs)"
    fi
    if [ "$pid" != - ] && safe_path "$pid" && [ -f "$pid" ] && [ ! -L "$pid" ]; then
        plan r-- "$pid"
    fi
    case $unit in
        - | "?") ;;
        *[!A-Za-z0-9_.@-]* | [.@-]*)
            note "instance $name: unit $unit has characters the installer does not handle; not allowed through sudo" ;;
        *.service) printf '%s\n' "$unit" >>"$TMP/units" ;;
        *) note "instance $name: $unit is not a service unit; not allowed through sudo" ;;
    esac
done <"$TMP/instances"

# One line per path with the union of what each instance needs there.
LC_ALL=C sort -k2 "$TMP/plan" | awk '
    { path = substr($0, 5); p = substr($0, 1, 3)
      if (!(path in perms)) { perms[path] = p; order[n++] = path; next }
      q = perms[path]; out = ""
      for (i = 1; i <= 3; i++) { c = substr(p, i, 1); out = out (c != "-" ? c : substr(q, i, 1)) }
      perms[path] = out }
    END { for (i = 0; i < n; i++) print perms[order[i]] " " order[i] }
' >"$TMP/grants"

: >"$TMP/granted"
while read -r perms target; do
    need=$(missing_perms "$perms" "$target")
    if [ "$need" = --- ]; then
        [ "$perms" = --x ] || note "ACL: $target: $perms already open to everyone; nothing granted"
        continue
    fi
    h=$(path_hash "$target")
    record=$ROOT$RECORD_DIR/acl/$h
    if [ ! -f "$record.before" ]; then
        acl_snapshot "$target" >"$record.before"
        printf '%s\n' "$target" >"$record.path"
    fi
    setfacl -m "u:$AGENT_USER:$need" -- "$target" \
        || die 70 "setfacl failed on $target (does its file system support ACLs?)"
    acl_snapshot "$target" >"$record.after"
    printf '%s\n' "$need" >"$record.perms"
    printf '%s\n' "$h" >>"$TMP/granted"
    note "ACL: $AGENT_USER gets $need on $target"
done <"$TMP/grants"
# Grants from an earlier run that are no longer needed (an instance went away) are taken back.
for p in "$ROOT$RECORD_DIR"/acl/*.path; do
    [ -f "$p" ] || continue
    h=$(basename "$p" .path)
    grep -qxF "$h" "$TMP/granted" || acl_revoke "$h"
done

# Inside the sandbox the OScam config dirs stay writable (the ACLs limit the agent to oscam.user and
# oscam.conf there), and so do its backup dirs.
{
    echo "# Written by myosicam-agent's installer: the OScam files the agent may write (ProtectSystem=strict"
    echo "# makes everything else read-only). Rerun the installer to update it."
    echo "[Service]"
    LC_ALL=C sort -u "$TMP/rwpaths" | sed 's/^/ReadWritePaths=-/'
} | put_file "$DROPIN_DIR/oscam-paths.conf" 0644 0:0

# MARK: - sudoers: exactly start, stop, restart per systemd-managed OScam unit

{
    echo "# /etc/sudoers.d/myosicam: written by myosicam-agent's installer; rerun it instead of editing."
    echo "# The agent may start, stop and restart exactly these OScam units, as root, with exactly these"
    echo "# arguments, and nothing else. Audit: sudo -l -U $AGENT_USER"
    LC_ALL=C sort -u "$TMP/units" | while read -r unit; do
        for action in start stop restart; do
            echo "$AGENT_USER ALL=(root) NOPASSWD: $SYSTEMCTL $action $unit"
        done
    done
} >"$TMP/sudoers"
mkdir -p "$ROOT/etc/sudoers.d"
# A name with a dot is never read by sudo's @includedir, so the checked file can wait there.
cp "$TMP/sudoers" "$ROOT/etc/sudoers.d/.myosicam.new"
chown 0:0 "$ROOT/etc/sudoers.d/.myosicam.new"
chmod 0440 "$ROOT/etc/sudoers.d/.myosicam.new"
if ! visudo -c -q -f "$ROOT/etc/sudoers.d/.myosicam.new" >"$TMP/visudo.log" 2>&1; then
    rm -f "$ROOT/etc/sudoers.d/.myosicam.new"
    cat "$TMP/visudo.log" >&2
    die 70 "the generated sudoers file failed visudo -c; the sudoers were not changed"
fi
if cmp -s "$ROOT/etc/sudoers.d/.myosicam.new" "$ROOT$SUDOERS_FILE"; then
    rm -f "$ROOT/etc/sudoers.d/.myosicam.new"
else
    mv -f "$ROOT/etc/sudoers.d/.myosicam.new" "$ROOT$SUDOERS_FILE"
fi
if [ -s "$TMP/units" ]; then
    LC_ALL=C sort -u "$TMP/units" | while read -r unit; do
        note "sudo: $AGENT_USER may run $SYSTEMCTL start|stop|restart $unit"
    done
else
    note "sudo: nothing allowed (no systemd-managed OScam instance)"
fi
if [ -z "$ROOT" ] && ! grep -q -E '^[@#]includedir[[:space:]]+/etc/sudoers.d' /etc/sudoers 2>/dev/null; then
    warn "/etc/sudoers does not include /etc/sudoers.d: the agent's service actions will be refused"
fi

# MARK: - Start

if [ -n "$ROOT" ] || [ "$NO_START" -eq 1 ]; then
    note "not started: run 'systemctl daemon-reload && systemctl enable --now $UNIT_NAME'"
else
    systemctl daemon-reload
    systemctl enable --now "$UNIT_NAME" >/dev/null 2>&1 \
        || die 70 "systemctl enable --now $UNIT_NAME failed; see journalctl -u $UNIT_NAME"
    note "enabled and started $UNIT_NAME"
fi

echo
echo "$AGENT_VERSION installed${ROOT:+ into $ROOT}. What was done:"
cat "$TMP/summary"
echo "Files: $CONF_DIR (config), $STATE_DIR (state), $TARGET_BIN, $UNIT_PATH, $SUDOERS_FILE."
echo "Audit: sudo -l -U $AGENT_USER; myosicam-agent --dry-run --config $CONF_DIR/agent.conf"
echo "Uninstall: $LIB_DIR/uninstall.sh [--purge]"
