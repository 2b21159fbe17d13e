#!/usr/bin/env python3
"""`make bench-peers`: the agent's footprint against two monitoring agents operators already run,
on the same machine in the same run (issue 7 "Footprint against real peers"):

- myosicam-agent `run` at the production 60 s heartbeat on the example tree, against the
  development panel over HTTPS on loopback;
- prometheus-node-exporter (Debian's package) on loopback, scraped once a minute;
- collectd (Debian's package) with Debian's default plugin set and RRD output in a temp dir.

For SECONDS (default 900) it samples every process's RSS and CPU from /proc every 10 s and
reports RSS (mean and max), CPU per hour and as % of one core, with ratios to each peer. For the
agent also: time from start to the first heartbeat (fresh state: registration included, and
registered), bytes on the wire per hour at steady state with no change (HTTP requests as sent,
and as they would be without gzip; TLS and TCP framing not counted), and the stripped binary size.

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
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEVPANEL = os.path.join(ROOT, "tools", "devpanel", "devpanel")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
COLLECTD_CONF = "/etc/collectd/collectd.conf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_for(condition, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit("bench: timed out waiting for " + what)


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
                    % (port, self.data, work, work, example, work, example, example))
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

    def wire(self, since, until):
        """(bytes as sent, bytes without gzip, requests) of the agent's requests in [since, until)."""
        db = sqlite3.connect("file:%s/devpanel.sqlite3?mode=ro" % self.data, uri=True)
        try:
            rows = db.execute("select raw, body_decoded from requests where received_at >= ? and received_at < ?",
                              (since, until)).fetchall()
        finally:
            db.close()
        sent = plain = 0
        for raw, decoded in rows:
            raw = bytes(raw or b"")
            sent += len(raw)
            head, _, body = raw.partition(b"\r\n\r\n")
            if b"content-encoding: gzip" in head.lower() and decoded is not None:
                plain += len(head) + 4 + len(bytes(decoded))
            else:
                plain += len(raw)
        return sent, plain, len(rows)


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
        agent = Agent(binary, work)
        procs.append(agent.panel)
        registering = agent.start()
        agent.stop()
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

        # Let start-up settle, then measure a steady state.
        time.sleep(20)
        named = {"myosicam-agent": agent.process.pid, "node-exporter": exporter.pid, "collectd": collectd.pid}
        first = {name: sample(pid) for name, pid in named.items()}
        rss = {name: [] for name in named}
        start_wall = time.time()
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
        sent, plain, requests = agent.wire(start_wall, start_wall + elapsed)

        stripped = os.path.join(work, "agent-stripped")
        shutil.copy(binary, stripped)
        subprocess.run(["strip", stripped], check=True)

        def cpu_hour(name):
            return (last[name][0] - first[name][0]) / elapsed * 3600

        def mean(values):
            return sum(values) / len(values)

        ours = "myosicam-agent"
        print("Date: %s. Machine: %d CPUs, %s. Steady state over %.0f s (%d node-exporter scrapes)."
              % (time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count(), os.uname().machine, elapsed, scraped))
        print()
        print("| Process | RSS mean / max | CPU per hour | % of one core |")
        print("|---|---|---|---|")
        for name in named:
            print("| %s | %.1f / %.1f MB | %.2f s | %.3f %% |" % (name, mean(rss[name]), max(rss[name]), cpu_hour(name),
                                                           cpu_hour(name) / 36))
        print()
        for peer in ("node-exporter", "collectd"):
            print("- against %s: RSS %.2fx, CPU %.2fx" % (peer, mean(rss[ours]) / mean(rss[peer]),
                                                      cpu_hour(ours) / max(1e-9, cpu_hour(peer))))
        print()
        print("| myosicam-agent | Value | Budget |")
        print("|---|---|---|")
        print("| Start to first heartbeat, registering first | %.2f s | |" % registering)
        print("| Start to first heartbeat, registered | %.2f s | |" % registered)
        print("| On the wire per hour, as sent (gzip over 8 KiB) | %.1f KB (%d requests) | 100 KB |"
              % (sent / elapsed * 3600 / 1000, round(requests / elapsed * 3600)))
        print("| On the wire per hour, without gzip | %.1f KB | |" % (plain / elapsed * 3600 / 1000))
        print("| RSS | %.1f MB | 20 MB |" % mean(rss[ours]))
        print("| Idle CPU | %.3f %% of a core | 0.1 %% |" % (cpu_hour(ours) / 36))
        print("| Stripped binary | %.1f MB | 16 MB |" % (os.path.getsize(stripped) / 1048576))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
