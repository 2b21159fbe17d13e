#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Pipeline
import Platform
import Sinks
import Testing
import TestSupport
@testable import Runner

/// The real binary's `run` against the development panel over HTTPS on loopback.
@Suite(.serialized) struct DaemonTests {
    /// A copy of the example's main instance, so a test may change it.
    static func tree() throws -> String {
        let dir = try TestEnvironment.makeTempDir("daemon-tree")
        for file in ["oscam.conf", "oscam.user", "oscam.server"] {
            let bytes = try #require(readBytes(TestEnvironment.packageRoot + "/config/example/oscam/main/" + file))
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + file))
        }
        return dir
    }

    /// An agent.conf for `panel` over `tree` with deterministic collectors only.
    static func agentConf(_ panel: DevPanelProcess, tree: String) throws -> (path: String, dir: String) {
        let (config, dir, _) = try panel.agentConfig()
        try TestEnvironment.write("instances\naccounts\nreaders\n", to: dir + "/collectors.conf")
        let text = """
            [panel]
            url = \(config.panelURL)
            ca_file = \(config.caFile ?? "")
            [agent]
            state_dir = \(config.stateDir)
            install_token_file = \(config.installTokenFile)
            collectors_file = \(dir)/collectors.conf
            [discovery]
            auto = no
            config_dirs = \(tree)
            proc_root = \(dir)
            systemd_dirs =
            version_dirs =
            """
        try TestEnvironment.write(text, to: dir + "/agent.conf")
        return (dir + "/agent.conf", dir)
    }

    final class Running: @unchecked Sendable {
        let process = Process()
        let errors = Pipe()

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            guard let binary = E2EPaths.agentBinary else {
                throw TestEnvironmentError("myosicam-agent is not built")
            }
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = errors
            try process.run()
        }

        /// SIGTERM, then the exit status and how long the exit took.
        func terminate() -> (status: Int32, seconds: Double, stderr: String) {
            let start = Date()
            process.terminate()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, Date().timeIntervalSince(start), stderr)
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
        }
    }

    static func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() {
                return true
            }
            usleep(100_000)
        }
        return try condition()
    }

    static func snapshots(_ panel: DevPanelProcess, _ server: String) throws -> [[String: Any]] {
        try panel.admin(["snapshots", server]).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func serverID(_ panel: DevPanelProcess) throws -> String? {
        let line = try panel.admin(["servers"]).split(separator: "\n").first.map(String.init) ?? ""
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["server_id"] as? String
    }

    /// Listening TCP sockets (state 0A) whose inode belongs to `pid`.
    static func listeningSockets(of pid: Int32) -> Int {
        let fds = listDirectory("/proc/\(pid)/fd")
        let inodes = Set(fds.compactMap { fd -> String? in
            var buffer = [CChar](repeating: 0, count: 256)
            let count = readlink("/proc/\(pid)/fd/\(fd)", &buffer, 255)
            guard count > 0 else { return nil }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:[") else { return nil }
            return String(target.dropFirst(8).dropLast())
        })
        var listening = 0
        for table in ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"] {
            let text = String(decoding: readBytes(table) ?? [], as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                if fields.count > 9, inodes.contains(String(fields[9])), fields[3] == "0A" || table.contains("udp") {
                    listening += 1
                }
            }
        }
        return listening
    }

    @Test func registersHeartbeatsSendsTheDryRunBytesAndStopsOnSIGTERM() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let tree = try Self.tree()
        let (conf, dir) = try Self.agentConf(panel, tree: tree)
        let token = TestEnvironment.read(dir + "/install-token").trimmingCharacters(in: .whitespacesAndNewlines)
        let agent = try Running(["run", "--config", conf, "--allow-root"])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let id = try #require(server)
        #expect(try Self.waitFor(15) { try panel.admin(["heartbeats", id]).split(separator: "\n").count >= 3 })
        #expect(try Self.waitFor(10) { try !Self.snapshots(panel, id).isEmpty })
        #expect(Self.listeningSockets(of: agent.process.processIdentifier) == 0, "the agent never listens")
        let stopped = agent.terminate()
        #expect(stopped.status == 0)
        #expect(stopped.seconds < 2, "SIGTERM must end the agent within 2 s")
        // The stored snapshot equals what --dry-run prints for the same tree, apart from seq and time.
        let raw = try panel.admin(["snapshots", id, "--raw"]).split(separator: "\n").first.map(String.init) ?? ""
        let dry = Capture()
        #expect(Agent.main(arguments: ["--dry-run", "--config", conf], output: dry.output) == 0)
        func normalised(_ text: String) throws -> NSDictionary {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            object["seq"] = 0
            object["collected_at"] = 0
            return object as NSDictionary
        }
        #expect(try normalised(raw) == normalised(dry.stdout))
        // No secret, install token or HMAC key reached a log line.
        let state = try #require(try StateStore(directory: dir + "/state").load())
        let hmacKey = Data(state.secret).base64EncodedString()
        for secret in ["example-alice-Pass", "example-webif-Pass", "0102030405060708091011121314", "example-reader-Pass",
                       token, hmacKey, Crypto.hex(state.secret)] {
            #expect(!stopped.stderr.contains(secret))
        }
        #expect(stopped.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("level=") })
        // `status` reads the same state without the network.
        let status = Capture()
        #expect(Agent.main(arguments: ["status", "--config", conf], output: status.output) == 0)
        #expect(status.stdout.contains("registration: registered as \(id)"))
        #expect(status.stdout.contains("heartbeat: ok") && status.stdout.contains("spool: 0 waiting"))
        #expect(status.stdout.contains("last snapshot acknowledged: seq 1"))
    }

    @Test func statusBeforeRegistrationSaysWhatToDo() throws {
        let panel = try DevPanelProcess()
        let (conf, _) = try Self.agentConf(panel, tree: try Self.tree())
        let status = Capture()
        #expect(Agent.main(arguments: ["status", "--config", conf], output: status.output) == 0)
        #expect(status.stdout.contains("not registered") && status.stdout.contains("myosicam-agent register"))
    }

    @Test func snapshotsSpooledWhileThePanelIsDownArriveInOrder() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let tree = try Self.tree()
        let (conf, _) = try Self.agentConf(panel, tree: tree)
        let agent = try Running(["run", "--config", conf, "--allow-root"])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let id = try #require(server)
        #expect(try Self.waitFor(10) { try !Self.snapshots(panel, id).isEmpty })
        try panel.admin(["fault", "down"])
        // Change the accounts a few times while the panel is down: each change is a snapshot.
        for index in 0..<4 {
            let user = String(decoding: try #require(readBytes(tree + "/oscam.user")), as: UTF8.self)
            try TestEnvironment.write(user + "\n[account]\nuser = offline\(index)\npwd = x-offline-\(index)\n", to: tree + "/oscam.user")
            usleep(1_300_000)
        }
        try panel.admin(["fault", "none"])
        #expect(try Self.waitFor(40) {
            let seqs = try Self.snapshots(panel, id).compactMap { $0["seq"] as? Int }
            return seqs.count >= 5
        })
        let seqs = try Self.snapshots(panel, id).compactMap { $0["seq"] as? Int }.sorted()
        #expect(seqs == Array(1...seqs.count), "every snapshot arrives, in order, none lost: \(seqs)")
        _ = agent.terminate()
    }

    @Test func survivesAHostilePanelAndLogsOncePerStateChange() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let tree = try Self.tree()
        let (conf, dir) = try Self.agentConf(panel, tree: tree)
        let agent = try Running(["run", "--config", conf, "--allow-root"])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let id = try #require(server)
        #expect(try Self.waitFor(10) { try !Self.snapshots(panel, id).isEmpty })
        for fault in ["500", "garbage", "huge", "truncated", "bad-signature", "unsigned"] {
            try panel.admin(["fault", fault])
            // A change to the accounts makes a snapshot that must wait in the spool.
            let user = String(decoding: try #require(readBytes(tree + "/oscam.user")), as: UTF8.self)
            try TestEnvironment.write(user + "\n[account]\nuser = hostile-\(fault)\n", to: tree + "/oscam.user")
            usleep(2_500_000)
            #expect(agent.process.isRunning, "the agent survives the \(fault) fault")
            let rss = Self.rssMB(agent.process.processIdentifier)
            #expect(rss < 60, "RSS \(rss) MB under the \(fault) fault")
        }
        try panel.admin(["fault", "none"])
        // Recovered when the agent's own spool is empty (the panel may have stored a batch whose
        // answer the agent could not verify; the agent sends it again and the panel de-duplicates).
        let spool = SnapshotSpool(directory: dir + "/state/spool", maxBytes: 1 << 26)
        #expect(Self.waitFor(60) { spool.entries().isEmpty })
        #expect(try Self.snapshots(panel, id).compactMap { $0["seq"] as? Int }.count >= 7)
        usleep(1_500_000)
        let stopped = agent.terminate()
        let seqs = try Self.snapshots(panel, id).compactMap { $0["seq"] as? Int }.sorted()
        #expect(seqs == Array(1...seqs.count), "all spooled snapshots delivered in order: \(seqs)")
        // Each failure is logged when the state changes, not on every try: six faults, each
        // retried several times, give at most a couple of lines per fault for each channel.
        let failures = stopped.stderr.split(separator: "\n").filter { $0.contains("failed") }
        #expect(failures.count <= 2 * 6 * 2, "\(failures.count) failure lines:\n\(failures.joined(separator: "\n"))")
        #expect(stopped.stderr.contains("heartbeats accepted again") || stopped.stderr.contains("snapshots delivered again"), "\(stopped.stderr)")
    }

    /// PANEL-API "Revocation" end to end, on a clock the test moves (MYOSICAM_TEST_CLOCK_FILE):
    /// ten unsigned rejections in seconds are not enough; after ten minutes the agent marks itself
    /// revoked (logged once, in the state and in `status`), then every channel waits 15 minutes
    /// between tries; when the panel accepts it again, it clears the mark and delivers its spool.
    @Test func aRevokedAgentBacksOffToFifteenMinutesAndRecovers() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let tree = try Self.tree()
        let (conf, dir) = try Self.agentConf(panel, tree: tree)
        let clock = dir + "/clock"
        var now = 0
        func move(to seconds: Int) throws {
            now = seconds
            try TestEnvironment.write("wall=\(seconds)\nmonotonic=\(seconds)\n", to: clock)
        }
        try move(to: 0)
        let agent = try Running(["run", "--config", conf, "--allow-root"], environment: ["MYOSICAM_TEST_CLOCK_FILE": clock])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let id = try #require(server)
        #expect(try Self.waitFor(10) { try !Self.snapshots(panel, id).isEmpty })
        func requests() throws -> [[String: Any]] {
            try panel.admin(["requests", "--server", id]).split(separator: "\n").compactMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        func count(_ rows: [[String: Any]], _ path: String) -> Int {
            rows.filter { ($0["path"] as? String ?? "").hasSuffix(path) }.count
        }
        let store = StateStore(directory: dir + "/state")
        try panel.admin(["revoke", id])
        #expect(try Self.waitFor(30) {
            try requests().filter { $0["error"] as? String == "unknown_server" && ($0["path"] as? String ?? "").hasSuffix("/heartbeat") }
                .count >= 10
        })
        #expect(try store.load()?.status == .registered, "ten rejections within seconds are not ten minutes")
        let user = String(decoding: try #require(readBytes(tree + "/oscam.user")), as: UTF8.self)
        try TestEnvironment.write(user + "\n[account]\nuser = while-revoked\n", to: tree + "/oscam.user")
        try move(to: 660)
        #expect(try Self.waitFor(10) { try store.load()?.status == .revoked })
        let before = try requests()
        // 46 minutes pass, one minute at a time. The steps take longer in real time than a
        // long-poll the panel may still be holding (30 s), so the poll loop's own pace shows.
        for _ in 0..<46 {
            try move(to: now + 60)
            usleep(750_000)
        }
        let during = Array(try requests().dropFirst(before.count))
        // The heartbeats' own uptime is the agent's clock: 15 minutes apart (to the step).
        // (Refused before authentication, their bodies are in the raw log only.)
        let raw = try panel.admin(["requests", "--server", id, "--raw"])
        let uptimes = raw.components(separatedBy: "\"uptime_s\":").dropFirst()
            .compactMap { Int($0.prefix { $0.isNumber }) }.filter { $0 >= 660 }
        #expect(uptimes.count == 4, "the revoking heartbeat, then one per 15 minutes: \(uptimes)")
        for (earlier, later) in zip(uptimes, uptimes.dropFirst()) {
            #expect((900...965).contains(later - earlier), "heartbeats \(later - earlier) s apart: \(uptimes)")
        }
        for path in ["/commands/poll", "/snapshots"] {
            // One try may still end a back-off begun before the mark; then one per 15 minutes.
            #expect((1...5).contains(count(during, path)), "\(count(during, path)) \(path) requests in 46 minutes")
        }
        let status = Capture()
        #expect(Agent.main(arguments: ["status", "--config", conf], output: status.output) == 0)
        #expect(status.stdout.contains("REVOKED"), "\(status.stdout)")
        // The panel knows it again: the next try clears the mark and the spool goes out.
        try panel.admin(["unrevoke", id])
        let spool = SnapshotSpool(directory: dir + "/state/spool", maxBytes: 1 << 26)
        #expect(!spool.entries().isEmpty, "a snapshot waited while revoked")
        for _ in 0..<16 where try store.load()?.status != .registered || !spool.entries().isEmpty {
            try move(to: now + 60)
            usleep(300_000)
        }
        #expect(try Self.waitFor(10) { try store.load()?.status == .registered && spool.entries().isEmpty })
        let stopped = agent.terminate()
        let marked = stopped.stderr.split(separator: "\n").filter { $0.contains("marked revoked") }
        #expect(marked.count == 1, "logged once:\n\(stopped.stderr)")
        #expect(stopped.stderr.contains("revocation cleared"))
        #expect(stopped.stderr.contains("MYOSICAM_TEST_CLOCK_FILE is set"), "the test clock never goes unnoticed")
    }

    /// A signed `200` whose body is not the contract's JSON object (fault `garbage`: the panel did
    /// not process the result) is not an acknowledgement: the result is sent again, and reaches
    /// the panel without relying on the panel to deliver the command again.
    @Test(arguments: ["garbage", "invalid-json", "invalid-utf8"])
    func aResultAnsweredWithoutItsJSONIsSentAgain(_ fault: String) throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--redeliver-after", "600"])
        let (conf, _) = try Self.agentConf(panel, tree: try Self.tree())
        let (agent, id) = try Self.pausedOnACommand(panel, conf: conf, at: "command:recorded", id: "cmd_garbage_ack")
        let pid = agent.process.processIdentifier
        try panel.admin(["fault", fault])
        kill(pid, SIGCONT)
        #expect(try Self.waitFor(10) {
            try panel.admin(["requests", "--server", id]).contains("/commands/cmd_garbage_ack/result")
        }, "the result was sent under the fault")
        try panel.admin(["fault", "none"])
        #expect(try Self.waitFor(15) { try panel.admin(["results", id]).contains("cmd_garbage_ack") },
                "the result reaches the panel once it answers properly")
        _ = agent.terminate()
    }

    static func rssMB(_ pid: Int32) -> Double {
        let text = String(decoding: readBytes("/proc/\(pid)/statm") ?? [], as: UTF8.self)
        let pages = text.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return pages * 4096 / 1_048_576
    }

    @Test func notifiesSystemdAndReReadsTheEnableListOnSIGHUP() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let (conf, dir) = try Self.agentConf(panel, tree: try Self.tree())
        // The test plays systemd: a datagram socket the agent writes to (the agent itself never binds).
        let socketPath = dir + "/notify"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in socketPath.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let agent = try Running(["run", "--config", conf, "--allow-root"],
                                environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "1000000"])
        var messages: [String] = []
        _ = Self.waitFor(15) {
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
            }
            return messages.contains("READY=1") && messages.filter { $0 == "WATCHDOG=1" }.count >= 2
        }
        #expect(messages.contains("READY=1") && messages.contains("WATCHDOG=1"), "\(messages)")
        try TestEnvironment.write("instances\n", to: dir + "/collectors.conf")
        kill(agent.process.processIdentifier, SIGHUP)
        usleep(1_500_000)
        let stopped = agent.terminate()
        #expect(stopped.stderr.contains("collector enable list re-read") && stopped.stderr.contains("collectors=instances"),
                "\(stopped.stderr)")
        var buffer = [UInt8](repeating: 0, count: 256)
        var sawStopping = false
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            sawStopping = sawStopping || String(decoding: buffer[0..<count], as: UTF8.self) == "STOPPING=1"
        }
        #expect(sawStopping)
    }

    /// The state directory on a tiny file system that fills up: the agent says so once, keeps
    /// heartbeating, and spools again when space returns. Needs root to mount a tmpfs.
    @Test func survivesAFullDisk() throws {
        guard getuid() == 0 else {
            Issue.record("this test mounts a size-limited tmpfs and needs root (CI runs as root)")
            return
        }
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--snapshot-interval", "1"])
        let tree = try Self.tree()
        let (conf, dir) = try Self.agentConf(panel, tree: tree)
        let state = dir + "/state"
        let unmount = try Self.mountTmpfs(state, size: "512k")
        defer { unmount() }
        let agent = try Running(["run", "--config", conf, "--allow-root"])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let id = try #require(server)
        #expect(try Self.waitFor(10) { try !Self.snapshots(panel, id).isEmpty })
        Self.fill(state + "/filler")
        let user = String(decoding: try #require(readBytes(tree + "/oscam.user")), as: UTF8.self)
        try TestEnvironment.write(user + "\n[account]\nuser = full-disk\n", to: tree + "/oscam.user")
        let beatsBefore = try panel.admin(["heartbeats", id]).split(separator: "\n").count
        usleep(3_000_000)
        #expect(agent.process.isRunning)
        #expect(try panel.admin(["heartbeats", id]).split(separator: "\n").count > beatsBefore, "heartbeats go on")
        unlink(state + "/filler")
        try TestEnvironment.write(user + "\n[account]\nuser = space-again\n", to: tree + "/oscam.user")
        #expect(try Self.waitFor(20) {
            try Self.snapshots(panel, id).compactMap { $0["seq"] as? Int }.count >= 2
        })
        let stopped = agent.terminate()
        let full = stopped.stderr.split(separator: "\n").filter { $0.contains("disk is full") || $0.contains("No space") }
        #expect(!full.isEmpty, "the full disk is reported:\n\(stopped.stderr)")
        #expect(full.count <= 4, "once per state change, not per try:\n\(full.joined(separator: "\n"))")
    }

    /// The agent, registered, stopped at pause point `point` of a `resync` command `id`; and the
    /// server id.
    static func pausedOnACommand(_ panel: DevPanelProcess, conf: String, at point: String,
                                 id: String) throws -> (Running, String) {
        let agent = try Running(["run", "--config", conf, "--allow-root"], environment: ["MYOSICAM_TEST_PAUSE_AT": point])
        var server: String?
        #expect(try Self.waitFor(15) { server = try Self.serverID(panel); return server != nil })
        let serverID = try #require(server)
        try panel.admin(["command", serverID, "{\"id\":\"\(id)\",\"type\":\"resync\"}"])
        let pid = agent.process.processIdentifier
        #expect(Self.waitFor(20) { CommandTests.isStopped(pid) }, "the agent reached \(point)")
        return (agent, serverID)
    }

    /// A size-limited tmpfs on `path` (a new directory); returns what unmounts it. Needs root.
    static func mountTmpfs(_ path: String, size: String) throws -> () -> Void {
        #expect(mkdir(path, 0o700) == 0)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", path]
        try mount.run()
        mount.waitUntilExit()
        #expect(mount.terminationStatus == 0)
        return {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", path]
            try? umount.run()
            umount.waitUntilExit()
        }
    }

    /// Writes `path` until its file system is full.
    static func fill(_ path: String) {
        let filler = open(path, O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0x7A, count: 4096)
        while write(filler, block, block.count) > 0 {}
        close(filler)
    }

    /// A command ran, and its result cannot be written (the state dir filled up meanwhile): the
    /// result is kept and recorded, then sent, once there is space again — not left unanswered
    /// until the agent restarts.
    @Test func aResultThatCannotBeRecordedIsSentOnceThereIsSpace() throws {
        guard getuid() == 0 else {
            Issue.record("this test mounts a size-limited tmpfs and needs root (CI runs as root)")
            return
        }
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1", "--redeliver-after", "600"])
        let (conf, dir) = try Self.agentConf(panel, tree: try Self.tree())
        let state = dir + "/state"
        let unmount = try Self.mountTmpfs(state, size: "512k")
        defer { unmount() }
        let (agent, id) = try Self.pausedOnACommand(panel, conf: conf, at: "command:ran", id: "cmd_full_result")
        let pid = agent.process.processIdentifier
        Self.fill(state + "/filler")
        kill(pid, SIGCONT)
        usleep(3_000_000)
        #expect(try !panel.admin(["results", id]).contains("cmd_full_result"), "nothing to send while unrecorded")
        unlink(state + "/filler")
        #expect(try Self.waitFor(20) { try panel.admin(["results", id]).contains("\"status\":\"succeeded\"") })
        let stopped = agent.terminate()
        #expect(stopped.stderr.contains("recorded after all"), "\(stopped.stderr)")
    }

    /// Two daemons on one state dir would each run commands and roll back each other's edits at
    /// start-up: the second refuses (75, systemd tries again later), until the first is gone.
    @Test func aSecondAgentOnTheSameStateDirRefusesToStart() throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1"])
        let (conf, _) = try Self.agentConf(panel, tree: try Self.tree())
        let first = try Running(["run", "--config", conf, "--allow-root"])
        #expect(try Self.waitFor(15) { try Self.serverID(panel) != nil })
        let second = try Running(["run", "--config", conf, "--allow-root"])
        second.process.waitUntilExit()
        #expect(second.process.terminationStatus == Exit.tempfail)
        let refused = String(decoding: second.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(refused.contains("another myosicam-agent is running"), "\(refused)")
        #expect(first.process.isRunning)
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let third = try Running(["run", "--config", conf, "--allow-root"])
        usleep(1_500_000)
        #expect(third.process.isRunning, "the lock goes with the process, also on SIGKILL")
        #expect(third.terminate().status == 0)
    }

    @Test func refusesToRunAsRootWithoutAllowRoot() throws {
        guard getuid() == 0 else {
            return
        }
        let panel = try DevPanelProcess()
        let (conf, _) = try Self.agentConf(panel, tree: try Self.tree())
        let capture = Capture()
        #expect(Agent.main(arguments: ["run", "--config", conf], output: capture.output) == Exit.config)
        #expect(capture.log.lines.joined().contains("refusing to run as root"))
    }
}
