#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OScam
import Pipeline
import Platform
import Testing
import TestSupport
@testable import Runner

/// Panel commands end to end: the real binary, the development panel over HTTPS on loopback,
/// and the OScam stand-in with its WebIF.
@Suite(.serialized) struct CommandTests {
    static let webifPassword = "Cmd-Webif-Pw-5150"

    static let userFile = """
        # Accounts for the command tests. This comment must survive every edit.

        [account]
        user       = alice
        pwd        = alice-Secret-1
        group      = 1
        caid       = 0963

        # bob is a reseller
        [account]
        user       = bob
        pwd        = bob-Secret-2
        group      = 2

        """

    /// Everything one test needs, torn down by `with`.
    final class Rig: @unchecked Sendable {
        let panel: DevPanelProcess
        let standIn: DaemonStandIn
        let conf: String
        let dir: String
        var agent: DaemonTests.Running?
        var server = ""

        init(panel: DevPanelProcess, standIn: DaemonStandIn, conf: String, dir: String) {
            self.panel = panel
            self.standIn = standIn
            self.conf = conf
            self.dir = dir
        }

        var instanceID: String {
            DiscoveredInstance.id(forConfigDir: standIn.configDir)
        }

        var userPath: String {
            standIn.configDir + "oscam.user"
        }

        var confPath: String {
            standIn.configDir + "oscam.conf"
        }

        func startAgent(environment: [String: String] = [:]) throws {
            agent = try DaemonTests.Running(["run", "--config", conf, "--allow-root"], environment: environment)
            if server.isEmpty {
                var found: String?
                _ = try DaemonTests.waitFor(20) { found = try DaemonTests.serverID(panel); return found != nil }
                server = try #require(found)
            }
        }

        /// Queues a command; returns its id.
        @discardableResult
        func queue(_ fields: [String: Any], id: String = "cmd_" + UUID().uuidString.prefix(8).lowercased()) throws -> String {
            var command = fields
            command["id"] = id
            let json = String(decoding: try JSONSerialization.data(withJSONObject: command, options: [.sortedKeys]), as: UTF8.self)
            try panel.admin(["command", server, json])
            return id
        }

        func results() throws -> [String: [String: Any]] {
            var out: [String: [String: Any]] = [:]
            for line in try panel.admin(["results", server]).split(separator: "\n") {
                if let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let id = object["command_id"] as? String {
                    out[id] = object
                }
            }
            return out
        }

        /// Waits for the result of `id`; returns its body.
        func result(_ id: String, timeout: Double = 40) throws -> [String: Any] {
            var body: [String: Any]?
            _ = try DaemonTests.waitFor(timeout) {
                body = try results()[id]?["body"] as? [String: Any]
                return body != nil
            }
            return try #require(body, "no result for \(id)")
        }

        /// The accounts OScam has in memory, as `usermd5` ids, read from the stand-in's API.
        func loadedAccounts() throws -> Set<String> {
            let conf = ConfigDocument(bytes: readBytes(confPath) ?? [], file: .conf, path: "oscam.conf")
            let webif = WebIfActions(settings: conf.webif().value, http: CurlTransport())
            let body = try webif.get("/oscamapi.json?part=userstats")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            let users = ((object["oscam"] as? [String: Any])?["users"] as? [[String: Any]]) ?? []
            return Set(users.compactMap { ($0["user"] as? [String: Any])?["usermd5"] as? String })
        }

        func stop() -> String {
            agent?.terminate().stderr ?? ""
        }
    }

    static func with(label: String, extraConf: String = "", webifExtra: String = "", allowedActions: String? = nil,
                     serviceLines: [String] = [], panelLines: [String] = [], unit: Bool = false,
                     _ body: @escaping @Sendable (Rig) throws -> Void) async throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "300",
                                                         "--redeliver-after", "5"])
        defer { panel.stop() }
        let port = try ReservedPort()
        try await DaemonStandIn.with(label: label, port: port, password: webifPassword, extraConf: extraConf,
                                      webifExtra: webifExtra) { standIn in
            try TestEnvironment.write(userFile, to: standIn.configDir + "oscam.user")
            let (config, dir, _) = try panel.agentConfig()
            var systemdDirs = ""
            if unit {
                try FileManager.default.createDirectory(atPath: dir + "/units", withIntermediateDirectories: true)
                try TestEnvironment.write("""
                    [Service]
                    ExecStart=\(E2EPaths.standInLauncher) -b -c \(standIn.configDir) -t \(standIn.tempDir) -B \(standIn.pidFile)

                    """, to: dir + "/units/oscam-cmdtest.service")
                systemdDirs = dir + "/units"
            }
            try TestEnvironment.write("instances\naccounts\nruntime\n", to: dir + "/collectors.conf")
            if let allowedActions {
                try TestEnvironment.write(allowedActions, to: dir + "/allowed-actions")
                chmod(dir + "/allowed-actions", 0o644)
            }
            try TestEnvironment.write("""
                [panel]
                url = \(config.panelURL)
                ca_file = \(config.caFile ?? "")
                \(panelLines.joined(separator: "\n"))
                [agent]
                state_dir = \(config.stateDir)
                install_token_file = \(config.installTokenFile)
                allowed_actions_file = \(dir)/allowed-actions
                collectors_file = \(dir)/collectors.conf
                log_level = debug
                [discovery]
                auto = no
                config_dirs = \(standIn.configDir)
                proc_root = /proc
                systemd_dirs = \(systemdDirs)
                version_dirs = \(standIn.tempDir)
                [service]
                \(serviceLines.joined(separator: "\n"))

                """, to: dir + "/agent.conf")
            let rig = Rig(panel: panel, standIn: standIn, conf: dir + "/agent.conf", dir: dir)
            defer { _ = rig.stop() }
            // The body waits by sleeping: off the small cooperative pool, which every other
            // async test of the run shares (two threads on a two-core CI machine).
            try await TestEnvironment.offPool { try body(rig) }
        }
    }

    static func apply(_ rig: Rig, file: String = "oscam.user", base: String? = nil, _ edits: [[String: Any]]) -> [String: Any] {
        var command: [String: Any] = ["type": "apply_config", "instance": rig.instanceID, "file": file, "edits": edits]
        command["base_sha256"] = base
        return command
    }

    /// The file the agent must have written: the same edits through the document model.
    static func expected(_ before: [UInt8], file: OScamFile, _ edits: [ConfigEdit]) throws -> [UInt8] {
        var document = ConfigDocument(bytes: before, file: file, path: file.rawValue)
        try document.apply(edits)
        return document.serialized()
    }

    // MARK: - oscam.user

    @Test func accountsAreAddedChangedDisabledAndDeletedLiveKeepingTheOperatorsLayout() async throws {
        try await Self.with(label: "cmd-accounts") { rig in
            let before = try #require(readBytes(rig.userPath))
            var info = stat()
            stat(rig.userPath, &info)
            chmod(rig.userPath, 0o640)
            try rig.startAgent()
            let steps: [([[String: Any]], [ConfigEdit])] = [
                ([["op": "upsert_account", "user": "carol", "set": ["pwd": "carol-Secret-3", "group": "1"]]],
                 [.upsertAccount(user: "carol", set: [KeyValue("group", "1"), KeyValue("pwd", "carol-Secret-3")], unset: [])]),
                ([["op": "upsert_account", "user": "alice", "set": ["caid": "0963,098C"], "unset": ["group"]]],
                 [.upsertAccount(user: "alice", set: [KeyValue("caid", "0963,098C")], unset: ["group"])]),
                ([["op": "upsert_account", "user": "bob", "set": ["disabled": "1"]]],
                 [.upsertAccount(user: "bob", set: [KeyValue("disabled", "1")], unset: [])]),
                ([["op": "delete_account", "user": "carol"]], [.deleteAccount(user: "carol")]),
            ]
            var current = before
            for (wire, edits) in steps {
                let id = try rig.queue(Self.apply(rig, base: Crypto.sha256Hex(current), wire))
                let result = try rig.result(id)
                #expect(result["status"] as? String == "succeeded", "\(result)")
                let details = try #require(result["details"] as? [String: Any])
                #expect(details["reload"] as? String == "live")
                let expected = try Self.expected(current, file: .user, edits)
                let onDisk = try #require(readBytes(rig.userPath))
                #expect(onDisk == expected, "the file differs from the old one only where the edit says")
                #expect(details["sha256_before"] as? String == Crypto.sha256Hex(current))
                #expect(details["sha256_after"] as? String == Crypto.sha256Hex(expected))
                current = onDisk
                let names = ConfigDocument(bytes: onDisk, file: .user, path: "oscam.user").accounts().value.map(\.user)
                #expect(try rig.loadedAccounts() == Set(names.map(WebIfActions.userID)), "OScam has the new accounts")
            }
            #expect(String(decoding: current, as: UTF8.self).contains("# bob is a reseller"))
            // A snapshot follows the change, so the panel sees the new hash at once.
            let hash = Crypto.sha256Hex(current)
            #expect(try DaemonTests.waitFor(15) {
                let raw = try rig.panel.admin(["snapshots", rig.server, "--raw", "--latest"])
                return raw.contains(hash)
            }, "the latest snapshot carries the new oscam.user hash")
            var after = stat()
            stat(rig.userPath, &after)
            #expect(after.st_ino == info.st_ino && after.st_uid == info.st_uid && after.st_mode & 0o7777 == 0o640)
            // Backups beside the file, or in the state dir when that dir does not exist.
            let backups = listDirectory(rig.dir + "/state/backup/" + rig.instanceID)
            #expect(backups.count == 4)
            let stderr = rig.stop()
            for secret in ["alice-Secret-1", "bob-Secret-2", "carol-Secret-3", Self.webifPassword] {
                #expect(!stderr.contains(secret), "a password reached the log")
                #expect(!(try rig.panel.admin(["requests", "--decoded"])).contains(secret), "a password reached the panel")
            }
        }
    }

    @Test func aQuietChannelGetsACommandAtTheNextHeartbeat() async throws {
        try await Self.with(label: "cmd-quiet", panelLines: ["command_poll_idle_after = 2"]) { rig in
            try rig.startAgent()
            // Quiet once the poll held at start ends: the panel holds it up to 30 s.
            sleep(34)
            let sent = Date()
            let id = try rig.queue(["type": "resync", "issued_at": Int(Date().timeIntervalSince1970),
                                    "expires_at": Int(Date().timeIntervalSince1970) + 600])
            #expect(try rig.result(id, timeout: 20)["status"] as? String == "succeeded")
            // The next heartbeat (every second here) says commands are pending; the agent polls.
            #expect(Date().timeIntervalSince(sent) < 10)
            let log = rig.stop()
            #expect(log.contains("command channel quiet"))
            #expect(log.contains("command channel holding a poll open again"))
        }
    }

    @Test func staleBaseInjectionUnknownInstanceExpiryAndVetoAreRefusedWithoutWriting() async throws {
        try await Self.with(label: "cmd-refusals", allowedActions: "apply_config\nservice:reload\n") { rig in
            let before = try #require(readBytes(rig.userPath))
            try rig.startAgent()
            let stale = try rig.queue(Self.apply(rig, base: String(repeating: "0", count: 64),
                                                 [["op": "delete_account", "user": "bob"]]))
            let injected = try rig.queue(Self.apply(rig, [["op": "upsert_account", "user": "eve",
                                                           "set": ["pwd": "x\n[account]\nuser = mallory"]]]))
            var unknown = Self.apply(rig, [["op": "delete_account", "user": "bob"]])
            unknown["instance"] = "osc_0000000000000000"
            let unknownID = try rig.queue(unknown)
            var expired = Self.apply(rig, [["op": "delete_account", "user": "bob"]])
            expired["issued_at"] = 1_700_000_000
            expired["expires_at"] = 1_700_000_600
            let expiredID = try rig.queue(expired)
            let vetoed = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "restart"])
            let traversal = try rig.queue(["type": "service", "instance": "../../etc", "action": "reload"])
            #expect(try rig.result(stale)["status"] as? String == "conflict")
            let injectedResult = try rig.result(injected)
            #expect(injectedResult["status"] as? String == "rejected")
            #expect(!(injectedResult["message"] as? String ?? "").contains("mallory"))
            #expect(try rig.result(unknownID)["status"] as? String == "rejected")
            let expiredResult = try rig.result(expiredID)
            #expect(expiredResult["status"] as? String == "rejected")
            #expect((expiredResult["message"] as? String ?? "").contains("expired"))
            let vetoedResult = try rig.result(vetoed)
            #expect(vetoedResult["status"] as? String == "rejected")
            #expect(vetoedResult["message"] as? String == "not allowed on this server")
            #expect(try rig.result(traversal)["status"] as? String == "rejected")
            #expect(readBytes(rig.userPath) == before, "nothing was written")
        }
    }

    // MARK: - oscam.conf

    @Test func confKeysAreAppliedLiveOrMarkedForRestartAndTheCommentsSurviveOScamsRewrite() async throws {
        try await Self.with(label: "cmd-conf", extraConf: "# operator note: keep this\nclienttimeout = 4000\n") { rig in
            try rig.startAgent()
            let live = try rig.queue(Self.apply(rig, file: "oscam.conf",
                                                [["op": "set", "section": "global", "key": "clienttimeout", "value": "4500"]]))
            let result = try rig.result(live)
            #expect(result["status"] as? String == "succeeded", "\(result)")
            let details = try #require(result["details"] as? [String: Any])
            #expect(details["reload"] as? String == "live")
            #expect(details["applied_keys"] as? [String] == ["global.clienttimeout"])
            let text = TestEnvironment.read(rig.confPath)
            #expect(text.contains("# operator note: keep this"), "the agent's file was written again over OScam's rewrite")
            #expect(text.contains("clienttimeout = 4500"))
            #expect(details["sha256_after"] as? String == Crypto.sha256Hex(Array(text.utf8)))
            let restart = try rig.queue(Self.apply(rig, file: "oscam.conf",
                                                   [["op": "set", "section": "global", "key": "nice", "value": "-1"]]))
            let restartResult = try rig.result(restart)
            #expect(restartResult["status"] as? String == "succeeded")
            let restartDetails = try #require(restartResult["details"] as? [String: Any])
            #expect(restartDetails["reload"] as? String == "restart_required")
            #expect(restartDetails["restart_required"] as? Bool == true)
            #expect(TestEnvironment.read(rig.confPath).contains("nice"))
        }
    }

    @Test func aReadOnlyWebIfWritesTheFileAndSaysARestartIsNeeded() async throws {
        try await Self.with(label: "cmd-readonly", extraConf: "", webifExtra: "httpreadonly = 1\n") { rig in
            try rig.startAgent()
            let id = try rig.queue(Self.apply(rig, [["op": "delete_account", "user": "bob"]]))
            let result = try rig.result(id)
            #expect(result["status"] as? String == "succeeded")
            let details = try #require(result["details"] as? [String: Any])
            #expect(details["reload"] as? String == "none" && details["restart_required"] as? Bool == true)
            #expect(!TestEnvironment.read(rig.userPath).contains("user       = bob"))
        }
    }

    @Test func withoutAWebIfTheFileIsWrittenAndARestartIsNeeded() async throws {
        // A later `httpport` wins (last duplicate key): this OScam runs without a WebIF.
        try await Self.with(label: "cmd-nowebif", webifExtra: "httpport = 0\n") { rig in
            try rig.startAgent()
            let id = try rig.queue(Self.apply(rig, [["op": "delete_account", "user": "bob"]]))
            let result = try rig.result(id)
            #expect(result["status"] as? String == "succeeded", "\(result)")
            let details = try #require(result["details"] as? [String: Any])
            #expect(details["reload"] as? String == "none" && details["restart_required"] as? Bool == true)
            #expect((result["message"] as? String ?? "").contains("no WebIF"))
        }
    }

    // MARK: - Crashes and failures

    @Test func aKillAfterOScamTookConfKeysLiveRollsTheFileBack() async throws {
        try await Self.with(label: "cmd-kill-conf", extraConf: "# keep me\nclienttimeout = 4000\n") { rig in
            let before = try #require(readBytes(rig.confPath))
            try rig.startAgent(environment: ["MYOSICAM_TEST_PAUSE_AT": "apply:live-applied"])
            let id = try rig.queue(Self.apply(rig, file: "oscam.conf",
                                              [["op": "set", "section": "global", "key": "clienttimeout", "value": "4700"]]))
            let pid = try #require(rig.agent?.process.processIdentifier)
            #expect(DaemonTests.waitFor(30) { Self.isStopped(pid) })
            #expect(!TestEnvironment.read(rig.confPath).contains("# keep me"), "OScam rewrote the file")
            kill(pid, SIGKILL)
            _ = rig.stop()
            try rig.startAgent()
            let result = try rig.result(id)
            #expect(result["status"] as? String == "failed")
            #expect(readBytes(rig.confPath) == before, "the operator's file is back, comments and all")
        }
    }

    @Test(arguments: ["apply:journaled", "apply:written", "apply:reloaded"])
    func aKillAtAnyPointOfAnApplyLeavesTheOldFileAndOneResult(_ point: String) async throws {
        try await Self.with(label: "cmd-kill") { rig in
            let before = try #require(readBytes(rig.userPath))
            chmod(rig.userPath, 0o600)
            try rig.startAgent(environment: ["MYOSICAM_TEST_PAUSE_AT": point])
            let id = try rig.queue(Self.apply(rig, [["op": "upsert_account", "user": "dave", "set": ["pwd": "dave-Secret-4"]]]))
            let pid = try #require(rig.agent?.process.processIdentifier)
            #expect(DaemonTests.waitFor(30) { Self.isStopped(pid) }, "the agent reached \(point)")
            kill(pid, SIGKILL)
            _ = rig.stop()
            try rig.startAgent()
            let result = try rig.result(id)
            #expect(result["status"] as? String == "failed")
            #expect((result["message"] as? String ?? "").contains("restored"))
            #expect(readBytes(rig.userPath) == before, "the old content is back")
            var info = stat()
            stat(rig.userPath, &info)
            #expect(info.st_mode & 0o7777 == 0o600)
            #expect(try rig.loadedAccounts() == Set(["alice", "bob"].map(WebIfActions.userID)))
            usleep(1_500_000)
            #expect((try rig.results()[id]?["resends"] as? Int) == 0, "reported once")
            #expect(listDirectory(rig.dir + "/state/journal").isEmpty)
        }
    }

    @Test func aCommandDeliveredAgainAfterACrashIsAnsweredFromTheRecordNotRunAgain() async throws {
        try await Self.with(label: "cmd-redeliver") { rig in
            try rig.startAgent(environment: ["MYOSICAM_TEST_PAUSE_AT": "command:recorded"])
            let id = try rig.queue(Self.apply(rig, [["op": "upsert_account", "user": "erin", "set": ["group": "3"]]]))
            let pid = try #require(rig.agent?.process.processIdentifier)
            #expect(DaemonTests.waitFor(30) { Self.isStopped(pid) })
            kill(pid, SIGKILL)
            _ = rig.stop()
            let written = try #require(readBytes(rig.userPath))
            try rig.startAgent()
            let result = try rig.result(id)
            #expect(result["status"] as? String == "succeeded", "the recorded result, not a rollback")
            #expect(readBytes(rig.userPath) == written)
            #expect(listDirectory(rig.dir + "/state/backup/" + rig.instanceID).count == 1, "executed once")
            let status = Capture()
            #expect(Agent.main(arguments: ["status", "--config", rig.conf], output: status.output) == 0)
            #expect(status.stdout.contains("\(id) apply_config at"), "\(status.stdout)")
            #expect(status.stdout.contains("succeeded: oscam.user written and loaded by OScam"))
        }
    }

    @Test func aWebIfThatDiesMidApplyRestoresThePreviousFile() async throws {
        try await Self.with(label: "cmd-webif-dies") { rig in
            let before = try #require(readBytes(rig.userPath))
            try rig.startAgent(environment: ["MYOSICAM_TEST_PAUSE_AT": "apply:written"])
            let id = try rig.queue(Self.apply(rig, [["op": "delete_account", "user": "alice"]]))
            let pid = try #require(rig.agent?.process.processIdentifier)
            #expect(DaemonTests.waitFor(30) { Self.isStopped(pid) })
            for process in E2EProcesses.pids(withCommandLineContaining: rig.standIn.root) {
                kill(process, SIGKILL)
            }
            kill(pid, SIGCONT)
            let result = try rig.result(id)
            #expect(result["status"] as? String == "failed")
            #expect((result["message"] as? String ?? "").contains("restored"))
            #expect(readBytes(rig.userPath) == before)
        }
    }

    static func isStopped(_ pid: Int32) -> Bool {
        let stat = TestEnvironment.read("/proc/\(pid)/stat")
        guard let close = stat.range(of: ") ", options: .backwards) else {
            return false
        }
        return stat[close.upperBound...].hasPrefix("T")
    }

    // MARK: - Service actions

    @Test func serviceActionsRunExactlyTheSudoArgvAndNothingElse() async throws {
        let bin = try TestEnvironment.makeTempDir("fake-sudo")
        defer { TestEnvironment.removeTree(bin) }
        let log = bin + "/argv.log"
        try TestEnvironment.write("#!/bin/sh\nprintf '%s\\n' \"$*\" >> \(log)\nexit 0\n", to: bin + "/sudo")
        chmod(bin + "/sudo", 0o755)
        try await Self.with(label: "cmd-service", serviceLines: ["sudo = \(bin)/sudo", "systemctl = /usr/bin/systemctl"],
                            unit: true) { rig in
            try rig.startAgent()
            let restart = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "restart"])
            let restartResult = try rig.result(restart)
            #expect(restartResult["status"] as? String == "succeeded", "\(restartResult)")
            let details = try #require(restartResult["details"] as? [String: Any])
            #expect(details["state"] as? String == "running" && details["pid"] as? Int == Int(rig.standIn.workerPID ?? 0))
            #expect(details["webif"] as? String == "up")
            let stop = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "stop"])
            let stopResult = try rig.result(stop)
            // The fake sudo stops nothing: the agent sees OScam still (or again) running and says so.
            #expect(stopResult["status"] as? String == "failed")
            #expect((stopResult["details"] as? [String: Any])?["came_back"] as? Bool == true)
            let reload = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "reload"])
            #expect(try rig.result(reload)["status"] as? String == "succeeded")
            let resync = try rig.queue(["type": "resync"])
            #expect(try rig.result(resync)["status"] as? String == "succeeded")
            #expect(TestEnvironment.read(log) == "-n /usr/bin/systemctl restart oscam-cmdtest.service\n"
                + "-n /usr/bin/systemctl stop oscam-cmdtest.service\n")
        }
    }

    @Test func withoutAUnitRestartGoesThroughTheWebIfAndStartIsRefused() async throws {
        try await Self.with(label: "cmd-nounit") { rig in
            try rig.startAgent()
            let before = rig.standIn.workerPID
            let restart = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "restart"])
            let result = try rig.result(restart, timeout: 60)
            #expect(result["status"] as? String == "succeeded", "\(result)")
            let pid = (result["details"] as? [String: Any])?["pid"] as? Int
            #expect(pid != nil && pid != before.map(Int.init), "a new worker")
            let start = try rig.queue(["type": "service", "instance": rig.instanceID, "action": "start"])
            #expect(try rig.result(start)["status"] as? String == "rejected")
        }
    }
}
