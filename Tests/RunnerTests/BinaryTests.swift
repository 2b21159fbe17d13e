import Foundation
import TestSupport
import Platform
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real `myosicam-agent` binary, run as an operator runs it: `--dry-run`, `inspect`,
/// `check-config`, on the bundled example tree and against a live OScam stand-in.
@Suite(.timeLimit(.minutes(1)))
struct BinaryTests {
    static var example: String {
        E2EPaths.exampleAgentConf
    }

    /// `^level=(debug|info|warning|error) msg=`: the agent's one-line log format.
    static func isLogLine(_ line: String) -> Bool {
        line.prefixMatch(of: #/level=(debug|info|warning|error) msg=/#) != nil
    }

    // MARK: - --dry-run

    @Test func dryRunPrintsTheExactBytesItWouldSend() async throws {
        let run = try await AgentProcess.run(["--dry-run", "--config", Self.example])
        #expect(run.status == 0, "\(run.stderrText)")
        #expect(run.stdout.last == UInt8(ascii: "}"), "stdout is a pipe: no trailing newline")
        #expect(run.stdout.first == UInt8(ascii: "{"))

        for line in run.stderrLines {
            #expect(Self.isLogLine(line), "not a log line: \(line)")
        }
        #expect(run.logField("sha256") == TestSHA256.hex(run.stdout))
        #expect(run.logField("bytes") == String(run.stdout.count))

        let json = try run.json()
        #expect(json["schema"] as? Int == 1)
        #expect(json["seq"] as? Int == 1)
        let instances = try #require(json["instances"] as? [[String: Any]])
        #expect(Set(instances.compactMap { $0["name"] as? String }) == ["main", "backup"])
        #expect(instances.count == 2)
        let main = try #require(instances.first { $0["name"] as? String == "main" })
        let accounts = try #require(main["accounts"] as? [[String: Any]])
        #expect(accounts.compactMap { $0["user"] as? String } == ["alice", "bob", "carol"])

        let secrets = try ExampleSecrets.values()
        let secretValues = Set(secrets.map(\.value))
        // The parser must have found what the example tree holds, or the check below proves nothing.
        for known in ["example-webif-Pass", "webadmin", "example-backup-Pass", "example-alice-Pass", "bob.example.net",
                      "example-reader-user", "example-reader-Pass", "0011223344556677", "1A2B3C4D5E6F7081",
                      "0102030405060708091011121314", "0A0B0C0D0E0F101112131415161A", "/dev/sci0",
                      "upstream.example.net"] {
            #expect(secretValues.contains(known), "the test's parser missed \(known)")
        }
        for secret in secrets {
            #expect(!run.stdoutText.contains(secret.value), "stdout leaks \(secret.key) of \(secret.file)")
            #expect(!run.stderrText.contains(secret.value), "stderr leaks \(secret.key) of \(secret.file)")
        }
    }

    @Test func dryRunPrettyIsIndentedAndSaysSo() async throws {
        let run = try await AgentProcess.run(["--dry-run", "--pretty", "--config", Self.example])
        #expect(run.status == 0, "\(run.stderrText)")
        #expect(run.stdoutText.contains("\n  \"instances\": ["), "not indented:\n\(run.stdoutText)")
        let json = try run.json()
        #expect(json["schema"] as? Int == 1)
        #expect((json["instances"] as? [Any])?.count == 2)
        #expect(run.stderrText.contains("NOT the exact bytes"))
        #expect(run.logField("sha256") != TestSHA256.hex(run.stdout), "the logged hash is of the compact bytes")
    }

    /// A disabled collector's section is absent, not empty.
    @Test func disabledCollectorsLeaveNoKeys() async throws {
        let root = try TestEnvironment.makeTempDir("e2e-enable")
        defer { TestEnvironment.removeTree(root) }
        var conf = TestEnvironment.read(Self.example)
        let exampleDirs = "config_dirs = oscam/main, oscam/backup"
        #expect(conf.contains(exampleDirs))
        conf = conf.replacingOccurrences(
            of: exampleDirs,
            with: "config_dirs = \(E2EPaths.exampleOScamDir)/main, \(E2EPaths.exampleOScamDir)/backup")
        try TestEnvironment.write(conf, to: root + "/agent.conf")
        try TestEnvironment.write("# only this one\ninstances\n", to: root + "/collectors.conf")

        let run = try await AgentProcess.run(["--dry-run", "--config", root + "/agent.conf"])
        #expect(run.status == 0, "\(run.stderrText)")
        let json = try run.json()
        #expect(json["host"] == nil)
        #expect(json["resources"] == nil)
        let instances = try #require(json["instances"] as? [[String: Any]])
        #expect(instances.count == 2)
        for instance in instances {
            for key in ["accounts", "readers", "runtime", "webif"] {
                #expect(instance[key] == nil, "\(key) present though its collector is disabled")
            }
            #expect(instance["config_dir"] != nil, "the instances collector ran")
        }
        #expect(run.stderrText.contains("names=host,resources,accounts,readers,webif,runtime"))
    }

    // MARK: - inspect

    @Test func inspectListsBothInstancesWithProvenance() async throws {
        let run = try await AgentProcess.run(["inspect", "--config", Self.example])
        #expect(run.status == 0, "\(run.stderrText)")
        let text = run.stdoutText
        for name in ["main", "backup"] {
            let dir = E2EPaths.exampleOScamDir + "/" + name + "/"
            #expect(text.contains("instance \(name) (osc_"), "\(text)")
            #expect(text.contains("config dir  \(dir)"))
            #expect(text.contains("found by    configured: \(dir)"))
        }
    }

    @Test func inspectJSON() async throws {
        let run = try await AgentProcess.run(["inspect", "--json", "--config", Self.example])
        #expect(run.status == 0, "\(run.stderrText)")
        let json = try run.json()
        let instances = try #require(json["instances"] as? [[String: Any]])
        #expect(instances.count == 2)
        for name in ["main", "backup"] {
            let instance = try #require(instances.first { $0["name"] as? String == name })
            let dir = E2EPaths.exampleOScamDir + "/" + name + "/"
            #expect(instance["config_dir"] as? String == dir)
            #expect(instance["state"] as? String == "stopped")
            let files = try #require(instance["files"] as? [String: String])
            #expect(files == ["oscam.conf": dir + "oscam.conf", "oscam.user": dir + "oscam.user",
                              "oscam.server": dir + "oscam.server"])
            let provenance = try #require(instance["discovered_by"] as? [[String: String]])
            #expect(provenance == [["source": "configured", "detail": dir]])
        }
    }

    // MARK: - check-config

    @Test func checkConfigAcceptsTheExample() async throws {
        let run = try await AgentProcess.run(["check-config", "--config", Self.example])
        #expect(run.status == 0, "\(run.stderrText)")
        #expect(run.stderrText.contains("configuration OK"))
    }

    enum BadConfig: String, CaseIterable, Sendable {
        case unknownKey, unknownSection, unknownCollector
    }

    /// Each problem alone gives 78 and one `file:line:` line naming it.
    @Test(arguments: BadConfig.allCases)
    func checkConfigNamesFileAndLine(_ bad: BadConfig) async throws {
        let root = try TestEnvironment.makeTempDir("e2e-check")
        defer { TestEnvironment.removeTree(root) }
        let agentConf = root + "/agent.conf"
        let collectors = root + "/collectors.conf"
        var lines = ["[agent]", "collectors_file = collectors.conf", "state_dir = state", "", "[discovery]",
                     "auto = no", "config_dirs =", "systemd_dirs =", "version_dirs ="]
        var collectorLines = ["host", "instances"]
        let expected: String
        switch bad {
        case .unknownKey:
            lines.insert("colour = blue", at: 3)
            expected = "\(agentConf):4: unknown key 'colour' in [agent]"
        case .unknownSection:
            lines.append("[paint]")
            expected = "\(agentConf):\(lines.count): unknown section [paint]"
        case .unknownCollector:
            collectorLines.insert("flux-capacitor", at: 1)
            expected = "\(collectors):2: unknown collector 'flux-capacitor'"
        }
        try TestEnvironment.write(lines.joined(separator: "\n") + "\n", to: agentConf)
        try TestEnvironment.write(collectorLines.joined(separator: "\n") + "\n", to: collectors)

        let run = try await AgentProcess.run(["check-config", "--config", agentConf])
        #expect(run.status == 78, "\(run.stderrText)")
        #expect(run.stderrLines.contains { $0.hasPrefix(expected) }, "expected '\(expected)' in:\n\(run.stderrText)")
        #expect(!run.stderrText.contains("configuration OK"))
    }

    @Test func checkConfigReportsEveryProblemAtOnce() async throws {
        let root = try TestEnvironment.makeTempDir("e2e-check-all")
        defer { TestEnvironment.removeTree(root) }
        let agentConf = root + "/agent.conf"
        try TestEnvironment.write("""
            [agent]
            collectors_file = collectors.conf
            colour = blue
            [discovery]
            auto = no
            [paint]
            """, to: agentConf)
        try TestEnvironment.write("instances\nflux-capacitor\n", to: root + "/collectors.conf")
        let run = try await AgentProcess.run(["check-config", "--config", agentConf])
        #expect(run.status == 78)
        let prefixes = ["\(agentConf):3: ", "\(agentConf):6: ", "\(root)/collectors.conf:2: "]
        for prefix in prefixes {
            #expect(run.stderrLines.contains { $0.hasPrefix(prefix) }, "no '\(prefix)' line in:\n\(run.stderrText)")
        }
    }

    @Test func unknownArgumentIsAUsageError() async throws {
        let run = try await AgentProcess.run(["check-config", "--frobnicate"])
        #expect(run.status == 64)
        #expect(run.stderrText.contains("unknown argument '--frobnicate'"))
        #expect(run.stdout.isEmpty)
    }

    /// An explicit `--config` that does not exist is an error for every command, never a
    /// silent fall-back to the defaults.
    @Test(arguments: ["check-config", "--dry-run", "inspect"])
    func missingConfigFileIsAConfigError(command: String) async throws {
        let root = try TestEnvironment.makeTempDir("e2e-missing")
        defer { TestEnvironment.removeTree(root) }
        let missing = root + "/no-such-agent.conf"
        let run = try await AgentProcess.run([command, "--config", missing])
        #expect(run.status == 78)
        #expect(run.stderrText.contains(missing))
        #expect(run.stdout.isEmpty)
    }

    // MARK: - Live discovery

    /// An agent.conf next to the stand-in's files. With `auto`, discovery scans processes and
    /// version files itself; without, the stand-in's config dir is configured.
    static func writeAgentConf(for standIn: DaemonStandIn, auto: Bool) throws -> String {
        let path = standIn.root + "/agent.conf"
        try TestEnvironment.write("""
            [agent]
            collectors_file = collectors.conf
            state_dir = state

            [discovery]
            auto = \(auto ? "yes" : "no")
            version_dirs = \(standIn.tempDir)
            systemd_dirs =
            config_dirs = \(auto ? "" : standIn.configDir)

            """, to: path)
        return path
    }

    /// The instance of `run`'s JSON whose `config_dir` is the stand-in's.
    static func instance(of standIn: DaemonStandIn, in run: AgentRun) throws -> [String: Any]? {
        (try run.json()["instances"] as? [[String: Any]])?.first { $0["config_dir"] as? String == standIn.configDir }
    }

    /// A daemonized stand-in is found through its process and its oscam.version, reported as
    /// running with the right PIDs, reached over its WebIF, and gone once it stops.
    @Test func liveStandInThroughTheBinary() async throws {
        let password = "Live-Pw-5521"
        try await DaemonStandIn.with(label: "e2e-live", port: try ReservedPort(), password: password) { standIn in
            let agentConf = try Self.writeAgentConf(for: standIn, auto: true)
            let worker = try #require(standIn.workerPID)
            let watchdog = try #require(standIn.watchdogPID)
            #expect(worker != watchdog)

            let inspect = try await AgentProcess.run(["inspect", "--json", "--config", agentConf])
            #expect(inspect.status == 0, "\(inspect.stderrText)")
            let found = try #require(try Self.instance(of: standIn, in: inspect),
                                     "stand-in not discovered:\n\(inspect.stdoutText)")
            let sources = Set((found["discovered_by"] as? [[String: String]] ?? []).compactMap { $0["source"] })
            #expect(sources.isSuperset(of: ["process", "version_file"]), "\(sources)")
            #expect(found["state"] as? String == "running")
            #expect(found["worker_pid"] as? Int == Int(worker))
            #expect(found["watchdog_pid"] as? Int == Int(watchdog))
            #expect(found["temp_dir"] as? String == standIn.tempDir)
            #expect(found["pid_file"] as? String == standIn.pidFile)

            let dryRun = try await AgentProcess.run(["--dry-run", "--config", agentConf])
            #expect(dryRun.status == 0, "\(dryRun.stderrText)")
            let instance = try #require(try Self.instance(of: standIn, in: dryRun),
                                        "stand-in not in the snapshot:\n\(dryRun.stdoutText)")
            let runtime = try #require(instance["runtime"] as? [String: Any])
            #expect(runtime["state"] as? String == "running")
            #expect(runtime["pid"] as? Int == Int(worker))
            #expect(runtime["watchdog_pid"] as? Int == Int(watchdog))
            #expect(instance["version"] as? String == "2.26.05-11961@5b6fa7ad")
            let uptime = try #require(runtime["uptime_s"] as? Int)
            #expect(uptime >= 0 && uptime < 60)
            let webif = try #require(instance["webif"] as? [String: Any])
            #expect(webif["state"] as? String == "ok", "\(webif)")
            #expect(webif["version"] as? String == "2.26.05-11961@5b6fa7ad")
            #expect(!dryRun.stdoutText.contains(password))
            #expect(!dryRun.stderrText.contains(password))
            for line in dryRun.stderrLines {
                #expect(Self.isLogLine(line), "not a log line: \(line)")
            }

            // SIGTERM to the watchdog, which forwards it; both end and remove their runtime files.
            #expect(kill(watchdog, SIGTERM) == 0)
            #expect(await E2EProcesses.waitUntilGone([watchdog, worker], timeout: 10), "stand-in did not stop")

            let after = try await AgentProcess.run(["inspect", "--json", "--config", agentConf])
            #expect(after.status == 0)
            if let again = try Self.instance(of: standIn, in: after) {
                #expect(again["state"] as? String == "stopped", "\(again)")
            }
        }
    }

    /// A WebIF restart (OSCAM.md §1.5): the watchdog stays, a new worker with a new pid takes
    /// over, and the agent follows it.
    @Test func liveRestartKeepsTheWatchdogAndFollowsTheNewWorker() async throws {
        let password = "Restart-Pw-8812"
        let port = try ReservedPort()
        let portNumber = port.port
        try await DaemonStandIn.with(label: "e2e-restart", port: port, password: password,
                                     environment: ["OSCAM_STANDIN_RESTART_DELAY": "0.3"]) { standIn in
            let agentConf = try Self.writeAgentConf(for: standIn, auto: false)
            let firstWorker = try #require(standIn.workerPID)
            let watchdog = try #require(standIn.watchdogPID)

            let answer = try await TestEnvironment.offPool {
                try CurlTransport().perform(HTTPRequest(
                    url: "http://127.0.0.1:\(portNumber)/shutdown.html?action=Restart", connectTimeout: 3,
                    totalTimeout: 10, tls: .loopbackSelfSigned, digest: ("admin", password)))
            }
            #expect(answer.status == 200)
            try await standIn.waitUntilListening(port: portNumber, times: 2)
            let secondWorker = try #require(standIn.workerPID)
            #expect(secondWorker != firstWorker)
            #expect(E2EProcesses.isGone(firstWorker))
            #expect(standIn.watchdogPID == watchdog)

            let inspect = try await AgentProcess.run(["inspect", "--json", "--config", agentConf])
            let found = try #require(try Self.instance(of: standIn, in: inspect), "\(inspect.stdoutText)")
            #expect(found["state"] as? String == "running")
            #expect(found["worker_pid"] as? Int == Int(secondWorker))
            #expect(found["watchdog_pid"] as? Int == Int(watchdog))

            let dryRun = try await AgentProcess.run(["--dry-run", "--config", agentConf])
            let instance = try #require(try Self.instance(of: standIn, in: dryRun), "\(dryRun.stdoutText)")
            let runtime = try #require(instance["runtime"] as? [String: Any])
            #expect(runtime["pid"] as? Int == Int(secondWorker))
            #expect(runtime["watchdog_pid"] as? Int == Int(watchdog))
            #expect((instance["webif"] as? [String: Any])?["state"] as? String == "ok")
        }
    }

    /// After `kill -9` OScam leaves oscam.version and its pid file behind (OSCAM.md §2.1); the
    /// agent must not take them for a running instance.
    @Test func liveKilledStandInLeavesStaleFilesButIsStopped() async throws {
        try await DaemonStandIn.with(label: "e2e-kill9", port: try ReservedPort(), password: "Kill-Pw-1194") { standIn in
            let agentConf = try Self.writeAgentConf(for: standIn, auto: true)
            let worker = try #require(standIn.workerPID)
            let watchdog = try #require(standIn.watchdogPID)

            // The watchdog restarts a worker only after exit 99 (or SIGSEGV under -r 2): it ends too.
            #expect(kill(worker, SIGKILL) == 0)
            #expect(await E2EProcesses.waitUntilGone([worker, watchdog], timeout: 10))
            #expect(FileManager.default.fileExists(atPath: standIn.tempDir + "/oscam.version"))
            #expect(FileManager.default.fileExists(atPath: standIn.pidFile))

            let inspect = try await AgentProcess.run(["inspect", "--json", "--config", agentConf])
            let found = try #require(try Self.instance(of: standIn, in: inspect),
                                     "the stale version file should still name the instance:\n\(inspect.stdoutText)")
            #expect(found["state"] as? String == "stopped")
            #expect(found["worker_pid"] == nil)
            let sources = (found["discovered_by"] as? [[String: String]] ?? []).compactMap { $0["source"] }
            #expect(sources == ["version_file"])

            let dryRun = try await AgentProcess.run(["--dry-run", "--config", agentConf])
            let instance = try #require(try Self.instance(of: standIn, in: dryRun), "\(dryRun.stdoutText)")
            let runtime = try #require(instance["runtime"] as? [String: Any])
            #expect(runtime["state"] as? String == "stopped")
            #expect(runtime["pid"] == nil)
            let webifState = (instance["webif"] as? [String: Any])?["state"] as? String
            #expect(webifState != "ok", "nothing should answer on a dead instance's port")
        }
    }
}
