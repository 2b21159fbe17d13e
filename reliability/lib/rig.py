"""What the reliability parts share: the real agent binary, the development panel and OScam
stand-ins on loopback in a private temp dir, /proc sampling, size-limited file systems, and
the secrets check. Python 3 standard library only.

Every process a part starts and every mount it makes is undone when the part exits, also on
an exception or SIGTERM/SIGINT (`Work.close`).
"""

import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVPANEL = os.path.join(ROOT, "tools", "devpanel", "devpanel")
STANDIN = os.path.join(ROOT, "tools", "oscam-standin", "oscam")
EXAMPLE = os.path.join(ROOT, "config", "example", "oscam")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
sys.path.insert(0, os.path.dirname(DEVPANEL))
import devpanel_faults  # noqa: E402
import devpanel_store  # noqa: E402


def agent_binary():
    path = os.environ.get("MYOSICAM_AGENT_BIN") or os.path.join(ROOT, ".build", "debug", "myosicam-agent")
    if not os.access(path, os.X_OK):
        sys.exit("myosicam-agent not built (%s); run `make build` or set MYOSICAM_AGENT_BIN" % path)
    return path


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def wait_for(condition, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instance_id(config_dir):
    """DiscoveredInstance.id(forConfigDir:): FNV-1a 64 of the normalised dir, ending in `/`."""
    value = 0xcbf29ce484222325
    for byte in (os.path.normpath(config_dir) + "/").encode():
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "osc_%016x" % value


def strict_json(data):
    """json.loads that refuses duplicate keys, NaN and Infinity, like the agent's own parser."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(items)

    def constant(name):
        raise ValueError("not JSON: %s" % name)
    return json.loads(data, object_pairs_hook=pairs, parse_constant=constant)


# MARK: - Assertions

class Checks:
    """Collects failed assertions; a part reports them all and exits 1 if any."""

    def __init__(self):
        self.failed = []

    def check(self, condition, message):
        if not condition:
            self.failed.append(message)
            log("FAILED:", message)
        return condition

    def finish(self, figures=None):
        if figures:
            log("figures:", json.dumps(figures, sort_keys=True))
        if self.failed:
            log("%d assertion(s) failed" % len(self.failed))
            return 1
        log("all assertions hold")
        return 0


# MARK: - The work dir: processes and mounts undone at exit

class Work:
    def __init__(self, name):
        self.root = tempfile.mkdtemp(prefix="myosicam-rel-%s-" % name)
        os.chmod(self.root, 0o755)
        self.closers = []
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signalled)

    def _signalled(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def on_close(self, function):
        self.closers.append(function)

    def close(self):
        while self.closers:
            try:
                self.closers.pop()()
            except Exception as error:          # keep undoing the rest
                log("cleanup:", error)
        # Anything still running from this dir (daemonized stand-ins, a stray agent).
        kill_tree_of(self.root)
        if os.environ.get("RELIABILITY_KEEP"):
            log("kept", self.root)
        elif os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    def tmpfs(self, path, size):
        """Mounts a size-limited tmpfs on `path` (root only), unmounted at close."""
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path], check=True)
        self.on_close(lambda: subprocess.run(["umount", "-l", path], check=False))
        return path


def pids_with(marker):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(name))
        except OSError:
            pass
    return found


def kill_tree_of(marker, grace=5):
    pids = pids_with(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def terminate(proc, grace):
    """SIGTERM to a child, SIGKILL after `grace` seconds; waits for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def stopped(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def rss_kb(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


# MARK: - The development panel

class Panel:
    def __init__(self, work, *serve_args):
        self.work = work
        self.data = work.path("panel")
        port_file = work.path("panel.port")
        self.log_path = work.path("panel.log")
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, DEVPANEL, "serve", "--data", self.data, "--port", "0",
                                      "--port-file", port_file] + list(serve_args),
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        work.on_close(self.stop)
        if not wait_for(lambda: os.path.exists(port_file) or self.proc.poll() is not None, 60):
            raise RuntimeError("devpanel did not start")
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = "https://127.0.0.1:%d" % self.port
        self.ca = os.path.join(self.data, "ca.pem")

    def stop(self):
        terminate(self.proc, 10)
        self.log_file.close()

    def admin(self, *args, stdin=None, binary=False):
        """A devpanel admin subcommand, as a separate process (what an operator runs)."""
        proc = subprocess.run([sys.executable, DEVPANEL, args[0], "--data", self.data] + list(args[1:]),
                              input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError("devpanel %s: %s" % (" ".join(args[:2]), proc.stderr.decode(errors="replace")))
        return proc.stdout if binary else proc.stdout.decode()

    # The frequent questions go to devpanel's store in this process (the admin subcommands do
    # the same, with a Python start-up each): a part asks them many times a second.

    @property
    def store(self):
        return devpanel_store.Store(self.data)

    def now(self):
        try:
            fault = devpanel_faults.parse_fault(self.store.get_setting("fault"))
        except ValueError:
            fault = None
        return int(time.time()) + devpanel_faults.skew(fault)

    def fault(self, name):
        self.store.set_setting("fault", devpanel_faults.fault_text(devpanel_faults.parse_fault(name)))

    def token(self):
        return self.store.mint_token(self.now(), 86400)

    def server_id(self):
        servers = self.store.servers()
        return servers[0]["server_id"] if servers else None

    def queue(self, server, command, ttl=None):
        """Queues a command as `devpanel command` does (id, issued_at and expires_at filled in)."""
        command = dict(command)
        now = self.now()
        command.setdefault("id", "cmd_" + os.urandom(8).hex())
        command.setdefault("issued_at", now)
        command.setdefault("expires_at", command["issued_at"] + (600 if ttl is None else ttl))
        self.store.queue_command(server, command["id"], json.dumps(command, sort_keys=True, separators=(",", ":")),
                                 now)
        return command

    def results(self, server):
        return {cid: {"command_id": cid, "status": status, "received_at": received, "resends": resends,
                      "body": json.loads(bytes(body))}
                for cid, status, body, received, resends, _ in self.store.results(server)}

    def commands(self, server):
        return [{"id": cid, "command": json.loads(body), "delivery_count": count}
                for cid, body, _, count, _, _, _ in self.store.commands(server)]

    def heartbeat_count(self, server):
        return len(self.store.heartbeats(server))

    def snapshot_seqs(self, server):
        return [row[0] for row in self.store.snapshots(server)]

    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "devpanel.sqlite3"), uri=True,
                               timeout=30)

    def requests(self):
        """(id, path, status, error, fault, raw, decoded) of every logged request."""
        with self.db() as db:
            return [(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6]) if r[6] is not None else None)
                    for r in db.execute("SELECT id, path, status, error, fault, raw, body_decoded FROM requests "
                                        "ORDER BY id")]



# MARK: - OScam stand-ins

class StandIn:
    """An OScam stand-in started like OScam on a server (`-b -c -t -B`), with a WebIF."""

    def __init__(self, work, name, user_text, password, env=None, webif=True):
        self.root = work.path("oscam-" + name)
        self.config_dir = os.path.join(self.root, "cfg")
        self.temp_dir = os.path.join(self.root, "tmp")
        self.pid_file = os.path.join(self.root, "oscam.pid")
        self.log_file = os.path.join(self.root, "oscam.log")
        self.password = password
        self.port = free_port()
        self.env = dict(env or {})
        os.makedirs(self.config_dir)
        with open(self.conf_path, "w") as f:
            f.write("[global]\nlogfile = %s\n\n[webif]\nhttpport = %d\nhttpuser = admin\nhttppwd = %s\n"
                    "httpallowed = 127.0.0.1\n" % (self.log_file, self.port if webif else 0, password))
        with open(self.user_path, "w") as f:
            f.write(user_text)
        self.id = instance_id(self.config_dir)
        work.on_close(self.stop)

    @property
    def conf_path(self):
        return os.path.join(self.config_dir, "oscam.conf")

    @property
    def user_path(self):
        return os.path.join(self.config_dir, "oscam.user")

    def listening_count(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read().count("Server running. ip=127.0.0.1 port=%d" % self.port)
        except OSError:
            return 0

    def start(self, env=None, wait=True):
        before = self.listening_count()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OSCAM_STANDIN_")}
        environment.update({"OSCAM_STANDIN_RESTART_DELAY": "0.3"})
        environment.update(self.env)
        environment.update(env or {})
        subprocess.run([STANDIN, "-b", "-c", self.config_dir, "-t", self.temp_dir, "-B", self.pid_file],
                       env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=60)
        if wait and not wait_for(lambda: self.listening_count() > before, 40):
            raise RuntimeError("stand-in %s not listening" % self.root)

    def worker_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        kill_tree_of(self.root)

    def loaded_accounts(self):
        """The account names OScam has in memory (its userstats API; usermd5 = id_ + MD5)."""
        url = "http://127.0.0.1:%d/oscamapi.json?part=userstats" % self.port
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, url, "admin", self.password)
        opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
        with opener.open(url, timeout=10) as response:
            doc = json.loads(response.read())
        return {u["user"]["usermd5"] for u in doc["oscam"]["users"]}


def user_md5(name):
    return "id_" + hashlib.md5(name.encode()).hexdigest()


# MARK: - The agent

class Agent:
    """`myosicam-agent run` with its own agent.conf, state dir, install token and log file."""

    def __init__(self, work, panel, config_dirs, name="agent", collectors=None, log_level="info",
                 extra_agent="", allowed_actions=None, env=None):
        self.work = work
        self.panel = panel
        self.dir = work.path(name)
        os.makedirs(self.dir)
        self.state_dir = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "agent.conf")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.token_path = os.path.join(self.dir, "install-token")
        self.token = panel.token()
        self.env = dict(env or {})
        with open(self.token_path, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_path, 0o600)
        collectors_line = ""
        if collectors is not None:
            with open(os.path.join(self.dir, "collectors.conf"), "w") as f:
                f.write("\n".join(collectors) + "\n")
        if allowed_actions is not None:
            with open(os.path.join(self.dir, "allowed-actions"), "w") as f:
                f.write(allowed_actions)
            os.chmod(os.path.join(self.dir, "allowed-actions"), 0o644)
        collectors_line = "collectors_file = %s/collectors.conf\n" % self.dir
        with open(self.conf, "w") as f:
            f.write("[panel]\nurl = %s\nca_file = %s\n[agent]\nstate_dir = %s\ninstall_token_file = %s\n"
                    "%sallowed_actions_file = %s/allowed-actions\nlog_level = %s\n%s"
                    "[discovery]\nauto = no\nconfig_dirs = %s\nproc_root = /proc\nsystemd_dirs =\nversion_dirs =\n"
                    % (panel.url, panel.ca, self.state_dir, self.token_path, collectors_line, self.dir, log_level,
                       extra_agent, ", ".join(config_dirs)))
        self.proc = None
        self.starts = 0
        self.outputs = []       # (label, bytes) of every run_command
        work.on_close(self.stop)

    def start(self, env=None):
        environment = dict(os.environ)
        environment.update(self.env)
        environment.update(env or {})
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([agent_binary(), "run", "--config", self.conf, "--allow-root"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
                                         env=environment)
        self.starts += 1
        return self.proc.pid

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def stop(self, timeout=5):
        """SIGTERM; returns the exit status and the seconds it took (SIGKILL after `timeout`)."""
        if not self.running():
            return (self.proc.returncode if self.proc else None), 0.0
        start = time.monotonic()
        terminate(self.proc, timeout)
        return self.proc.returncode, time.monotonic() - start

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_bytes(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def run_command(self, *args):
        environment = dict(os.environ)
        environment.update(self.env)
        proc = subprocess.run([agent_binary()] + list(args) + ["--config", self.conf], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60, env=environment)
        label = "myosicam-agent %s" % " ".join(args)
        self.outputs += [(label + " stdout", proc.stdout), (label + " stderr", proc.stderr)]
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def state(self):
        """state.json parsed strictly, or raises."""
        with open(os.path.join(self.state_dir, "state.json"), "rb") as f:
            return strict_json(f.read())

    def server(self):
        """The server id once the agent registered (30 s at most)."""
        if not wait_for(lambda: self.panel.server_id() is not None, 30):
            raise RuntimeError("the agent did not register; its log ends:\n" + self.log_text()[-2000:])
        return self.panel.server_id()

    def spool(self):
        path = os.path.join(self.state_dir, "spool")
        try:
            return sorted(n for n in os.listdir(path) if n.endswith(".snapshot"))
        except OSError:
            return []

    def spool_counters(self):
        counters = {"dropped": 0, "rejected": 0}
        try:
            with open(os.path.join(self.state_dir, "spool", "counters")) as f:
                for line in f:
                    key, _, value = line.strip().partition("=")
                    counters[key] = int(value)
        except OSError:
            pass
        return counters


# MARK: - Sampling

class Sampler:
    """RSS (kB) and open descriptors of a pid, sampled every `interval` s on demand."""

    def __init__(self):
        self.samples = []       # (monotonic s, rss kB, fds)

    def sample(self, pid):
        rss, fds = rss_kb(pid), fd_count(pid)
        if rss is not None and fds is not None:
            self.samples.append((time.monotonic(), rss, fds))

    def max_rss_mb(self):
        return max((s[1] for s in self.samples), default=0) / 1024

    def warm(self, skip_fraction=0.2):
        return self.samples[int(len(self.samples) * skip_fraction):]

    def slope_per_hour(self, index, skip_fraction=0.2):
        """Least-squares slope of field `index` (1 rss kB, 2 fds) per hour, after a warm-up."""
        return least_squares_slope([(p[0], p[index]) for p in self.warm(skip_fraction)])

    def floors(self, index, window):
        """(middle s, lowest value) of field `index` in each `window` seconds after the warm-up.
        A leak raises the floor; a collection or a command in flight only raises a moment, which
        a sample every few seconds catches at random, so the floor is what a leak check fits."""
        warm = self.warm()
        if not warm:
            return []
        buckets = {}
        for point in warm:
            buckets.setdefault(int((point[0] - warm[0][0]) // window), []).append(point)
        return [((b[0][0] + b[-1][0]) / 2, min(p[index] for p in b))
                for _, b in sorted(buckets.items()) if len(b) >= 2]


def least_squares_slope(points):
    """Slope per hour of (monotonic s, value) points; 0 with fewer than 3."""
    if len(points) < 3:
        return 0.0
    t0 = points[0][0]
    xs = [(p[0] - t0) / 3600 for p in points]
    ys = [p[1] for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var


# MARK: - Secrets

SECRET_KEYS = {"pwd", "httppwd", "httpuser", "password", "key", "boxkey", "nodeid", "hostname", "deskey",
               "rsakey", "aeskeys", "boxid", "pincode", "ins7e", "ins7e11", "device", "user"}
MIN_SECRET = 6


def fixture_secrets(files):
    """(where, value) of every secret value in OScam files: the keys above (and any key naming
    a key, password or secret; `user` only in oscam.server), the DES key inside a newcamd
    `port`, the host in a reader's `device`. Values shorter than MIN_SECRET bytes are left out:
    they would match by chance (`1`, `admin`)."""
    found = []
    for path in files:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        name = os.path.basename(path)
        for line in text.splitlines():
            line = line.strip().lstrip("\ufeff")
            if not line or line.startswith("#") or line.startswith("[") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key, value = key.strip().lower(), value.strip()
            secret_key = key in SECRET_KEYS or any(w in key for w in ("key", "pwd", "pass", "secret", "token"))
            if key == "user" and name != "oscam.server":
                secret_key = False
            values = []
            if secret_key:
                values.append(value)
                if key == "device" and "," in value:
                    values.append(value.split(",", 1)[0])
            if key == "port":
                values += re.findall(r"\{([0-9A-Fa-f]+)\}", value)
            for v in values:
                # A reader's device on loopback names the host the agent talks to anyway.
                if len(v.encode()) >= MIN_SECRET and v.split(",")[0] not in ("127.0.0.1", "::1", "localhost"):
                    found.append(("%s:%s" % (os.path.relpath(path, ROOT), key), v))
    return found


def oscam_files(*roots):
    out = []
    for root in roots:
        for directory, _, names in os.walk(root):
            out += [os.path.join(directory, n) for n in sorted(names)
                    if n in ("oscam.conf", "oscam.user", "oscam.server")]
    return sorted(out)


def secrets_found(panel, agents, secrets, register_only=(), texts=()):
    """Where any secret appears in what the agents sent (the panel's raw and decoded request
    log), in their logs, or in `texts` ((label, bytes), e.g. the output of `register`).
    `register_only` are values the contract puts in the register body (the install token, the
    HMAC key): allowed there and nowhere else. Returns findings."""
    findings = []
    rows = panel.requests()
    for value_label, value in secrets:
        needle = value.encode()
        for rid, path, _, _, _, raw, decoded in rows:
            allowed = value in register_only and path is not None and path.endswith("/register")
            for label, data in (("raw", raw), ("decoded", decoded or b"")):
                if needle in data and not allowed:
                    findings.append("%s in the %s bytes of request %d %s" % (value_label, label, rid, path))
        for agent in agents:
            if needle in agent.log_bytes():
                findings.append("%s in %s" % (value_label, agent.log_path))
        for label, data in texts:
            if needle in data:
                findings.append("%s in %s" % (value_label, label))
    return findings


def agent_key_secrets(agent):
    """The install token and the HMAC key (base64 and hex) of an agent."""
    import base64
    state = agent.state()
    key = base64.b64decode(state["secret"])
    return [("install token", agent.token), ("HMAC key (base64)", state["secret"]),
            ("HMAC key (hex)", key.hex())]
