#!/usr/bin/env python3
"""`make bench-commands`: how long an `apply_config` takes from the panel queueing it to its result
arriving at the panel, over N commands (default 100) run one after another, with the real agent
binary, the development panel over HTTPS and the OScam stand-in on loopback.

Each command upserts one account in oscam.user; the agent writes the file under its journal,
reloads it through the stand-in's WebIF and checks the account list. Peer in the same run: the
bare WebIF round trip a reload needs (`userstats&action=reinit` with Digest auth, from Python's
urllib), i.e. the floor any agent pays. Prints a Markdown table.

Usage: bench/commands.py AGENT_BINARY [N]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "devpanel"))
import devpanel_store  # noqa: E402  (the panel's own store, to queue and time precisely)
sys.path.insert(0, HERE)
from benchlib import free_port, wait_for  # noqa: E402

WEBIF_PASSWORD = "Bench-Webif-Pw-4242"


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    agent_bin = os.path.abspath(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    work = tempfile.mkdtemp(prefix="myosicam-bench-cmd-")
    procs = []
    try:
        # The OScam stand-in, started the way OScam is started on a server.
        cfg, tmp = os.path.join(work, "cfg") + "/", os.path.join(work, "tmp")
        os.makedirs(cfg)
        port = free_port()
        log = os.path.join(work, "oscam.log")
        with open(cfg + "oscam.conf", "w") as f:
            f.write("[global]\nlogfile = %s\n\n[webif]\nhttpport = %d\nhttpuser = admin\nhttppwd = %s\n"
                    "httpallowed = 127.0.0.1\n" % (log, port, WEBIF_PASSWORD))
        with open(cfg + "oscam.user", "w") as f:
            f.write("# bench accounts\n[account]\nuser = alice\npwd = alice-Bench-1\ngroup = 1\n")
        subprocess.run([os.path.join(ROOT, "tools", "oscam-standin", "oscam"), "-b", "-c", cfg, "-t", tmp,
                        "-B", os.path.join(work, "oscam.pid")], check=True)
        wait_for(lambda: os.path.exists(log) and "port=%d" % port in open(log).read(), 30, "the stand-in")

        # The development panel.
        data = os.path.join(work, "panel")
        panel = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "devpanel", "devpanel"), "serve",
                                  "--data", data, "--port", "0", "--port-file", os.path.join(work, "port"),
                                  "--heartbeat-interval", "60", "--snapshot-interval", "300"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(panel)
        panel_port = wait_for(lambda: os.path.exists(os.path.join(work, "port"))
                              and open(os.path.join(work, "port")).read().strip(), 30, "the panel")
        token = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "devpanel", "devpanel"), "token",
                                "--data", data], check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(work, "token"), "w") as f:
            f.write(token + "\n")
        with open(os.path.join(work, "collectors.conf"), "w") as f:
            f.write("instances\n")
        with open(os.path.join(work, "agent.conf"), "w") as f:
            f.write("[panel]\nurl = https://127.0.0.1:%s\nca_file = %s/ca.pem\n[agent]\nstate_dir = %s/state\n"
                    "install_token_file = %s/token\ncollectors_file = %s/collectors.conf\n"
                    "allowed_actions_file = %s/allowed-actions\n[discovery]\nauto = no\nconfig_dirs = %s\n"
                    "proc_root = /proc\nsystemd_dirs =\nversion_dirs = %s\n"
                    % (panel_port, data, work, work, work, work, cfg, tmp))
        args = [agent_bin, "run", "--config", os.path.join(work, "agent.conf")]
        if os.getuid() == 0:
            args.append("--allow-root")
        agent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.log"), "w"))
        procs.append(agent)
        store = devpanel_store.Store(data)
        server = wait_for(lambda: (store.servers() or [{}])[0].get("server_id"), 30, "registration")

        # The instance id, as the agent computes it (FNV-1a 64 of the config dir).
        h = 0xcbf29ce484222325
        for b in cfg.encode():
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        instance = "osc_%016x" % h

        def result_time(command_id):
            path = "/api/agent/v1/commands/%s/result" % command_id
            for row in store.requests(server):
                if row[4] == path and row[6] == 200:
                    return row[1]
            return None

        latencies = []
        for i in range(count + 3):
            command_id = "cmd_bench_%04d" % i
            body = {"id": command_id, "type": "apply_config", "issued_at": int(time.time()),
                    "expires_at": int(time.time()) + 600, "instance": instance, "file": "oscam.user",
                    "edits": [{"op": "upsert_account", "user": "bench%d" % (i % 10),
                               "set": {"group": str(i % 64 + 1)}}]}
            queued = time.time()
            store.queue_command(server, command_id, json.dumps(body, sort_keys=True), int(queued))
            arrived = wait_for(lambda: result_time(command_id), 60, "result of " + command_id, every=0.01)
            if i >= 3:  # the first ones open connections
                latencies.append((arrived - queued) * 1000)
        results = {r[0]: r[1] for r in store.results(server)}
        failed = [k for k, v in results.items() if v != "succeeded"]
        if failed:
            raise SystemExit("bench: commands did not succeed: %s; see %s" % (failed[:3], work))

        # Peer: the WebIF reinit round trip alone.
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, "http://127.0.0.1:%d/" % port, "admin", WEBIF_PASSWORD)
        opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
        direct = []
        for _ in range(count):
            start = time.time()
            with opener.open("http://127.0.0.1:%d/oscamapi.json?part=userstats&action=reinit" % port) as reply:
                reply.read()
            direct.append((time.time() - start) * 1000)

        ours_med, ours_p99 = statistics.median(latencies), percentile(latencies, 0.99)
        peer_med, peer_p99 = statistics.median(direct), percentile(direct, 0.99)
        print("| What | myosicam-agent | Peer | Ratio |")
        print("|---|---|---|---|")
        print("| apply_config, panel queue → result at the panel, %d commands (median / p99) | %.0f ms / %.0f ms "
              "| the bare WebIF reinit from Python urllib (Digest): %.0f ms / %.0f ms | %.1fx the reload's own "
              "round trip |" % (count, ours_med, ours_p99, peer_med, peer_p99, ours_med / peer_med))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        # The stand-in's worker (pid file) and watchdog (`PID:` in oscam.version), nothing else.
        pids = []
        try:
            pids.append(open(os.path.join(work, "oscam.pid")).read().strip())
        except OSError:
            pass
        try:
            for line in open(os.path.join(work, "tmp", "oscam.version")):
                if line.startswith("PID:"):
                    pids.append(line.split(":", 1)[1].strip())
        except OSError:
            pass
        for pid in pids:
            if pid.isdigit() and int(pid) > 1:
                try:
                    os.kill(int(pid), 15)
                except OSError:
                    pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
