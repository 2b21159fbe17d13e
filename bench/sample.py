"""Samples two processes' RSS and CPU every 10 s; prints a Markdown summary with the RSS slope
and the agent's CPU per heartbeat (heartbeats counted from the development panel's store)."""
import os
import sqlite3
import sys
import time

agent, panel, seconds, data = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tick = os.sysconf("SC_CLK_TCK")
page = os.sysconf("SC_PAGE_SIZE")


def sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * page / 1048576
    return (int(fields[11]) + int(fields[12])) / tick, rss


def anonymous(pid):
    """RssAnon: the process's own memory, without the mapped binary and libraries."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def heartbeats():
    db = sqlite3.connect(f"file:{data}/devpanel.sqlite3?mode=ro", uri=True)
    try:
        return db.execute("select count(*) from heartbeats").fetchone()[0]
    finally:
        db.close()


time.sleep(5)
start = time.time()
a0, _ = sample(agent)
p0, _ = sample(panel)
h0 = heartbeats()
rows = []
while time.time() - start < seconds:
    time.sleep(10)
    a, arss = sample(agent)
    p, prss = sample(panel)
    rows.append((time.time() - start, arss, prss))
elapsed = time.time() - start
a1, arss = sample(agent)
p1, prss = sample(panel)
h1 = heartbeats()
n = len(rows)
mean_t = sum(r[0] for r in rows) / n
mean_r = sum(r[1] for r in rows) / n
slope = sum((r[0] - mean_t) * (r[1] - mean_r) for r in rows) / max(1e-9, sum((r[0] - mean_t) ** 2 for r in rows))
beats = max(1, h1 - h0)
print(f"# Daemon steady state ({elapsed:.0f} s, 1 s heartbeat, example tree)\n")
print("| Figure | myosicam-agent | development panel (Python) | Ratio |")
print("|---|---|---|---|")
print(f"| RSS at the end | {arss:.1f} MB | {prss:.1f} MB | {arss / prss:.2f}x |")
print(f"| of which RssAnon (own memory) | {anonymous(agent):.1f} MB | {anonymous(panel):.1f} MB | |")
print(f"| CPU over the run | {100 * (a1 - a0) / elapsed:.2f} % of a core | {100 * (p1 - p0) / elapsed:.2f} % | "
      f"{(a1 - a0) / max(1e-9, p1 - p0):.2f}x |")
print(f"| RSS slope | {slope * 3600:.2f} MB per hour | | |")
print(f"| Heartbeats answered | {h1 - h0} | | |")
print(f"| CPU per heartbeat (agent) | {1000 * (a1 - a0) / beats:.2f} ms | | |")
