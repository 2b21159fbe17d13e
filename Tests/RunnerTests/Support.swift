import Foundation
import TestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Paths

/// Where the package and the built agent are.
enum E2EPaths {
    static let packageRoot = TestEnvironment.packageRoot

    static var exampleAgentConf: String {
        packageRoot + "/config/example/agent.conf"
    }

    static var exampleOScamDir: String {
        packageRoot + "/config/example/oscam"
    }

    static var standInLauncher: String {
        packageRoot + "/tools/oscam-standin/oscam"
    }

    /// The built `myosicam-agent`: next to the running test binary when it is there (SwiftPM
    /// puts both in the same products directory), else in `.build-e2e/debug` or `.build/debug`.
    static let agentBinary: String? = {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let first = CommandLine.arguments.first {
            let running = URL(fileURLWithPath: first).resolvingSymlinksInPath()
            var directory = running.deletingLastPathComponent()
            // Swift Testing on Linux may run the `.xctest` file itself or a helper inside a bundle.
            for _ in 0..<3 {
                candidates.append(directory.appendingPathComponent("myosicam-agent").path)
                directory = directory.deletingLastPathComponent()
            }
        }
        candidates += [packageRoot + "/.build-e2e/debug/myosicam-agent", packageRoot + "/.build/debug/myosicam-agent"]
        return candidates.first { fileManager.isExecutableFile(atPath: $0) }
    }()
}

// MARK: - Temp dirs and files

struct E2EError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

// MARK: - Running the agent

/// One finished run of the agent binary.
struct AgentRun {
    let status: Int32
    let stdout: [UInt8]
    let stderr: [UInt8]

    var stdoutText: String {
        String(decoding: stdout, as: UTF8.self)
    }

    var stderrText: String {
        String(decoding: stderr, as: UTF8.self)
    }

    /// stderr split into lines, without the empty string after the last newline.
    var stderrLines: [String] {
        var lines = stderrText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" {
            lines.removeLast()
        }
        return lines
    }

    /// stdout parsed as a JSON object.
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(stdout)) as? [String: Any] else {
            throw E2EError("stdout is not a JSON object:\n\(stdoutText)")
        }
        return object
    }

    /// A `key=value` field of the first stderr line that has it.
    func logField(_ key: String) -> String? {
        for line in stderrLines {
            for field in line.split(separator: " ") where field.hasPrefix(key + "=") {
                return String(field.dropFirst(key.count + 1))
            }
        }
        return nil
    }
}

/// A boolean set once, read from another thread.
final class E2EFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() {
        value.store(true, ordering: .sequentiallyConsistent)
    }

    var isSet: Bool {
        value.load(ordering: .sequentiallyConsistent)
    }
}

/// Bytes read on another thread.
final class E2EBytes: Sendable {
    private let storage = Mutex<Data>(Data())

    func set(_ data: Data) {
        storage.withLock { $0 = data }
    }

    var value: [UInt8] {
        storage.withLock { Array($0) }
    }
}

enum AgentProcess {
    /// Runs the built agent with stdout and stderr on pipes; kills it after `timeout` seconds.
    /// The waiting happens on a Dispatch thread, off the small cooperative pool.
    static func run(_ arguments: [String], timeout: Double = 30) async throws -> AgentRun {
        try await TestEnvironment.offPool {
            try runBlocking(arguments, timeout: timeout)
        }
    }

    private static func runBlocking(_ arguments: [String], timeout: Double) throws -> AgentRun {
        guard let binary = E2EPaths.agentBinary else {
            throw E2EError("myosicam-agent not built; run swift build --build-tests first")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: E2EPaths.packageRoot)
        process.standardInput = FileHandle.nullDevice
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        try process.run()
        let pid = process.processIdentifier
        let finished = E2EFlag()
        let killer = DispatchWorkItem {
            if !finished.isSet {
                kill(pid, SIGKILL)
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let errors = E2EBytes()
        let errHandle = errPipe.fileHandleForReading
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            errors.set(errHandle.readDataToEndOfFile())
        }
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        finished.set()
        killer.cancel()
        if process.terminationReason == .uncaughtSignal {
            throw E2EError("myosicam-agent \(arguments) was killed (signal \(process.terminationStatus))")
        }
        return AgentRun(status: process.terminationStatus, stdout: Array(out), stderr: errors.value)
    }
}

// MARK: - Loopback ports

// MARK: - Processes

enum E2EProcesses {
    /// Whether `pid` is gone or a zombie (daemonized stand-ins are reaped by init, later).
    static func isGone(_ pid: Int32) -> Bool {
        let stat = TestEnvironment.read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else {
            return true
        }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state == "Z" || state == "X"
    }

    /// Live processes whose command line contains `marker` (a unique temp dir of ours).
    static func pids(withCommandLineContaining marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
                return false
            }
            let text = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return text.contains(marker) && !isGone(pid)
        }
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// posix_spawn with stdio on /dev/null, every other descriptor closed (glibc's
    /// `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not export),
    /// default signal handling and an empty signal mask; then waits for the child. Returns the
    /// raw wait status, or nil when someone else reaped the child.
    static func spawnAndWait(_ path: String, _ arguments: [String], environment: [String: String]) throws -> Int32? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        guard let libc = dlopen(nil, RTLD_NOW),
              let symbol = dlsym(libc, "posix_spawn_file_actions_addclosefrom_np") else {
            throw E2EError("posix_spawn_file_actions_addclosefrom_np not available")
        }
        let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
        guard addCloseFrom(&actions, 3) == 0 else {
            throw E2EError("posix_spawn_file_actions_addclosefrom_np failed")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE, SIGCHLD] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp {
                free(pointer)
            }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard spawned == 0 else {
            throw E2EError("posix_spawn \(path) failed: \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno == EINTR {
                continue
            }
            return nil
        }
        return status
    }

    /// Polls until every pid is gone; returns false on timeout (or when cancelled).
    static func waitUntilGone(_ pids: [Int32], timeout: Double) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < end {
            if pids.allSatisfy(isGone) {
                return true
            }
            if (try? await Task.sleep(for: .milliseconds(20))) == nil {
                break
            }
        }
        return pids.allSatisfy(isGone)
    }
}

/// An OScam stand-in started the way OScam is started on a server: `-b` (daemon, with the
/// restart watchdog), `-c`, `-t`, `-B`, everything in a fresh temp dir.
final class DaemonStandIn {
    let root: String
    let configDir: String
    let tempDir: String
    let pidFile: String
    let logFile: String

    /// Writes the files, releases `port` and starts the daemon, waits until its WebIF listens,
    /// runs `body`, and always ends every process of ours and removes the files, also when
    /// `body` throws.
    static func with<T>(
        label: String, port: ReservedPort, password: String, environment: [String: String] = [:],
        extraConf: String = "", webifExtra: String = "", _ body: (DaemonStandIn) async throws -> T
    ) async throws -> T {
        let standIn = try DaemonStandIn(label: label, webifPort: port.port, password: password, extraConf: extraConf,
                                        webifExtra: webifExtra)
        do {
            port.release()
            try await standIn.start(environment: environment)
            if webifExtra.contains("httpport = 0") {
                try await standIn.waitForPIDFile()
            } else {
                try await standIn.waitUntilListening(port: port.port)
            }
            let result = try await body(standIn)
            await standIn.cleanUp()
            return result
        } catch {
            await standIn.cleanUp()
            throw error
        }
    }

    init(label: String, webifPort: Int, password: String, extraConf: String = "", webifExtra: String = "") throws {
        root = try TestEnvironment.makeTempDir(label)
        configDir = root + "/cfg/"
        tempDir = root + "/tmp"
        pidFile = root + "/oscam.pid"
        logFile = root + "/oscam.log"
        do {
            try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
            try TestEnvironment.write("""
                [global]
                logfile = \(logFile)
                \(extraConf)
                [webif]
                httpport = \(webifPort)
                httpuser = admin
                httppwd = \(password)
                httpallowed = 127.0.0.1
                \(webifExtra)

                """, to: configDir + "oscam.conf")
            try TestEnvironment.write("[account]\nuser = livetest\npwd = \(password)x\n", to: configDir + "oscam.user")
        } catch {
            TestEnvironment.removeTree(root)
            throw error
        }
    }

    /// Runs the launcher, which returns once the daemon has forked away.
    ///
    /// Not through Foundation's `Process`: it learns that a child ended when a socket it passes
    /// to the child closes, and the daemon inherits that socket, so `waitUntilExit()` would wait
    /// for the daemon, not for the launcher.
    func start(environment extra: [String: String] = [:]) async throws {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OSCAM_STANDIN_") }
        environment["OSCAM_STANDIN_VERSION"] = "2.26.05-11961@5b6fa7ad"
        environment.merge(extra) { _, new in new }
        let arguments = ["-b", "-c", configDir, "-t", tempDir, "-B", pidFile]
        let status = try await TestEnvironment.offPool { [environment] in
            try E2EProcesses.spawnAndWait(E2EPaths.standInLauncher, arguments, environment: environment)
        }
        // nil: someone else reaped the launcher; waitUntilListening tells whether it worked.
        if let status, status != 0 {
            throw E2EError("the stand-in launcher failed with wait status \(status)")
        }
    }

    /// Waits until the log says the WebIF listens on `port` for the `times`-th time (a restarted
    /// worker logs it again).
    func waitUntilListening(port: Int, times: Int = 1, timeout: Double = 40) async throws {
        let listening = { () -> Bool in
            let log = TestEnvironment.read(self.logFile)
            return log.components(separatedBy: "Server running. ip=127.0.0.1 port=\(port)").count > times
        }
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < end {
            if listening() {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // A starved task may wake up after the deadline: look once more before failing.
        if listening() {
            return
        }
        throw E2EError("stand-in not listening on \(port) after \(timeout) s; log:\n\(TestEnvironment.read(logFile))")
    }

    /// For an instance without a WebIF: waits until the worker wrote its pid file.
    func waitForPIDFile(timeout: Double = 40) async throws {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < end {
            if workerPID != nil {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw E2EError("stand-in wrote no pid file after \(timeout) s; log:\n\(TestEnvironment.read(logFile))")
    }

    /// The worker's pid, from the pid file.
    var workerPID: Int32? {
        Int32(TestEnvironment.read(pidFile).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `PID:` of oscam.version: the watchdog.
    var watchdogPID: Int32? {
        for line in TestEnvironment.read(tempDir + "/oscam.version").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0] == "PID" {
                return Int32(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }

    /// SIGTERM to every process of ours (found by our unique temp dir in its command line),
    /// SIGKILL after 5 s; then removes the temp dir.
    func cleanUp() async {
        let pids = E2EProcesses.pids(withCommandLineContaining: root)
        for pid in pids {
            kill(pid, SIGTERM)
        }
        if await !E2EProcesses.waitUntilGone(pids, timeout: 5) {
            for pid in pids where !E2EProcesses.isGone(pid) {
                kill(pid, SIGKILL)
            }
            _ = await E2EProcesses.waitUntilGone(pids, timeout: 2)
        }
        TestEnvironment.removeTree(root)
    }
}

// MARK: - Secrets of the example tree

/// Every secret value in config/example/oscam/*/: what must never appear in the agent's output.
enum ExampleSecrets {
    static let keys: Set<String> = ["pwd", "httppwd", "httpuser", "password", "key", "boxkey", "nodeid", "device",
                                    "hostname"]

    static func values() throws -> [(file: String, key: String, value: String)] {
        var found: [(file: String, key: String, value: String)] = []
        let root = E2EPaths.exampleOScamDir
        for instance in try FileManager.default.contentsOfDirectory(atPath: root).sorted() {
            let directory = root + "/" + instance
            for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
                let path = directory + "/" + name
                for line in TestEnvironment.read(path).split(separator: "\n") {
                    let text = line.trimmingCharacters(in: .whitespaces)
                    guard !text.hasPrefix("#"), !text.hasPrefix("["),
                          let equals = text.firstIndex(of: "=") else {
                        continue
                    }
                    let key = text[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
                    let value = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                    guard !value.isEmpty else {
                        continue
                    }
                    if keys.contains(key) || (key == "user" && name == "oscam.server") {
                        found.append((path, key, value))
                        if key == "device", let comma = value.firstIndex(of: ",") {
                            found.append((path, "device host", String(value[..<comma])))
                        }
                    }
                    if key == "port", let open = value.firstIndex(of: "{"), let close = value.firstIndex(of: "}"),
                       open < close {
                        found.append((path, "port DES key", String(value[value.index(after: open)..<close])))
                    }
                }
            }
        }
        return found
    }
}

// MARK: - SHA-256

/// FIPS 180-4 SHA-256, small and slow: the test checks the agent's hash with its own.
enum TestSHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
        ]
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 {
            data.append(0)
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 {
            (x >> n) | (x << (32 - n))
        }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16
                    | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let choice = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ choice &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ majority
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (index, value) in [a, b, c, d, e, f, g, hh].enumerated() {
                h[index] = h[index] &+ value
            }
        }
        return h.map { word in
            let text = String(word, radix: 16)
            return String(repeating: "0", count: 8 - text.count) + text
        }.joined()
    }
}
