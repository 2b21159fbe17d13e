#!/usr/bin/env python3
"""`make bench-peers`: the agent's footprint against two monitoring agents operators already run,
on the same machine in the same run (issue 7 "Footprint against real peers"):

- myosicam-agent `run` at the production 60 s heartbeat on the example tree, against the
  development panel over HTTPS on loopback;
- prometheus-node-exporter (Debian's package) on loopback, scraped once a minute;
- collectd (Debian's package) with Debian's default plugin set and RRD output in a temp dir.

For SECONDS (default 900) it samples every process's RSS and CPU from /proc every 10 s and
reports RSS (mean and max of the samples, and the kernel's peak since start, VmHWM, which a 10 s
sample can miss), CPU per hour and as % of one core, with the agent's ratio to each peer. For the
agent also: time from start to the first heartbeat (fresh state: registration included, and
registered), bytes on the wire per hour at steady state with no change, and the stripped binary
size.

Bytes on the wire: the agent talks to the panel through a relay here that counts every byte of
its connections both ways (TLS records and handshakes, answers included; TCP/IP headers not
counted), and the panel's request log gives the HTTP requests as sent and as they would be
without gzip. The steady state starts after both start-ups, so the start-up snapshot is not in
it. A snapshot whose content changed is sent every 5 minutes (the host's load and memory figures
in it change on any machine); an unchanged one is re-sent once an hour (docs/panel-link.md),
which a window shorter than an hour may not hold, so when the window holds no snapshot the
per-hour figures add one delivery of the start-up snapshot's size.

Usage: bench/peers.py AGENT_BINARY [SECONDS]
"""
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEVPANEL = os.path.join(ROOT, "tools", "devpanel", "devpanel")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
COLLECTD_CONF = "/etc/collectd/collectd.conf"
sys.path.insert(0, HERE)
from benchlib import free_port, wait_for  # noqa: E402


def sample(pid):
    """(cpu seconds, rss MB) of one process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * PAGE / 1048576
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, rss


def peak_rss(pid):
    """VmHWM: the most RSS the process ever had, in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class CountingRelay:
    """A TCP relay from a loopback port to the panel's that counts the bytes each way: what the
    agent's connections carry, TLS handshakes and records included."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.up = self.down = self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def counts(self):
        """(bytes agent to panel, bytes panel to agent, connections opened) so far."""
        with self.lock:
            return self.up, self.down, self.connections

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed at the end of the run
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
            done = []
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, done), daemon=True).start()

    def _pump(self, src, dst, up, done):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass  # the other side went away; its pump ends too
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            done.append(up)
            last = len(done) == 2
        if last:
            src.close()
            dst.close()

    def close(self):
        self.listener.close()


class Agent:
    """The panel and the agent, registered, at a 60 s heartbeat."""

    def __init__(self, binary, work):
        self.work = work
        self.data = os.path.join(work, "panel")
        self.panel = subprocess.Popen([sys.executable, DEVPANEL, "serve", "--data", self.data, "--port", "0",
                                       "--port-file", os.path.join(work, "port"), "--heartbeat-interval", "60",
                                       "--snapshot-interval", "300"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = wait_for(lambda: os.path.exists(os.path.join(work, "port"))
                        and open(os.path.join(work, "port")).read().strip(), 30, "the panel")
        self.relay = CountingRelay(int(port))
        token = subprocess.run([sys.executable, DEVPANEL, "token", "--data", self.data], check=True,
                               capture_output=True, text=True).stdout.strip()
        with open(os.path.join(work, "token"), "w") as f:
            f.write(token + "\n")
        example = os.path.join(ROOT, "config", "example")
        self.conf = os.path.join(work, "agent.conf")
        with open(self.conf, "w") as f:
            f.write("[panel]\nurl = https://127.0.0.1:%s\nca_file = %s/ca.pem\n[agent]\nstate_dir = %s/state\n"
                    "install_token_file = %s/token\ncollectors_file = %s/collectors.conf\n"
                    "allowed_actions_file = %s/allowed-actions\n[discovery]\nauto = no\n"
                    "config_dirs = %s/oscam/main, %s/oscam/backup\nsystemd_dirs =\nversion_dirs =\n"
                    % (self.relay.port, self.data, work, work, example, work, example, example))
        self.binary = binary
        self.process = None

    def first_heartbeat_after(self, started):
        db = sqlite3.connect("file:%s/devpanel.sqlite3?mode=ro" % self.data, uri=True)
        try:
            row = db.execute("select min(received_at) from requests where path like '%/heartbeat' "
                             "and status = 200 and received_at >= ?", (started,)).fetchone()
        finally:
            db.close()
        return row[0] if row and row[0] else None

    def start(self):
        """Starts the agent; returns seconds from exec to the first accepted heartbeat."""
        args = [self.binary, "run", "--config", self.conf] + (["--allow-root"] if os.getuid() == 0 else [])
        started = time.time()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.work, "agent.log"), "a"))
        first = wait_for(lambda: self.first_heartbeat_after(started), 60, "the first heartbeat")
        return first - started

    def stop(self):
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def requests(self, since, until):
        """[(path, bytes as sent, bytes without gzip)] of the agent's requests in [since, until)."""
        db = sqlite3.connect("file:%s/devpanel.sqlite3?mode=ro" % self.data, uri=True)
        try:
            rows = db.execute("select path, raw, raw_truncated, body_decoded from requests "
                              "where received_at >= ? and received_at < ? order by id", (since, until)).fetchall()
        finally:
            db.close()
        out = []
        for path, raw, truncated, decoded in rows:
            if truncated:
                raise SystemExit("bench: the panel's request log cut a request short; its size is unknown")
            raw = bytes(raw or b"")
            head, _, body = raw.partition(b"\r\n\r\n")
            plain = len(raw)
            if b"content-encoding: gzip" in head.lower() and decoded is not None:
                # The same request uncompressed; its Content-Length would differ by a digit or two.
                plain = len(head) + 4 + len(bytes(decoded))
            out.append((path or "", len(raw), plain))
        return out


def machine():
    """CPU count and model, memory, architecture and OS, for the results' heading."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    release = ""
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    release = line.split("=", 1)[1].strip().strip('"')
    return "%d CPUs (%s), %d GiB, %s, %s" % (os.cpu_count(), model, mem_kib // 1048576, os.uname().machine, release)


def kind(path):
    """A request's kind for the per-hour counts: heartbeat, snapshots, commands/poll, ..."""
    return path.split("?", 1)[0].split("/api/agent/v1/", 1)[-1]


def collectd_conf(work):
    """Debian's default collectd.conf, with its state and RRD files in `work`."""
    text = open(COLLECTD_CONF).read()
    text = re.sub(r'(?m)^#?BaseDir\s+.*$', 'BaseDir "%s/collectd"' % work, text)
    text = re.sub(r'(?m)^#?PIDFile\s+.*$', 'PIDFile "%s/collectd.pid"' % work, text)
    text = re.sub(r'(?m)^(\s*)DataDir\s+.*$', r'\1DataDir "%s/collectd/rrd"' % work, text)
    os.makedirs(os.path.join(work, "collectd", "rrd"), exist_ok=True)
    path = os.path.join(work, "collectd.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 900
    work = tempfile.mkdtemp(prefix="myosicam-bench-peers-")
    procs = []
    agent = None
    try:
        # Stripped and checked first, so that a failed strip does not cost the whole run.
        stripped = os.path.join(work, "agent-stripped")
        subprocess.run(["strip", "-o", stripped, binary], check=True)
        size = os.path.getsize(stripped)
        with open(stripped, "rb") as f:
            if f.read(4) != b"\x7fELF" or size < 1 << 20:
                raise SystemExit("bench: strip -o %s gave %d bytes, not the binary" % (stripped, size))
        agent = Agent(binary, work)
        procs.append(agent.panel)
        registering = agent.start()
        agent.stop()
        restarted = time.time()
        registered = agent.start()
        procs.append(agent.process)

        exporter_port = free_port()
        exporter = subprocess.Popen(["prometheus-node-exporter", "--web.listen-address=127.0.0.1:%d" % exporter_port],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(exporter)
        collectd = subprocess.Popen(["collectd", "-f", "-C", collectd_conf(work)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(collectd)
        url = "http://127.0.0.1:%d/metrics" % exporter_port

        def exporter_up():
            try:
                return urllib.request.urlopen(url, timeout=2).status == 200
            except OSError:
                return False  # not listening yet
        wait_for(exporter_up, 30, "node-exporter")

        # Let start-up settle, then measure a steady state: the start-up snapshot is delivered,
        # and the command channel has gone quiet (command_poll_idle_after, 600 s by default, and
        # the poll held at that moment). PEERS_SETTLE changes the wait.
        time.sleep(int(os.environ.get("PEERS_SETTLE", "660")))
        named = {"myosicam-agent": agent.process.pid, "prometheus-node-exporter": exporter.pid,
                 "collectd": collectd.pid}
        first = {name: sample(pid) for name, pid in named.items()}
        rss = {name: [] for name in named}
        start_wall = time.time()
        relay_first = agent.relay.counts()
        next_scrape = time.monotonic()
        scraped = 0
        while time.time() - start_wall < seconds:
            if time.monotonic() >= next_scrape:
                urllib.request.urlopen(url, timeout=10).read()
                scraped += 1
                next_scrape += 60
            for name, pid in named.items():
                now = sample(pid)
                if now is None:
                    raise SystemExit("bench: %s exited" % name)
                rss[name].append(now[1])
            time.sleep(10)
        elapsed = time.time() - start_wall
        last = {name: sample(pid) for name, pid in named.items()}
        peak = {name: peak_rss(pid) for name, pid in named.items()}
        relay_last = agent.relay.counts()
        steady = agent.requests(start_wall, start_wall + elapsed)
        startup = [r for r in agent.requests(restarted, start_wall) if kind(r[0]) == "snapshots"]
        if not startup:
            raise SystemExit("bench: no start-up snapshot before the steady state")
        snapshot = startup[-1]

        def cpu_hour(name):
            return (last[name][0] - first[name][0]) / elapsed * 3600

        def mean(values):
            return sum(values) / len(values)

        def per_hour(value):
            return value / elapsed * 3600

        ours = "myosicam-agent"
        print("Date: %s. Machine: %s. Steady state over %.0f s, RSS and CPU sampled every 10 s "
              "(%d samples each), node-exporter scraped %d times."
              % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start_wall)), machine(), elapsed,
                 len(rss[ours]), scraped))
        print()
        print("| Process | RSS mean / max of the samples | Peak RSS since start (VmHWM) | CPU per hour "
              "| % of one core | myosicam-agent's RSS / CPU against it |")
        print("|---|---|---|---|---|---|")
        for name in named:
            ratio = "" if name == ours else "%.2fx / %.2fx" % (
                mean(rss[ours]) / mean(rss[name]), cpu_hour(ours) / max(1e-9, cpu_hour(name)))
            print("| %s | %.1f / %.1f MiB | %.1f MiB | %.2f s | %.4f %% | %s |"
                  % (name, mean(rss[name]), max(rss[name]), peak[name], cpu_hour(name), cpu_hour(name) / 36, ratio))
        print()

        sent = sum(r[1] for r in steady)
        plain = sum(r[2] for r in steady)
        tls = (relay_last[0] - relay_first[0]) + (relay_last[1] - relay_first[1])
        connections = relay_last[2] - relay_first[2]
        kinds = {}
        for r in steady:
            count, total = kinds.get(kind(r[0]), (0, 0))
            kinds[kind(r[0])] = (count + 1, total + r[1])
        mix = ", ".join("%s %d, %.1f KB" % (k, round(per_hour(n)), per_hour(b) / 1000)
                        for k, (n, b) in sorted(kinds.items()))
        # The hourly re-send of an unchanged snapshot, when the window is too short to show it.
        hourly = (0, 0) if "snapshots" in kinds else snapshot[1:]
        print("| myosicam-agent | Value | Budget |")
        print("|---|---|---|")
        print("| Start to first heartbeat, registering first | %.2f s | |" % registering)
        print("| Start to first heartbeat, registered | %.2f s | |" % registered)
        print("| Requests per hour at steady state (count, bytes as sent) | %d: %s | |" % (round(per_hour(len(steady))), mix))
        print("| Connections opened in the steady state | %d | |" % connections)
        print("| On the wire per hour, both ways, TLS included | %.1f KB (to the panel %.1f, from it %.1f) | 100 KB |"
              % ((per_hour(tls) + hourly[0]) / 1000, (per_hour(relay_last[0] - relay_first[0]) + hourly[0]) / 1000,
                 per_hour(relay_last[1] - relay_first[1]) / 1000))
        print("| HTTP requests per hour, as sent (gzip over 8 KiB) | %.1f KB | |" % ((per_hour(sent) + hourly[0]) / 1000))
        print("| HTTP requests per hour, without gzip | %.1f KB | |" % ((per_hour(plain) + hourly[1]) / 1000))
        print("| One snapshot delivery (as sent / without gzip) | %.1f / %.1f KB%s | |"
              % (snapshot[1] / 1000, snapshot[2] / 1000,
                 "" if hourly[0] == 0 else "; the window held none, so one an hour is added above"))
        print("| RSS, mean / max of the samples | %.1f / %.1f MiB | 20 MB |" % (mean(rss[ours]), max(rss[ours])))
        print("| Idle CPU | %.4f %% of a core | 0.1 %% |" % (cpu_hour(ours) / 36))
        print("| Stripped binary | %.1f MB (%.1f MiB) | 16 MB |" % (size / 1e6, size / 1048576))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if agent:
            agent.relay.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
