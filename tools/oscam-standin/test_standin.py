"""Tests of the OScam stand-in.  Run from the repo root:
    python3 -m unittest discover -s tools -p 'test_*.py' -t tools -v

Each live test starts the real `oscam` launcher as a subprocess in its own session on a free
loopback port, and kills that whole process group in a cleanup, so no stray process survives a
failing test.
"""

import hashlib
import json
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OSCAM = os.path.join(HERE, "oscam")
sys.path.insert(0, HERE)   # the directory name has a hyphen: import its modules directly
import oscamconf   # noqa: E402
import oscamwebif  # noqa: E402
import standin     # noqa: E402

# fixtures/oscam/webif/oscam.conf.before-webif-save with the port, log and allowed list as
# placeholders, and the file OScam 2.26.05-11961 wrote from it after
# config.html?part=global&action=execute&clienttimeout=4500&maxlogsize=2048.
CONF_BEFORE = """\
# Test peer config - loopback only
[global]
serverip                      = 127.0.0.1
logfile                       = {log}
maxlogsize                    = 3000
clienttimeout                 = 5000
waitforcards                  = 0
nice                          = 99
{global_extra}
[monitor]
port                          = 0

[newcamd]
port                          = 18001@0500:000000
serverip                      = 127.0.0.1
key                           = 0102030405060708091011121314

[cccam]
port                          = 18002
serverip                      = 127.0.0.1
version                       = 2.3.2

[webif]
httpport                      = {httpport}
serverip                      = 127.0.0.1
httpuser                      = admin
httppwd                       = peerpass
httpallowed                   = {allowed}
{webif_extra}"""

CONF_AFTER = """\
# oscam.conf generated automatically by Streamboard OSCam 2.26.05-11961
# Read more: https://git.streamboard.tv/common/oscam/blob/master/Distribution/doc/txt/oscam.conf.txt

[global]
serverip                      = 127.0.0.1
logfile                       = {log}
clienttimeout                 = 4500
maxlogsize                    = 2048
waitforcards                  = 0

[newcamd]
port                          = 18001@0500:000000
serverip                      = 127.0.0.1
key                           = 0102030405060708091011121314

[cccam]
port                          = 18002
serverip                      = 127.0.0.1
nodeid                        = EFF21A5C10E1157C
version                       = 2.3.2

[webif]
httpport                      = {httpport}
serverip                      = 127.0.0.1
httpuser                      = admin
httppwd                       = peerpass
httpallowed                   = {allowed}

"""

USERS = """\
[account]
user                          = alice
pwd                           = alicepw
description                   = peer test alice
group                         = 1
caid                          = 0500,0100

[account]
user                          = bob
pwd                           = bobpw
group                         = 1,2

[account]
user                          = carol
pwd                           = carolpw
disabled                      = 1
group                         = 2
"""

SERVERS = """\
[reader]
label                         = dead_newcamd
protocol                      = newcamd
device                        = 127.0.0.1,19001
group                         = 1

[reader]
label                         = dead_cccam
protocol                      = cccam
device                        = 127.0.0.1,19002
group                         = 2
"""

DAVE = "\n[account]\nuser = dave\npwd = davepw\ngroup = 1\n"


def md5_id(name):
    return "id_" + hashlib.md5(name.encode()).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_stat(pid):
    """(comm, ppid, pgrp) from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    comm = data[data.index("(") + 1:data.rindex(")")]
    fields = data[data.rindex(")") + 2:].split()
    return comm, int(fields[1]), int(fields[2])


class Instance:
    """One stand-in with its own config dir, temp dir and port."""

    def __init__(self, test, allowed="127.0.0.1", webif_extra="", global_extra="", https=False,
                 args=(), env=None, users=USERS):
        self.test = test
        self.root = tempfile.mkdtemp(prefix="oscam-standin-")
        test.addCleanup(shutil.rmtree, self.root, True)
        self.confdir = os.path.join(self.root, "etc")
        self.tmpdir = os.path.join(self.root, "tmp")   # created by the stand-in
        os.mkdir(self.confdir)
        self.port = free_port()
        self.https = https
        self.log = os.path.join(self.root, "oscam.log")
        self.values = dict(log=self.log, httpport=("+%d" if https else "%d") % self.port,
                           allowed=allowed, webif_extra=webif_extra, global_extra=global_extra)
        self.write("oscam.conf", CONF_BEFORE.format(**self.values))
        self.write("oscam.user", users)
        self.write("oscam.server", SERVERS)
        self.args = list(args)
        self.env = dict(os.environ, OSCAM_STANDIN_RESTART_DELAY="0.3", **(env or {}))
        self.pgids = set()
        self.proc = None
        self.ssl_ctx = None

    def write(self, name, text, mode="w"):
        with open(os.path.join(self.confdir, name), mode) as f:
            f.write(text)

    def conf_path(self, name):
        return os.path.join(self.confdir, name)

    @property
    def pidfile(self):
        return os.path.join(self.tmpdir, "oscam.pid")

    @property
    def versionfile(self):
        return os.path.join(self.tmpdir, "oscam.version")

    def start(self, wait=True):
        self.stderr = open(os.path.join(self.root, "stderr.txt"), "w")
        self.test.addCleanup(self.stderr.close)
        self.proc = subprocess.Popen([OSCAM, "-c", self.confdir, "-t", self.tmpdir] + self.args,
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True)
        self.pgids.add(self.proc.pid)
        self.test.addCleanup(self.kill)
        if wait:
            self.wait_ready()
        return self

    def kill(self):
        for pgid in self.pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def worker_pid(self):
        text = read(self.pidfile)
        return int(text) if text and text.endswith("\n") else None

    def version_pid(self):
        m = re.search(r"^PID:\s+(\d+)$", read(self.versionfile) or "", re.M)
        return int(m.group(1)) if m else None

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def wait_ready(self, old_worker=None):
        wait_for(lambda: self.worker_pid() not in (None, old_worker) and self.listening(),
                 what="stand-in to listen")

    def url(self, path):
        return "%s://127.0.0.1:%d/%s" % ("https" if self.https else "http", self.port, path)

    def get(self, path, user="admin", pwd="peerpass", data=None):
        """(status, headers, body) through urllib's own digest implementation."""
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, self.url(""), user, pwd)
        handlers = [urllib.request.HTTPDigestAuthHandler(mgr)]
        if self.ssl_ctx:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_ctx))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(self.url(path), data=data, timeout=10) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def raw_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/" + path)
        resp = conn.getresponse()
        result = resp.status, resp.version, resp.headers, resp.read().decode()
        conn.close()
        return result

    def logtext(self):
        return read(self.log) or ""


class ParserTest(unittest.TestCase):
    """OSCAM.md §3.1 parser quirks and the §3.3 writer, in-process."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.warnings = []

    def file(self, text, name="f", binary=False):
        path = os.path.join(self.dir, name)
        with open(path, "wb" if binary else "w") as f:
            f.write(text)
        return path

    def test_trim_and_comment_rules(self):
        conf = oscamconf.parse_conf(self.file(
            "nice = 5\n"                 # before any header: [global]
            "[global]\n"
            "\tclienttimeout = 3000\n"   # leading TAB survives -> unknown key
            ";disablelog = 1\n"          # ';' is not a comment
            "   logfile = /x # y  \r\n"  # leading spaces go; no inline comments; CRLF
            "WaitForCards = 0\n"         # keys are case-insensitive
            "x\n"                        # shorter than 3 chars: skipped
            "[Monitor]\nport = 988\n"    # section names are case-sensitive
            "[webif]\nhttppwd =\tsecret\nhttpuser = a=b\n"), self.warnings.append)
        self.assertEqual(conf["global"], {"nice": "5", "logfile": "/x # y",
                                          "waitforcards": "0"})
        self.assertNotIn("monitor", conf)
        self.assertEqual(conf["webif"], {"httppwd": "\tsecret", "httpuser": "a=b"})
        text = "\n".join(self.warnings)
        self.assertIn("unknown setting '\tclienttimeout=3000'", text)
        self.assertIn("unknown setting ';disablelog=1'", text)
        self.assertIn("unknown section [Monitor]", text)

    def test_users_bom_duplicates_and_header_case(self):
        path = self.file(b"\xef\xbb\xbf[account]\nuser = lost\n[ACCOUNT]\nuser = a\n"
                         b"[account]\nuser = a\nservices = SKY\n;pwd = x\n", binary=True)
        users = oscamconf.parse_users(path, self.warnings.append, self.warnings.append)
        self.assertEqual([u.get("user") for u in users], ["a", "a_x"])
        self.assertEqual(users[1]["services"], "sky")
        self.assertIn("Warning: keyword ';pwd' in account section not recognized", self.warnings)

    def test_unknown_setting_warning_never_shows_secret(self):
        oscamconf.parse_conf(self.file("[webif]\n\thttppwd = hunter2\n"), self.warnings.append)
        self.assertTrue(self.warnings)
        self.assertNotIn("hunter2", "\n".join(self.warnings))

    def test_writer_reproduces_real_save(self):
        values = dict(log="/var/log/oscam/oscam.log", httpport="18888", allowed="127.0.0.1",
                      webif_extra="", global_extra="")
        conf = oscamconf.parse_conf(self.file(CONF_BEFORE.format(**values)), self.warnings.append)
        oscamconf.set_value(conf, "global", "clienttimeout", "4500")
        oscamconf.set_value(conf, "global", "maxlogsize", "2048")
        self.assertEqual(oscamconf.format_conf(conf, "2.26.05-11961", "EFF21A5C10E1157C"),
                         CONF_AFTER.format(**values))

    def test_stale_nonce(self):
        opts = standin.Options()
        opts.confdir, opts.tempdir = self.dir + "/", self.dir
        worker = standin.Worker(opts, restarted=False)
        worker.log_targets = []
        worker.conf = {"global": {}, "webif": {"httpallowed": "127.0.0.1", "httpuser": "admin",
                                               "httppwd": "pw"}}
        webif = oscamwebif.WebIf(worker)

        def request(challenge=None, nc="00000001"):
            lines = []
            if challenge:
                f = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
                ha1 = hashlib.md5(b"admin:Forbidden:pw").hexdigest()
                ha2 = hashlib.md5(b"GET:/x.html").hexdigest()
                resp = hashlib.md5(("%s:%s:%s:c:auth:%s" % (ha1, f["nonce"], nc, ha2))
                                   .encode()).hexdigest()
                lines = ['Authorization: Digest username="admin", realm="Forbidden", '
                         'nonce="%s", uri="/x.html", response="%s", opaque="%s", qop=auth, '
                         'nc=%s, cnonce="c"' % (f["nonce"], resp, f["opaque"], nc)]
            return webif.check_access(oscamwebif.Request("GET", "/x.html", lines, "", "127.0.0.1"))

        challenge = request().headers[0]
        self.assertNotIn("stale", challenge)
        self.assertIsInstance(request(challenge), list)              # first use: accepted
        nonce = re.search(r'nonce="(\w+)"', challenge).group(1)
        webif.nonces[nonce][1] -= 16                                 # 16 s after first use
        stale = request(challenge, nc="00000002")
        self.assertEqual(stale.status, 401)
        self.assertIn("stale=true", stale.headers[0])


class LiveTest(unittest.TestCase):

    def test_processes_and_runtime_files(self):
        inst = Instance(self).start()
        watchdog = inst.proc.pid
        worker = inst.worker_pid()
        self.assertNotEqual(worker, watchdog)
        self.assertEqual(proc_stat(worker)[1], watchdog)   # worker is a child of the watchdog
        self.assertEqual(inst.version_pid(), watchdog)     # §2.2: PID = getppid() of worker
        for pid in (watchdog, worker):
            self.assertEqual(proc_stat(pid)[0], "oscam")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                self.assertEqual(os.path.basename(f.read().split(b"\0")[0]), b"oscam")
        self.assertEqual(os.stat(inst.tmpdir).st_mode & 0o777, 0o700)
        version = read(inst.versionfile)
        head = version.split("\n\n")[0].splitlines()
        self.assertEqual([line[:16] for line in head], [
            "Unix Starttime: ", "Starttime:      ", "Build Date:     ", "Version:        ",
            "Compiler:       ", "Box Type:       ", "PID:            ", "TempDir:        ",
            "GBox tmp_dir:   ", "ConfigDir:      ", "WebifPort:      "])
        self.assertIn("Version:        2.26.05-11961@5b6fa7ad\n", version)
        self.assertIn("ConfigDir:      %s/\n" % inst.confdir, version)
        self.assertIn("TempDir:        %s\n" % inst.tmpdir, version)
        self.assertIn("WebifPort:      %d\n" % inst.port, version)
        self.assertIn("\n\nWeb interface support:                   yes\n", version)
        self.assertTrue(read(inst.conf_path("oscam.srvid2")).startswith("# oscam.srvid2"))
        self.assertIn("HTTP Server running. ip=127.0.0.1 port=%d" % inst.port, inst.logtext())

    def test_digest_auth(self):
        inst = Instance(self).start()
        status, headers, _ = inst.get("oscamapi.json?part=status")
        self.assertEqual(status, 200)
        self.assertRegex(headers["Authentication-Info"], r'^nextnonce="[0-9a-f]{32}"$')
        self.assertEqual(headers["Content-Type"], "text/javascript")
        self.assertEqual(inst.get("oscamapi.json?part=status", pwd="wrong")[0], 401)
        self.assertEqual(inst.get("oscamapi.json?part=status", user="Admin")[0], 401)
        status, version, headers, body = inst.raw_get("oscamapi.html?part=status")
        self.assertEqual((status, version, body), (401, 10, "Access denied.\n"))
        self.assertEqual(headers["Server"], "webserver/1.0")
        self.assertRegex(headers["WWW-Authenticate"],
                         r'^Digest algorithm="MD5", realm="Forbidden", qop="auth", '
                         r'opaque="[0-9a-f]{32}", nonce="[0-9a-f]{32}"$')
        log = inst.logtext()
        self.assertIn("unauthorized access from 127.0.0.1 - invalid credentials", log)
        self.assertNotIn("peerpass", log)

    def test_ip_not_allowed(self):
        inst = Instance(self, allowed="10.0.0.1,192.168.0.1-192.168.0.9").start()
        status, _, headers, body = inst.raw_get("oscamapi.html?part=status")
        self.assertEqual((status, body), (403, "Access denied.\n"))
        self.assertIn("unauthorized access from 127.0.0.1 - invalid ip or dyndns",
                      inst.logtext())
        # §4.2 note: oscam.conf present but without httpallowed -> everything is 403.
        bare = Instance(self)
        bare.write("oscam.conf", "[webif]\nhttpport = %d\n" % bare.port)
        bare.start()
        self.assertEqual(bare.raw_get("")[0], 403)

    def test_status_json(self):
        inst = Instance(self).start()
        time.sleep(1.1)
        status, _, body = inst.get("oscamapi.json?part=status")
        oscam = json.loads(body)["oscam"]
        self.assertEqual((oscam["version"], oscam["commit"], oscam["revision"]),
                         ("2.26.05-11961", "5b6fa7ad", ""))
        self.assertRegex(oscam["starttime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
        self.assertGreaterEqual(int(oscam["apiruntime"]), 1)
        self.assertEqual(oscam["readonly"], "0")
        totals = oscam["totals"]
        self.assertEqual((totals["total_users"], totals["total_active"],
                          totals["total_disabled"], totals["total_readers"]),
                         ("3", "2", "1", "2"))
        self.assertEqual([c["type"] for c in oscam["status"]["client"]], ["s", "h", "p", "p"])
        _, headers, xml = inst.get("oscamapi.html?part=readerlist")
        self.assertEqual(headers["Content-Type"], "text/xml")
        self.assertIn('<reader label="dead_cccam" protocol="" type="p" enabled="1">', xml)
        self.assertIn("<error>part not found</error>", inst.get("oscamapi.json?part=bogus")[2])

    def test_reinit_picks_up_new_account(self):
        inst = Instance(self).start()
        inst.write("oscam.user", DAVE, "a")
        self.assertNotIn(md5_id("dave"), inst.get("oscamapi.json?part=userstats")[2])
        status, headers, body = inst.get("userconfig.html?action=reinit")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/html"))
        self.assertIn(md5_id("dave"), body)
        log = inst.logtext()
        self.assertIn("Refresh Accounts requested by WebIF from 127.0.0.1", log)
        self.assertIn("userdb reloaded: 4 accounts loaded, 0 expired, 1 disabled", log)
        self.assertIn(md5_id("dave"), inst.get("oscamapi.json?part=userstats")[2])
        # The API form reloads too and answers with the user list.
        inst.write("oscam.user", USERS)
        body = inst.get("oscamapi.json?part=userstats&action=reinit")[2]
        self.assertNotIn(md5_id("dave"), body)
        self.assertIn(md5_id("carol"), body)
        self.assertNotIn("davepw", inst.logtext())

    def test_readonly_refuses_reinit_and_config_save(self):
        inst = Instance(self, webif_extra="httpreadonly                  = 1\n").start()
        before = read(inst.conf_path("oscam.conf"))
        inst.write("oscam.user", DAVE, "a")
        status, _, body = inst.get("userconfig.html?action=reinit")
        self.assertEqual(status, 200)
        self.assertIn("WebIf is in readonly mode", body)
        self.assertNotIn(md5_id("dave"), inst.get("oscamapi.json?part=userstats&action=reinit")[2])
        status, _, body = inst.get("config.html?part=global&action=execute&clienttimeout=4500")
        self.assertEqual(status, 200)
        self.assertIn("WebIf is in readonly mode", body)
        self.assertEqual(read(inst.conf_path("oscam.conf")), before)
        self.assertFalse(os.path.exists(inst.conf_path("oscam.conf.bak")))
        body = inst.get("oscamapi.html?part=shutdown&action=restart")[2]
        self.assertIn("<error>webif readonly mode</error>", body)
        self.assertIn('readonly="1"', body)

    def test_config_execute_rewrites_like_oscam(self):
        inst = Instance(self).start()
        path = inst.conf_path("oscam.conf")
        original = read(path)
        inode = os.stat(path).st_ino
        status, headers, body = inst.get(
            "config.html?part=global&action=execute&clienttimeout=4500&maxlogsize=2048")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/html"))
        self.assertIn("Configuration was saved.", body)
        written = read(path)
        nodeid = re.search(r"^nodeid {24}= ([0-9A-F]{16})$", written, re.M).group(1)
        self.assertEqual(written, CONF_AFTER.format(**inst.values).replace(
            "EFF21A5C10E1157C", nodeid))
        self.assertEqual(os.stat(path).st_ino, inode)          # copied over, not renamed
        self.assertEqual(read(path + ".bak"), original)
        self.assertFalse(os.path.exists(path + ".tmp"))
        # A second save changes the file but keeps the first .bak; the nodeid stays.
        inst.get("config.html?part=webif&action=execute&httprefresh=30")
        self.assertEqual(read(path + ".bak"), original)
        second = read(path)
        self.assertIn("httprefresh                   = 30\n", second)
        self.assertIn(nodeid, second)
        self.assertNotIn("# Test peer config", second)

    def test_restart_new_worker_same_watchdog(self):
        inst = Instance(self).start()
        watchdog, worker = inst.proc.pid, inst.worker_pid()
        inst.write("oscam.user", DAVE, "a")   # not reinit: only the restart reads it
        status, _, body = inst.get("shutdown.html?action=Restart")
        self.assertEqual(status, 200)
        self.assertIn("countDown()", body)
        inst.wait_ready(old_worker=worker)
        new_worker = inst.worker_pid()
        self.assertNotEqual(new_worker, worker)
        self.assertFalse(alive(worker))
        self.assertEqual(proc_stat(new_worker)[1], watchdog)
        self.assertEqual(inst.version_pid(), watchdog)
        self.assertIn(md5_id("dave"), inst.get("oscamapi.json?part=userstats")[2])
        # The API form restarts as well.
        body = inst.get("oscamapi.html?part=shutdown&action=restart")[2]
        self.assertIn("<confirm>restart</confirm>", body)
        inst.wait_ready(old_worker=new_worker)
        self.assertEqual(inst.version_pid(), watchdog)

    def test_sigterm_removes_runtime_files(self):
        inst = Instance(self).start()
        worker = inst.worker_pid()
        os.kill(inst.proc.pid, signal.SIGTERM)   # forwarded by the watchdog
        self.assertEqual(inst.proc.wait(10), 0)
        wait_for(lambda: not alive(worker), what="worker exit")
        self.assertFalse(os.path.exists(inst.pidfile))
        self.assertFalse(os.path.exists(inst.versionfile))

    def test_https_with_generated_cert(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl CLI not available")
        inst = Instance(self, https=True).start()
        pem = inst.conf_path("oscam.pem")
        self.assertIn("PRIVATE KEY", read(pem))
        inst.ssl_ctx = ssl.create_default_context(cafile=pem)
        inst.ssl_ctx.check_hostname = False   # CN=localhost, we connect to 127.0.0.1
        status, _, body = inst.get("oscamapi.html?part=status")
        self.assertEqual(status, 200)
        self.assertIn('<oscam version="2.26.05-11961"', body)
        self.assertIn("WebifPort:      %d\n" % inst.port, read(inst.versionfile))  # no '+'
        self.assertIn("HTTPS Server running", inst.logtext())

    def test_daemon_mode_and_shutdown(self):
        inst = Instance(self)
        pidfile = os.path.join(inst.root, "run.pid")
        inst.args = ["-b", "-B", pidfile, "-r", "1"]
        inst.start(wait=False)
        self.assertEqual(inst.proc.wait(10), 0)   # the launching process returns at once
        worker = int(wait_for(lambda: (read(pidfile) or "").strip(), what="pid file"))
        watchdog = proc_stat(worker)[1]
        inst.pgids.add(proc_stat(watchdog)[2])    # lets the cleanup kill the daemon
        wait_for(inst.listening, what="listen")
        self.assertEqual(inst.version_pid(), watchdog)
        self.assertFalse(os.path.exists(inst.pidfile))   # -B wins over <tempdir>/oscam.pid
        self.assertEqual(proc_stat(watchdog)[0], "oscam")
        self.assertIn("<confirm>shutdown</confirm>",
                      inst.get("oscamapi.html?part=shutdown&action=shutdown")[2])
        wait_for(lambda: not alive(watchdog) and not alive(worker), what="daemon exit")
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(os.path.exists(inst.versionfile))

    def test_without_watchdog(self):
        inst = Instance(self, args=["-r", "0"]).start()
        self.assertEqual(inst.worker_pid(), inst.proc.pid)
        self.assertEqual(inst.version_pid(), os.getpid())   # getppid() of the worker
        inst.get("shutdown.html?action=restart")
        self.assertEqual(inst.proc.wait(10), 99)

    def test_sighup_honours_reload_flag(self):
        inst = Instance(self).start()
        inst.write("oscam.user", DAVE, "a")
        os.kill(inst.proc.pid, signal.SIGHUP)
        time.sleep(0.3)
        self.assertNotIn(md5_id("dave"), inst.get("oscamapi.json?part=userstats")[2])
        flagged = Instance(self, global_extra="reload_useraccounts = 1\n").start()
        flagged.write("oscam.user", DAVE, "a")
        os.kill(flagged.proc.pid, signal.SIGHUP)
        wait_for(lambda: md5_id("dave") in flagged.get("oscamapi.json?part=userstats")[2],
                 what="reload after SIGHUP")

    def test_hang_knob(self):
        inst = Instance(self, env={"OSCAM_STANDIN_WEBIF_HANG": "1"}).start()
        with socket.create_connection(("127.0.0.1", inst.port), 2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(0.5)
            self.assertRaises(socket.timeout, s.recv, 1)


if __name__ == "__main__":
    unittest.main()
