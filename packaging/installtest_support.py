"""Helpers for test_install.py: commands, machine snapshots, the development panel, a fake OScam tree.

Everything here touches loopback only. The real-install tests use `machine_lock()` so that two
`make test` runs on one machine never install at the same time, and `preexisting()` so that they
never run where a myosicam install they did not make exists.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time

PACKAGING = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(PACKAGING)
INSTALL = os.path.join(PACKAGING, "install.sh")
UNINSTALL = os.path.join(PACKAGING, "uninstall.sh")
UNIT_FILE = os.path.join(PACKAGING, "systemd", "myosicam-agent.service")
DEVPANEL = os.path.join(REPO, "tools", "devpanel", "devpanel")
USER = "myosicam"
FAKE_UNIT = "oscam-myosicamtest.service"

# Everything a real install may create. The real-install tests do not run if any of it exists.
INSTALLED_PATHS = [
    "/etc/myosicam", "/var/lib/myosicam", "/var/lib/myosicam-install", "/etc/sudoers.d/myosicam",
    "/etc/sudoers.d/.myosicam.new", "/etc/systemd/system/myosicam-agent.service",
    "/etc/systemd/system/myosicam-agent.service.d", "/usr/local/bin/myosicam-agent",
    "/usr/local/lib/myosicam-agent",
]
# Files useradd/userdel rewrite; the snapshot compares the first four, the backups ("-") are put
# back by the tests' cleanup so the machine keeps no trace.
ACCOUNT_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]
ACCOUNT_BACKUPS = [path + "-" for path in ACCOUNT_FILES]


def agent_binary():
    """The agent to install: $MYOSICAM_AGENT_BIN (relative to the repository) or the debug build."""
    path = os.environ.get("MYOSICAM_AGENT_BIN") or os.path.join(".build", "debug", "myosicam-agent")
    path = os.path.join(REPO, path)
    return path if os.access(path, os.X_OK) else None


def is_root():
    return os.geteuid() == 0


def missing_tools(*names):
    return [name for name in names if shutil.which(name) is None]


def run(args, stdin=None, env=None, timeout=120):
    """Runs args (no shell) and returns the CompletedProcess with text output."""
    return subprocess.run(args, input=stdin, env=env, timeout=timeout, capture_output=True, text=True)


def as_agent(args):
    """Runs args as the agent's user."""
    return run(["runuser", "-u", USER, "--"] + list(args))


def user_exists(name=USER):
    return run(["getent", "passwd", name]).returncode == 0


def group_exists(name=USER):
    return run(["getent", "group", name]).returncode == 0


def preexisting():
    """What of a myosicam install is already on this machine (then the real-install tests skip)."""
    found = [path for path in INSTALLED_PATHS if os.path.lexists(path)]
    if user_exists():
        found.append("user " + USER)
    if group_exists():
        found.append("group " + USER)
    return found


@contextlib.contextmanager
def machine_lock():
    """One real-install test run at a time on this machine (other sessions run `make test` too).
    The lock is on the directory /run/lock itself, so no lock file is left behind."""
    descriptor = os.open("/run/lock" if os.path.isdir("/run/lock") else "/tmp", os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


# MARK: - Snapshots


def tree_listing(root):
    """Every entry under root: relative path -> (type+mode, uid, gid, sha256 or link target)."""
    listing = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            content = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            listing[os.path.relpath(path, root)] = (stat.filemode(info.st_mode), info.st_uid, info.st_gid, content)
    return listing


def getfacl_tree(root):
    """`getfacl -R` of root as {path: entries}, so the order of directory entries does not matter."""
    output = run(["getfacl", "-R", "-p", "-n", root]).stdout
    blocks = {}
    for block in output.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("# file: "):
            blocks[lines[0][len("# file: "):]] = "\n".join(lines[1:])
    return blocks


def acl_entry(path, user=USER):
    """The permissions of `user:<user>:` in path's ACL, or None."""
    for line in run(["getfacl", "-p", path]).stdout.splitlines():
        match = re.match(r"^user:%s:([rwx-]{3})" % re.escape(user), line)
        if match:
            return match.group(1)
    return None


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def machine_state(fake_root):
    """What an install may change and an uninstall must put back."""
    sudoers = {}
    for name in sorted(os.listdir("/etc/sudoers.d")) if os.path.isdir("/etc/sudoers.d") else []:
        path = os.path.join("/etc/sudoers.d", name)
        sudoers[name] = (oct(os.lstat(path).st_mode), read_bytes(path))
    return {
        "accounts": {path: read_bytes(path) for path in ACCOUNT_FILES},
        "sudoers.d": sudoers,
        "installed paths": [path for path in INSTALLED_PATHS if os.path.lexists(path)],
        "getfacl -R": getfacl_tree(fake_root),
    }


# MARK: - The development panel


class DevPanel:
    """tools/devpanel on 127.0.0.1 with a port the kernel picks."""

    def __init__(self, data):
        self.data = data
        os.makedirs(data, exist_ok=True)
        port_file = os.path.join(data, "port")
        self.log = open(os.path.join(data, "serve.log"), "w")
        self.process = subprocess.Popen(
            [sys.executable, DEVPANEL, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0",
             "--port-file", port_file], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(os.path.join(data, "serve.log")) as handle:
                    raise RuntimeError("devpanel did not start:\n" + handle.read())
            time.sleep(0.1)
        with open(port_file) as handle:
            self.url = "https://127.0.0.1:%d" % int(handle.read().strip())
        self.ca = os.path.join(data, "ca.pem")
        with open(os.path.join(data, "pin-sha256.txt")) as handle:
            self.pin = handle.read().strip()

    def token(self):
        result = run([sys.executable, DEVPANEL, "token", "--data", self.data])
        if result.returncode != 0:
            raise RuntimeError("devpanel token failed: " + result.stderr)
        return result.stdout.strip()

    def servers(self):
        result = run([sys.executable, DEVPANEL, "servers", "--data", self.data])
        return [line for line in result.stdout.splitlines() if line.strip()]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# MARK: - A fake OScam tree


class FakeOScam:
    """An OScam config dir, temp dir, systemd unit and empty proc root under base (mode 0700, so
    the agent needs --x on it), with the modes a careful operator would set."""

    def __init__(self, base):
        self.base = base
        self.config = os.path.join(base, "etc", "oscam")
        self.tmp = os.path.join(base, "tmp", ".oscam")
        self.systemd = os.path.join(base, "systemd")
        self.proc = os.path.join(base, "proc")
        for path, mode in [(base, 0o700), (os.path.join(base, "etc"), 0o755), (self.config, 0o750),
                           (os.path.join(base, "tmp"), 0o755), (self.tmp, 0o700), (self.systemd, 0o755),
                           (self.proc, 0o755)]:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        example = os.path.join(REPO, "config", "example", "oscam", "main")
        for name in ["oscam.conf", "oscam.user", "oscam.server"]:
            shutil.copyfile(os.path.join(example, name), os.path.join(self.config, name))
            os.chmod(os.path.join(self.config, name), 0o600)
        self.write(os.path.join(self.config, "oscam.pem"), "-----BEGIN PRIVATE KEY-----\nfake\n", 0o600)
        self.write(os.path.join(self.config, "oscam.srvid2"), "# srvid2\n", 0o644)
        self.write(os.path.join(self.tmp, "oscam.version"),
                   "Unix Starttime: 1795945917\nVersion:        2.26.05-11960@a2b4c6d8\nPID:            4242\n"
                   "TempDir:        %s\nConfigDir:      %s/\nWebifPort:      18888\n" % (self.tmp, self.config), 0o600)
        self.write(os.path.join(self.tmp, "oscam.pid"), "4243\n", 0o644)
        self.write(os.path.join(self.systemd, FAKE_UNIT),
                   "[Unit]\nDescription=fake OScam for the installer tests\n[Service]\n"
                   "ExecStart=/usr/local/bin/oscam -b -r 2 -c %s -t %s\n" % (self.config, self.tmp), 0o644)

    @staticmethod
    def write(path, text, mode):
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)

    def discovery_settings(self):
        """--set options that make discovery see this tree only (no /proc: other sessions' stand-ins)."""
        return ["--set", "discovery.proc_root=" + self.proc, "--set", "discovery.systemd_dirs=" + self.systemd,
                "--set", "discovery.version_dirs=" + self.tmp]


# MARK: - Cleanup


def force_cleanup():
    """Removes whatever of an install is left after a failed test: the uninstaller first, then by
    hand. Only called when preexisting() was empty before the test, so all of it is the test's."""
    if os.path.isdir("/var/lib/myosicam-install") or os.path.lexists("/etc/sudoers.d/myosicam"):
        run([UNINSTALL, "--purge"])
    for path in INSTALLED_PATHS:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    if user_exists():
        run(["userdel", USER])
    if group_exists():
        run(["groupdel", USER])
    with contextlib.suppress(FileNotFoundError):
        os.unlink("/run/sudo/ts/" + USER)
