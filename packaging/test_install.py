"""Tests of the installer, uninstaller, systemd unit and sudoers rule (issue 6, "Done when").

Run by `make test`. The staging and real-install tests need root (CI runs as root) and skip with
the reason otherwise. The real-install tests create the user myosicam, files in /etc and /var/lib,
a sudoers file and ACLs on a fake OScam tree in a temp dir, talk to the development panel on
127.0.0.1 only, and remove all of it again even when they fail.
"""

import json
import os
import re
import shutil
import tempfile
import unittest

import installtest_support as support
from installtest_support import FAKE_UNIT, USER, as_agent, run

AGENT = support.agent_binary()
SYSTEMCTL = "/usr/bin/systemctl"
ACTIONS = ("start", "stop", "restart")


def sudoers_lines(path):
    with open(path) as handle:
        return [line for line in handle.read().splitlines() if line and not line.startswith("#")]


# MARK: - Scripts


class ShellcheckTest(unittest.TestCase):
    SCRIPTS = ["install.sh", "uninstall.sh", "common.sh", "build-release", "check-release", "release-lib.sh",
               "deb/postinst", "deb/prerm", "deb/postrm"]

    @unittest.skipIf(shutil.which("shellcheck") is None, "shellcheck is not installed (apt-get install shellcheck)")
    def test_every_script_is_shellcheck_clean(self):
        scripts = [os.path.join(support.PACKAGING, name) for name in self.SCRIPTS]
        result = run(["shellcheck", "--shell=sh", "--external-sources"] + scripts)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_script_is_listed(self):
        found = set()
        for directory, _, files in os.walk(support.PACKAGING):
            for name in files:
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    if handle.read(2) == b"#!" or name.endswith(".sh"):
                        found.add(os.path.relpath(path, support.PACKAGING))
        self.assertEqual(found - {"test_install.py", "installtest_support.py"}, set(self.SCRIPTS))


# MARK: - The unit


class UnitTest(unittest.TestCase):
    # systemd.exec(5): these imply NoNewPrivileges= for a User= service (or are it), which makes
    # sudo fail; the others hide what the agent must see or take root's power away from sudo.
    FORBIDDEN = {
        "NoNewPrivileges": "yes", "SystemCallFilter": None, "SystemCallArchitectures": None, "SystemCallLog": None,
        "RestrictAddressFamilies": None, "RestrictNamespaces": None, "RestrictRealtime": None,
        "RestrictSUIDSGID": None, "PrivateDevices": None, "ProtectKernelTunables": None,
        "ProtectKernelModules": None, "ProtectKernelLogs": None, "ProtectClock": None, "ProtectHostname": None,
        "MemoryDenyWriteExecute": None, "LockPersonality": None, "PrivateUsers": None,
        "CapabilityBoundingSet": None, "PrivateTmp": None, "ProtectProc": None, "ProcSubset": None,
        "DynamicUser": None,
    }

    @classmethod
    def directives(cls):
        section, found = None, []
        with open(support.UNIT_FILE) as handle:
            lines = handle.read().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("["):
                section = line.strip("[]")
            elif line and not line.startswith("#"):
                key, _, value = line.partition("=")
                found.append((section, key, value, number, lines))
        return found

    def test_required_settings(self):
        settings = {(section, key): value for section, key, value, _, _ in self.directives()}
        expected = {
            ("Service", "Type"): "notify", ("Service", "User"): USER, ("Service", "Group"): USER,
            ("Service", "Restart"): "on-failure", ("Service", "RestartPreventExitStatus"): "78",
            ("Service", "WatchdogSec"): "60s", ("Service", "ProtectSystem"): "strict",
            ("Service", "ExecStartPre"):
                "/usr/local/bin/myosicam-agent check-config --agent-only --config /etc/myosicam/agent.conf",
            ("Service", "ExecStart"): "/usr/local/bin/myosicam-agent run --config /etc/myosicam/agent.conf",
        }
        for key, value in expected.items():
            self.assertEqual(settings.get(key), value, key)

    def test_no_option_that_breaks_sudo_or_hides_oscam(self):
        for _, key, value, _, _ in self.directives():
            if key in self.FORBIDDEN:
                self.assertIsNotNone(self.FORBIDDEN[key], "%s= must not be in the unit" % key)
                self.assertNotEqual(value, self.FORBIDDEN[key], "%s=%s breaks sudo" % (key, value))

    def test_no_dependency_on_oscam_units(self):
        for section, key, value, _, _ in self.directives():
            if key in ("Requires", "Requisite", "BindsTo", "PartOf", "Wants", "After", "Before", "Upholds",
                       "Conflicts", "OnFailure", "PropagatesReloadTo", "ReloadPropagatedFrom"):
                self.assertNotIn("oscam", value.lower(), "%s=%s ties the agent to OScam" % (key, value))

    def test_every_setting_says_why(self):
        # Each directive in [Service] sits in a block (no blank line) that starts with a comment.
        for section, key, _, number, lines in self.directives():
            if section != "Service":
                continue
            start = number
            while start > 0 and lines[start - 1].strip() and not lines[start - 1].startswith("["):
                start -= 1
            self.assertTrue(lines[start].startswith("#"), "%s= (line %d) has no comment saying why" % (key, number + 1))

    @unittest.skipIf(shutil.which("systemd-analyze") is None,
                     "systemd-analyze is not installed (apt-get install systemd)")
    @unittest.skipIf(AGENT is None, "the agent is not built (make build)")
    def test_systemd_analyze_verify_and_security_score(self):
        with tempfile.TemporaryDirectory() as work:
            unit = os.path.join(work, "myosicam-agent.service")
            with open(support.UNIT_FILE) as source, open(unit, "w") as target:
                target.write(source.read().replace("/usr/local/bin/myosicam-agent", AGENT))
            dropin = unit + ".d"
            os.mkdir(dropin)
            with open(os.path.join(dropin, "oscam-paths.conf"), "w") as handle:
                handle.write("[Service]\nReadWritePaths=-/etc/oscam\n")
            verify = run(["systemd-analyze", "verify", unit])
            self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))
            security = run(["systemd-analyze", "security", "--offline=true", unit])
            self.assertEqual(security.returncode, 0, security.stderr)
        score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout).group(1))
        with open(os.path.join(support.REPO, "docs", "security.md")) as handle:
            documented = float(re.search(r"rates the unit \*\*(\d+\.\d+)\*\*", handle.read()).group(1))
        print("\nsystemd-analyze security: %.1f (documented %.1f)" % (score, documented))
        self.assertLessEqual(score, documented, "the unit's exposure got worse than docs/security.md says")


# MARK: - Staging root


@unittest.skipUnless(support.is_root(), "needs root to set owners in the staging root (CI runs as root)")
@unittest.skipIf(AGENT is None, "the agent is not built (make build)")
@unittest.skipIf(support.missing_tools("visudo", "useradd"), "needs visudo and useradd (apt-get install sudo passwd)")
class StagingInstallTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="myosicam-stage-")
        self.addCleanup(shutil.rmtree, self.work)
        self.root = os.path.join(self.work, "root")
        os.mkdir(self.root)
        self.token = os.path.join(self.work, "token")
        with open(self.token, "w") as handle:
            handle.write("mit_stagingtoken\n")

    def install(self, *extra, env=None):
        args = [support.INSTALL, "--root", self.root, "--panel-url", "https://panel.example.com",
                "--token-file", self.token, "--binary", AGENT, "--unit", "oscam", "--unit", "oscam@second.service"]
        return run(args + list(extra), env=env)

    def test_tree_owners_modes_sudoers_and_a_second_run_changes_nothing(self):
        first = self.install()
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        tree = support.tree_listing(self.root)
        with open(os.path.join(self.root, "etc", "passwd")) as handle:
            entry = [line.split(":") for line in handle if line.startswith(USER + ":")]
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry[0][5:], ["/nonexistent", "/usr/sbin/nologin\n"])
        uid, gid = int(entry[0][2]), int(entry[0][3])
        expected = {
            "etc/myosicam": ("drwxr-x---", 0, gid),
            "etc/myosicam/agent.conf": ("-rw-r-----", 0, gid),
            "etc/myosicam/collectors.conf": ("-rw-r-----", 0, gid),
            "etc/myosicam/allowed-actions": ("-rw-r-----", 0, gid),
            "etc/myosicam/install-token": ("-rw-------", uid, gid),
            "var/lib/myosicam": ("drwx------", uid, gid),
            "var/lib/myosicam-install": ("drwx------", 0, 0),
            "var/lib/myosicam-install/acl": ("drwx------", 0, 0),
            "var/lib/myosicam-install/created": ("-rw-------", 0, 0),
            "usr/local/bin/myosicam-agent": ("-rwxr-xr-x", 0, 0),
            "usr/local/lib/myosicam-agent/uninstall.sh": ("-rwxr-xr-x", 0, 0),
            "usr/local/lib/myosicam-agent/common.sh": ("-rw-r--r--", 0, 0),
            "etc/systemd/system/myosicam-agent.service": ("-rw-r--r--", 0, 0),
            "etc/systemd/system/myosicam-agent.service.d/oscam-paths.conf": ("-rw-r--r--", 0, 0),
            "etc/sudoers.d/myosicam": ("-r--r-----", 0, 0),
            "usr/local/lib/myosicam-agent": ("drwxr-xr-x", 0, 0),
            "etc/systemd/system/myosicam-agent.service.d": ("drwxr-xr-x", 0, 0),
        }
        for path, want in expected.items():
            self.assertIn(path, tree)
            self.assertEqual(tree[path][:3], want, path)
        ours = {path for path in tree if "myosicam" in path}
        self.assertEqual(ours, set(expected), "files the test does not expect")
        with open(os.path.join(self.root, "etc", "myosicam", "install-token")) as handle:
            self.assertEqual(handle.read(), "mit_stagingtoken\n")
        with open(AGENT, "rb") as a, open(os.path.join(self.root, "usr/local/bin/myosicam-agent"), "rb") as b:
            self.assertEqual(a.read(), b.read())

        sudoers = os.path.join(self.root, "etc", "sudoers.d", "myosicam")
        check = run(["visudo", "-c", "-f", sudoers])
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(sudoers_lines(sudoers), [
            "%s ALL=(root) NOPASSWD: %s %s %s" % (USER, SYSTEMCTL, action, unit)
            for unit in ("oscam.service", "oscam@second.service") for action in ACTIONS])
        conf = os.path.join(self.root, "etc", "myosicam", "agent.conf")
        with open(conf) as handle:
            text = handle.read()
        self.assertIn("\nsystemctl = %s\n" % SYSTEMCTL, text)
        self.assertIn("\nsudo = /usr/bin/sudo\n", text)
        self.assertIn("\nurl = https://panel.example.com\n", text)
        valid = run([AGENT, "check-config", "--agent-only", "--config", conf])
        self.assertEqual(valid.returncode, 0, valid.stdout + valid.stderr)

        second = self.install()
        self.assertEqual(second.returncode, 0, second.stdout + second.stderr)
        self.assertEqual(support.tree_listing(self.root), tree, "a second run changed the staging tree")

        uninstall = run([support.UNINSTALL, "--root", self.root, "--purge"])
        self.assertEqual(uninstall.returncode, 0, uninstall.stdout + uninstall.stderr)
        left = {path for path, entry in support.tree_listing(self.root).items() if not entry[0].startswith("d")}
        self.assertLessEqual(left, {"etc/passwd", "etc/group", "etc/passwd-", "etc/group-", "etc/.pwd.lock"})
        with open(os.path.join(self.root, "etc", "passwd")) as handle:
            self.assertNotIn(USER + ":", handle.read())

    def test_a_failed_sudoers_check_leaves_the_sudoers_as_they_were(self):
        self.assertEqual(self.install().returncode, 0)
        sudoers = os.path.join(self.root, "etc", "sudoers.d", "myosicam")
        with open(sudoers, "rb") as handle:
            before = handle.read()
        fake_bin = os.path.join(self.work, "bin")
        os.mkdir(fake_bin)
        support.FakeOScam.write(os.path.join(fake_bin, "visudo"), "#!/bin/sh\necho 'parse error' >&2\nexit 1\n", 0o755)
        env = dict(os.environ, PATH=fake_bin + ":" + os.environ["PATH"])
        result = self.install("--unit", "third", env=env)
        self.assertEqual(result.returncode, 70, result.stdout + result.stderr)
        self.assertIn("failed visudo -c", result.stderr)
        with open(sudoers, "rb") as handle:
            self.assertEqual(handle.read(), before)
        self.assertEqual(sorted(os.listdir(os.path.dirname(sudoers))), ["myosicam"])

    def test_refusals_change_nothing(self):
        cases = [
            (["--token", "mit_x"], 64, "never taken on the command line"),
            (["--set", "service.systemctl=/tmp/evil"], 64, "[service] paths"),
            (["--set", "discovery.auto=maybe"], 78, "not valid"),
            (["--unit", "oscam;id"], 64, "only letters"),
        ]
        for extra, code, message in cases:
            with self.subTest(extra=extra):
                result = self.install(*extra)
                self.assertEqual(result.returncode, code, result.stdout + result.stderr)
                self.assertIn(message, result.stderr)
                self.assertEqual(os.listdir(self.root), [])
        first = run([support.INSTALL, "--root", self.root, "--token-file", self.token, "--binary", AGENT])
        self.assertEqual(first.returncode, 64)
        self.assertIn("--panel-url is needed", first.stderr)

    def test_token_from_standard_input(self):
        result = run([support.INSTALL, "--root", self.root, "--panel-url", "https://panel.example.com",
                      "--token-file", "-", "--binary", AGENT], stdin="mit_fromstdin\n")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(os.path.join(self.root, "etc", "myosicam", "install-token")) as handle:
            self.assertEqual(handle.read(), "mit_fromstdin\n")


# MARK: - A real install on this machine


@unittest.skipUnless(support.is_root(), "needs root: creates a system user, a sudoers file and ACLs (CI runs as root)")
@unittest.skipIf(AGENT is None, "the agent is not built (make build)")
@unittest.skipIf(support.missing_tools("sudo", "visudo", "setfacl", "getfacl", "runuser", "useradd", "systemctl"),
                 "needs sudo, acl, util-linux, passwd and systemd installed (apt-get install sudo acl systemd)")
class RealInstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lock = support.machine_lock()
        cls.lock.__enter__()
        found = support.preexisting()
        if found:
            cls.lock.__exit__(None, None, None)
            raise unittest.SkipTest("a myosicam install is already on this machine (%s); these tests run only "
                                    "where everything they touch is theirs to remove" % ", ".join(found))
        cls.saved_backups = {path: support.read_bytes(path) for path in support.ACCOUNT_BACKUPS}
        cls.had_run_sudo = os.path.exists("/run/sudo")
        cls.work = tempfile.mkdtemp(prefix="myosicam-realinstall-")
        cls.fake = support.FakeOScam(os.path.join(cls.work, "oscam"))
        try:
            cls.panel = support.DevPanel(os.path.join(cls.work, "panel"))
        except Exception:
            cls.tearDownClass()
            raise
        cls.before = support.machine_state(cls.fake.base)

    @classmethod
    def tearDownClass(cls):
        try:
            support.force_cleanup()
            for path, content in cls.saved_backups.items():
                if content is not None and support.read_bytes(path) != content:
                    with open(path, "wb") as handle:
                        handle.write(content)
            if not cls.had_run_sudo:
                shutil.rmtree("/run/sudo", ignore_errors=True)
            if getattr(cls, "panel", None):
                cls.panel.stop()
            shutil.rmtree(cls.work, ignore_errors=True)
        finally:
            cls.lock.__exit__(None, None, None)

    def install(self, token=None, *extra):
        args = [support.INSTALL, "--panel-url", self.panel.url, "--ca-file", self.panel.ca, "--pin", self.panel.pin,
                "--binary", AGENT, "--no-start"] + self.fake.discovery_settings() + list(extra)
        if token is not None:
            args += ["--token-file", "-"]
        return run(args, stdin=token)

    def assertMachineAsBefore(self, what):
        self.assertEqual(support.machine_state(self.fake.base), self.before, what)

    def test_1_refused_token_or_no_panel_fails_and_changes_nothing(self):
        result = self.install("mit_" + "x" * 43 + "\n")
        self.assertEqual(result.returncode, 78, result.stdout + result.stderr)
        self.assertIn("the panel refused the install token", result.stderr)
        self.assertIn("nothing on this host was changed", result.stderr)
        self.assertMachineAsBefore("a refused token changed the machine")

        unreachable = run([support.INSTALL, "--panel-url", "https://127.0.0.1:9", "--binary", AGENT, "--no-start",
                           "--token-file", "-"] + self.fake.discovery_settings(), stdin=self.panel.token())
        self.assertEqual(unreachable.returncode, 69, unreachable.stdout + unreachable.stderr)
        self.assertMachineAsBefore("an unreachable panel changed the machine")

    def test_2_install_grants_exactly_what_is_documented_and_uninstall_restores_everything(self):
        servers_before = len(self.panel.servers())
        result = self.install(self.panel.token())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.check_user_and_files()
        self.assertEqual(len(self.panel.servers()), servers_before + 1, "not registered with the panel")
        self.check_acls()
        self.check_the_agent_reads_what_it_needs_and_nothing_else()
        self.check_sudo()
        self.check_installed_unit()

        acls = support.getfacl_tree(self.fake.base)
        with open("/etc/sudoers.d/myosicam", "rb") as handle:
            sudoers = handle.read()
        again = self.install()
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertEqual(support.getfacl_tree(self.fake.base), acls, "a second run changed the ACLs")
        with open("/etc/sudoers.d/myosicam", "rb") as handle:
            self.assertEqual(handle.read(), sudoers)

        keep = run([support.UNINSTALL])
        self.assertEqual(keep.returncode, 0, keep.stdout + keep.stderr)
        self.assertTrue(support.user_exists() and os.path.isfile("/etc/myosicam/agent.conf")
                        and os.path.isfile("/var/lib/myosicam/state.json"), "a plain uninstall keeps config and state")
        for path in ("/etc/sudoers.d/myosicam", "/usr/local/bin/myosicam-agent",
                     "/etc/systemd/system/myosicam-agent.service"):
            self.assertFalse(os.path.lexists(path), path)
        backup = os.path.join(self.fake.config, "myosicam-backup")
        restored = {path: acl for path, acl in support.getfacl_tree(self.fake.base).items() if path != backup}
        self.assertEqual(restored, self.before["getfacl -R"], "a plain uninstall did not restore the ACLs")

        purge = run([support.UNINSTALL, "--purge"])
        self.assertEqual(purge.returncode, 0, purge.stdout + purge.stderr)
        self.assertMachineAsBefore("uninstall --purge did not restore the machine")

    # The steps of test_2.

    def check_user_and_files(self):
        entry = run(["getent", "passwd", USER]).stdout.strip().split(":")
        self.assertEqual(entry[5:], ["/nonexistent", "/usr/sbin/nologin"])
        self.assertFalse(os.path.exists("/nonexistent"))
        self.assertTrue(support.group_exists())
        uid, gid = int(entry[2]), int(entry[3])
        for path, mode, owner in [
            ("/etc/myosicam", 0o750, (0, gid)), ("/etc/myosicam/agent.conf", 0o640, (0, gid)),
            ("/etc/myosicam/collectors.conf", 0o640, (0, gid)), ("/etc/myosicam/allowed-actions", 0o640, (0, gid)),
            ("/etc/myosicam/panel-ca.pem", 0o640, (0, gid)), ("/var/lib/myosicam", 0o700, (uid, gid)),
            ("/var/lib/myosicam/state.json", 0o600, (uid, gid)), ("/var/lib/myosicam-install", 0o700, (0, 0)),
            ("/etc/sudoers.d/myosicam", 0o440, (0, 0)), ("/usr/local/bin/myosicam-agent", 0o755, (0, 0)),
        ]:
            info = os.stat(path)
            self.assertEqual((info.st_mode & 0o7777, (info.st_uid, info.st_gid)), (mode, owner), path)
        self.assertFalse(os.path.exists("/etc/myosicam/install-token"), "the used token must be gone")
        with open("/var/lib/myosicam/state.json") as handle:
            self.assertEqual(json.load(handle)["status"], "registered")

    def check_acls(self):
        fake = self.fake
        expected = {
            fake.base: "--x",                                     # 0700 dir above: traverse only
            fake.config: "r-x",
            os.path.join(fake.config, "oscam.conf"): "rw-",
            os.path.join(fake.config, "oscam.user"): "rw-",
            os.path.join(fake.config, "oscam.server"): "r--",
            os.path.join(fake.config, "oscam.pem"): None,         # certificate + private key: never
            os.path.join(fake.config, "oscam.srvid2"): None,      # already world-readable
            fake.tmp: "r-x",
            os.path.join(fake.tmp, "oscam.version"): "r--",
            os.path.join(fake.tmp, "oscam.pid"): None,            # already world-readable
            os.path.join(fake.base, "etc"): None,                 # 0755: nothing needed
        }
        for path, perms in expected.items():
            self.assertEqual(support.acl_entry(path), perms, path)
        backup = os.stat(os.path.join(fake.config, "myosicam-backup"))
        self.assertEqual((backup.st_mode & 0o7777, backup.st_uid), (0o700, int(run(["id", "-u", USER]).stdout)))
        for name in ("oscam.conf", "oscam.user", "oscam.server", "oscam.pem"):
            info = os.stat(os.path.join(fake.config, name))
            self.assertEqual((info.st_uid, info.st_gid), (0, 0), "owners never change")
        with open("/etc/systemd/system/myosicam-agent.service.d/oscam-paths.conf") as handle:
            writable = sorted(line.split("=", 1)[1] for line in handle.read().splitlines()
                              if line.startswith("ReadWritePaths="))
        self.assertEqual(writable, sorted(["-" + fake.config.rstrip("/"), "-" + os.path.join(fake.config, "myosicam-backup")]))

    def check_the_agent_reads_what_it_needs_and_nothing_else(self):
        fake = self.fake
        inspect = as_agent([AGENT, "inspect", "--json", "--config", "/etc/myosicam/agent.conf"])
        self.assertEqual(inspect.returncode, 0, inspect.stderr)
        instances = json.loads(inspect.stdout)["instances"]
        self.assertEqual([(i["unit"], i.get("accounts"), i.get("readers"), i["problems"]) for i in instances],
                         [(FAKE_UNIT, 3, 2, [])])
        for args, code in [
            (["test", "-w", os.path.join(fake.config, "oscam.user")], 0),
            (["test", "-w", os.path.join(fake.config, "oscam.conf")], 0),
            (["test", "-w", os.path.join(fake.config, "myosicam-backup")], 0),
            (["test", "-r", os.path.join(fake.tmp, "oscam.version")], 0),
            (["test", "-w", os.path.join(fake.config, "oscam.server")], 1),
            (["test", "-w", fake.config], 1),
            (["test", "-r", os.path.join(fake.config, "oscam.pem")], 1),
            (["test", "-w", "/etc/myosicam/agent.conf"], 1),
            (["test", "-r", "/var/lib/myosicam-install/created"], 1),
        ]:
            self.assertEqual(as_agent(args).returncode, code, args)
        check = as_agent([AGENT, "check-config", "--agent-only", "--config", "/etc/myosicam/agent.conf"])
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def check_sudo(self):
        listing = run(["sudo", "-l", "-U", USER]).stdout
        allowed = [line.strip() for line in listing.split("may run the following commands")[1].splitlines()[1:]
                   if line.strip()]
        self.assertEqual(allowed, ["(root) NOPASSWD: %s %s %s" % (SYSTEMCTL, action, FAKE_UNIT) for action in ACTIONS])
        for action in ACTIONS:
            command = [SYSTEMCTL, action, FAKE_UNIT]
            self.assertEqual(as_agent(["sudo", "-n", "-l"] + command).returncode, 0, command)
            ran = as_agent(["sudo", "-n"] + command)
            self.assertNotIn("sudo:", ran.stderr, "sudo refused an allowed command: %s" % command)
        marker = os.path.join(self.work, "injected")
        refused = [
            [SYSTEMCTL, "restart", "ssh.service"],
            [SYSTEMCTL, "start", FAKE_UNIT + "; id"],
            [SYSTEMCTL, "start", FAKE_UNIT + "; touch " + marker],
            ["sh", "-c", "%s start %s; touch %s" % (SYSTEMCTL, FAKE_UNIT, marker)],
            ["/bin/sh"], ["bash"], ["-s"], ["-i"], ["su"], ["env"], ["id"],
            [SYSTEMCTL, "reload", FAKE_UNIT], [SYSTEMCTL, "edit", FAKE_UNIT], [SYSTEMCTL, "enable", FAKE_UNIT],
            [SYSTEMCTL, "start", FAKE_UNIT, "ssh.service"], [SYSTEMCTL, "--no-block", "start", FAKE_UNIT],
            [SYSTEMCTL, "start", "oscam-myosicamtest"], [SYSTEMCTL, "restart", "myosicam-agent.service"],
            [SYSTEMCTL, "daemon-reload"], [SYSTEMCTL, "start", "*"], ["-E", SYSTEMCTL, "start", FAKE_UNIT],
            ["-u", "nobody", SYSTEMCTL, "start", FAKE_UNIT], ["-e", os.path.join(self.fake.config, "oscam.user")],
            ["/usr/local/bin/myosicam-agent", "run", "--allow-root"],
        ]
        for command in refused:
            with self.subTest(command=command):
                result = as_agent(["sudo", "-n"] + command)
                self.assertNotEqual(result.returncode, 0)
                self.assertRegex(result.stderr, r"sudo: (a password is required|sorry|.*not allowed)")
        self.assertFalse(os.path.exists(marker), "a refused command ran")

    def check_installed_unit(self):
        if shutil.which("systemd-analyze") is None:
            return
        verify = run(["systemd-analyze", "verify", "/etc/systemd/system/myosicam-agent.service"])
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
