"""A stand-in for a running OScam process: command line, watchdog/worker process model and
runtime files.  Python 3 standard library only.

Everything here follows /work/shared/OSCAM.md (section numbers are cited as §x.y) and the
responses captured from a real OScam 2.26.05-11961 in /work/shared/fixtures/oscam/webif/.  No OScam
code was used.  Simplifications are marked "SIMPLIFICATION"; guesses beyond OSCAM.md "GUESS".
Modules: buildinfo.py (version, features, test knobs), oscamconf.py (config parser and writer;
its key-order simplification is described there), oscamwebif.py (the WebIF).
"""

import os
import secrets
import signal
import sys
import threading
import time
import traceback

import buildinfo as bi
import oscamconf as oc
from oscamwebif import WebIf

CS_CONFDIR = "/usr/local/etc"  # §1.2 Makefile default
FIND_CONF_DIRS = ["/etc/tuxbox/config/", "/etc/tuxbox/config/oscam/", "/var/tuxbox/config/",
                  "/usr/keys/", "/var/keys/", "/var/etc/oscam/", "/var/etc/", "/var/oscam/",
                  "/config/oscam/"]
DEFAULT_TMPDIR = "/tmp/.oscam"
FORWARDED_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM]   # §1.5


# ---------------------------------------------------------------------------------------------
# Command line (§1.1): option string "aB:bc:d:g:hI:p:r:Sst:uVw:" plus the long options.
# Parsed sequentially like getopt_long; unknown options are reported and ignored.

SHORT_WITH_ARG = set("BcdgIprtw")
SHORT_FLAGS = set("abhSsuV")
LONG_OPTIONS = {"config-dir": "c", "temp-dir": "t", "pidfile": "B", "daemon": "b",
                "restart": "r", "debug": "d", "syslog-ident": "I", "show-sensitive": "S",
                "pending-ecm": "p", "wait": "w", "crash-dump": "a", "capture-segfaults": "s",
                "gcollect": "g", "build-info": "V", "help": "h"}


class Options:
    def __init__(self):
        self.confdir = None
        self.tempdir = None
        self.pidfile = None
        self.daemon = False
        self.restart = 1   # §1.1: default with WEBIF


def usage(confdir):
    return ("OSCam cardserver v%s (stand-in for tests)\n\n"
            "ConfigDir  : %s\n\n"
            " Usage: oscam [parameters]\n\n"
            " -b, --daemon              Start in the background as daemon.\n"
            " -B, --pidfile <pidfile>   Create pidfile when starting.\n"
            " -r, --restart <level>     0 = disabled, 1 = WebIf restart (default), 2 = also on\n"
            "                           segfault.\n"
            " -c, --config-dir <dir>    Read configuration files from <dir>.\n"
            " -t, --temp-dir <dir>      Set temporary directory to <dir>.\n"
            " -d, --debug <level>       Set debug level mask.\n"
            " -I, --syslog-ident <id>   Syslog ident (default: oscam).\n"
            " -S, --show-sensitive      Do not filter sensitive info in the log.\n"
            " -p, --pending-ecm <num>   Maximum pending ECM packets (default 32).\n"
            " -w, --wait <secs>         Wait up to <secs> for the system time to be set.\n"
            " -V, --build-info          Show OSCam binary configuration and version.\n"
            " -h, --help                Show command line help text.\n"
            % (bi.VERSION_FULL, confdir))


def parse_cmdline(argv):
    opts = Options()

    def apply(letter, value):
        if letter == "c":
            opts.confdir = value if value.endswith("/") else value + "/"   # §1.1
        elif letter == "t":
            opts.tempdir = value
        elif letter == "B":
            opts.pidfile = value
        elif letter == "b":
            opts.daemon = True
        elif letter == "r":
            opts.restart = oc.int_value(value, 1)
        elif letter == "h":
            sys.stdout.write(usage(opts.confdir or CS_CONFDIR))
            sys.exit(0)
        elif letter == "V":
            # §1.1: the version-file body without start-time lines and with an empty TempDir.
            confdir = opts.confdir or CS_CONFDIR + "/"
            sys.stdout.write(bi.version_body(0, os.getppid(), "", confdir, 0, with_start=False))
            sys.exit(0)
        # -d -I -S -p -w -a -s -g -u: accepted, nothing to emulate.

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            letter = LONG_OPTIONS.get(name)
            if letter is None:
                sys.stderr.write("oscam: unrecognized option '%s'\n" % arg)
                continue
            if letter in SHORT_WITH_ARG and not has_value:
                if i >= len(argv):
                    sys.stderr.write("oscam: option '%s' requires an argument\n" % arg)
                    continue
                value = argv[i]
                i += 1
            apply(letter, value)
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                c = arg[j]
                j += 1
                if c in SHORT_WITH_ARG:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        sys.stderr.write("oscam: option requires an argument -- '%s'\n" % c)
                        break
                    apply(c, value)
                    break
                if c in SHORT_FLAGS:
                    apply(c, True)
                else:
                    sys.stderr.write("oscam: invalid option -- '%s'\n" % c)
        # GNU getopt permutes: non-option arguments are simply left over (and unused).
    return opts


def find_conf_dir():
    """§1.2: CS_CONFDIR unless it has no oscam.conf, then the first auto-detected directory."""
    if os.path.exists(os.path.join(CS_CONFDIR, "oscam.conf")):
        return CS_CONFDIR + "/"
    for d in FIND_CONF_DIRS:
        if os.path.exists(d + "oscam.conf"):
            return d
    return CS_CONFDIR + "/"


def setup_tempdir(requested):
    """§1.3: -t or /tmp/.oscam, created with mode 0700."""
    for d in ([requested] if requested else []) + [DEFAULT_TMPDIR]:
        try:
            os.mkdir(d, 0o700)
        except OSError:
            pass
        if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return d
        if d == requested:
            sys.stderr.write("WARNING: Temp dir does not exist. Using default value.\n")
    return DEFAULT_TMPDIR


def daemonize():
    """-b: double fork, new session, stdio to /dev/null; the cwd is kept (the fixture's
    daemonized OScam still had cwd=/opt/oscam)."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    if fd > 2:
        os.close(fd)


def main(argv):
    opts = parse_cmdline(argv)
    opts.confdir = opts.confdir or find_conf_dir()
    opts.tempdir = setup_tempdir(opts.tempdir)
    if opts.daemon:
        daemonize()   # §1.5: before the watchdog, so the watchdog is the daemonized process
    if opts.restart <= 0:
        return Worker(opts, restarted=False).run()
    return watchdog(opts)


def watchdog(opts):
    """§1.5: the parent forwards signals to the worker and forks a new worker when it exits with
    status 99 (or SIGSEGV under -r 2); any other end of the worker ends the watchdog too."""
    state = {"child": None, "pending": []}

    def forward(sig, _frame):
        if state["child"]:
            try:
                os.kill(state["child"], sig)
            except ProcessLookupError:
                pass
        else:
            state["pending"].append(sig)   # between two workers: deliver to the next one

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    generation = 0
    while True:
        # Block the forwarded signals across fork() so the new worker cannot receive one before
        # it has installed its own handlers (Worker.run unblocks them).
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = Worker(opts, restarted=generation > 0).run()
            except BaseException:   # a crashed worker must not run the watchdog's code
                traceback.print_exc()
            finally:
                os._exit(code)
        state["child"] = pid
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        while state["pending"]:
            forward(state["pending"].pop(0), None)
        _, status = os.waitpid(pid, 0)   # PEP 475: retried after each forwarded signal
        state["child"] = None
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == bi.EXIT_RESTART:
            generation += 1
            continue
        if (opts.restart == 2 and os.WIFSIGNALED(status)
                and os.WTERMSIG(status) == signal.SIGSEGV):
            generation += 1
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        return 128 + os.WTERMSIG(status)


# ---------------------------------------------------------------------------------------------
# The worker


class Worker:
    def __init__(self, opts, restarted):
        self.opts = opts
        self.restarted = restarted
        self.lock = threading.Lock()      # §7.1: one global lock, one request at a time
        self.exit_code = None
        self.hup = False
        self.start = time.time()
        self.conf = {"global": {}}
        self.conf_exists = False
        self.users = []
        self.readers = []
        self.log_targets = [sys.stderr]
        self.nodeid = None
        self.pidfile = None
        self.versionfile = os.path.join(opts.tempdir, "oscam.version")

    # -- logging: [global] logfile, else stderr (stdout when oscam.conf is missing, §1.2).
    def log(self, msg, kind="s"):
        line = "%s %08X %s   %s\n" % (time.strftime("%Y/%m/%d %H:%M:%S"),
                                      threading.get_ident() & 0xFFFFFFFF, kind, msg)
        for target in self.log_targets:
            try:
                if isinstance(target, str):
                    with open(target, "a", encoding="utf-8", errors="replace") as f:
                        f.write(line)
                else:
                    target.write(line)
                    target.flush()
            except (OSError, ValueError):
                pass

    @staticmethod
    def warn(msg):
        # §3.1: parser warnings go to stderr only, never to the log.
        try:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def setup_logging(self):
        g = self.conf.get("global", {})
        if oc.int_value(g.get("disablelog")):
            self.log_targets = []
            return
        if not self.conf_exists:
            self.log_targets = [sys.stdout]
            return
        targets = []
        for part in g.get("logfile", "").split(";"):
            part = part.strip()
            if part == "stdout":
                targets.append(sys.stdout)
            elif part and part != "syslog":
                targets.append(part)
        # SIMPLIFICATION: without a logfile real OScam logs to /var/log/oscam.log; we use stderr.
        self.log_targets = targets or [sys.stderr]

    # -- configuration
    def path(self, name):
        return self.opts.confdir + name

    def load_conf(self):
        if os.path.exists(self.path("oscam.conf")):
            self.conf = oc.parse_conf(self.path("oscam.conf"), self.warn)
            self.conf_exists = True
        else:
            # §1.2: a WEBIF build starts on 8888 with the built-in httpallowed; dvbapi enabled.
            self.conf = {"global": {}, "dvbapi": {"enabled": "1"},
                         "webif": {"httpport": "8888", "httpallowed": oc.DEFAULT_HTTPALLOWED}}
            self.conf_exists = False
        self.setup_logging()
        if not self.conf_exists:
            self.log("config file %s not found, using defaults" % self.path("oscam.conf"))

    def load_users(self):
        path = self.path("oscam.user")
        self.users = oc.parse_users(path, self.warn, self.log) if os.path.exists(path) else []
        expired = sum(1 for a in self.users if oc.account_expired(a))
        disabled = sum(1 for a in self.users if oc.account_disabled(a))
        self.log("userdb reloaded: %d accounts loaded, %d expired, %d disabled"
                 % (len(self.users), expired, disabled))

    def load_readers(self):
        path = self.path("oscam.server")
        self.readers = oc.parse_readers(path, self.warn, self.log) if os.path.exists(path) else []

    def webif_conf(self):
        return self.conf.get("webif", {})

    def readonly(self):
        return oc.int_value(self.webif_conf().get("httpreadonly")) != 0

    def webif_port(self):
        return oc.int_value(self.webif_conf().get("httpport", "0").lstrip("+"))

    def get_nodeid(self):
        if self.nodeid is None:   # once per worker process
            self.nodeid = secrets.token_hex(8).upper()
        return self.nodeid

    def save_conf(self):
        text = oc.format_conf(self.conf, bi.VERSION, self.get_nodeid())
        overwrite = oc.int_value(self.webif_conf().get("httpoverwritebakfile")) != 0
        oc.flush_config_file(self.path("oscam.conf"), text, overwrite)
        if "cccam" in self.conf and oc.section_active(self.conf, "cccam"):
            self.conf["cccam"].setdefault("nodeid", self.get_nodeid())

    # -- runtime files (§1.4, §2.1, §2.4)
    def write_pidfile(self):
        self.pidfile = (self.opts.pidfile or self.conf["global"].get("pidfile")
                        or os.path.join(self.opts.tempdir, "oscam.pid"))
        self.log("creating pidfile %s with pid %d" % (self.pidfile, os.getpid()))
        try:
            with open(self.pidfile, "w") as f:
                f.write("%d\n" % os.getpid())
        except OSError as e:
            self.log("ERROR: cannot create pidfile %s: %s" % (self.pidfile, e.strerror))
            self.pidfile = None

    def write_versionfile(self):
        # §2.2: PID is getppid() of the worker, i.e. the watchdog in restart mode.
        body = bi.version_body(self.start, os.getppid(), self.opts.tempdir, self.opts.confdir,
                               self.webif_port())
        try:
            with open(self.versionfile, "w") as f:
                f.write(body)
        except OSError as e:
            self.log("ERROR: cannot write %s: %s" % (self.versionfile, e.strerror))

    def init_srvid(self):
        if os.path.exists(self.path("oscam.srvid2")) or os.path.exists(self.path("oscam.srvid")):
            return
        # GUESS: the header mirrors the config-file header of §3.3.
        try:
            with open(self.path("oscam.srvid2"), "w") as f:
                f.write("# oscam.srvid2 generated automatically by Streamboard OSCam %s\n"
                        "# Read more: https://git.streamboard.tv/common/oscam/blob/master/"
                        "Distribution/doc/txt/oscam.srvid2.txt\n\n" % bi.VERSION)
        except OSError as e:
            self.log("ERROR: cannot create %s: %s" % (self.path("oscam.srvid2"), e.strerror))

    def remove_runtime_files(self):
        for path in (self.pidfile, self.versionfile):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    # -- signals (§1.6)
    def on_signal(self, sig, _frame):
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.request_exit(0)
        elif sig == signal.SIGHUP:
            self.hup = True
        # SIGUSR1 (debug level), SIGUSR2 (card info), SIGALRM: nothing to emulate.

    def request_exit(self, code):
        if self.exit_code is None:
            self.exit_code = code

    def reload_on_hup(self):
        """Since r11249 SIGHUP only reloads what the [global] reload_* flags ask for."""
        g = self.conf["global"]
        with self.lock:
            if oc.int_value(g.get("reload_useraccounts")):
                self.load_users()
            if oc.int_value(g.get("reload_readers")):
                self.load_readers()

    def run(self):
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, self.on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        self.load_conf()
        self.load_users()
        self.load_readers()
        self.write_pidfile()
        self.write_versionfile()   # §2.1: after the configs are loaded
        self.init_srvid()
        webif = None
        if self.restarted:
            # §1.5: a restarted OScam needs ~5 s until its HTTP server listens again.
            self.wait(bi.RESTART_DELAY)
        if self.exit_code is None and self.webif_port():
            webif = WebIf(self)
            webif.start()
        while self.exit_code is None:
            time.sleep(0.05)
            if self.hup:
                self.hup = False
                self.reload_on_hup()
        if webif:
            webif.stop()
        # GUESS: every exit path (also exit 99 for a restart) goes through OScam's cleanup.
        self.log("cardserver exit (status %d)" % self.exit_code)
        self.remove_runtime_files()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        return self.exit_code

    def wait(self, seconds):
        end = time.time() + seconds
        while self.exit_code is None and time.time() < end:
            time.sleep(0.05)
