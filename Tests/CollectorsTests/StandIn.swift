import Collectors
import Foundation
import OScam
import Pipeline
import Platform
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Paths and temp dirs

/// Helpers for running the Python OScam stand-in (tools/oscam-standin) on loopback.
enum StandInSupport {
    static var launcher: String {
        TestEnvironment.packageRoot + "/tools/oscam-standin/oscam"
    }

    /// The wall-clock time in Unix seconds.
    static func unixNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }
}

struct StandInError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

// MARK: - Ports

// MARK: - The stand-in process

/// One OScam stand-in, run in the foreground with `-r 0` (a single process, so the test's own
/// `Process` is the worker and is reaped by the test). Its config dir, temp dir, pid file and log
/// live in a fresh temp dir; `stop()` ends it and removes that dir.
final class OScamStandIn {
    let root: String
    let configDir: String
    let tempDir: String
    let pidFile: String
    let logFile: String
    let outputFile: String
    private let process = Process()

    var confPath: String {
        configDir + "oscam.conf"
    }

    /// The `[webif]` section, and a `[global]` that logs to our file. A nil `allowed` leaves
    /// `httpallowed` out: OScam then allows nobody (OSCAM.md §4.2 note).
    static func conf(logFile: String, httpport: String, user: String? = "admin", pwd: String? = "Standin-Pw-7781",
                     allowed: String? = "127.0.0.1", readonly: Bool = false, serverip: String? = nil) -> String {
        var text = "[global]\nlogfile = \(logFile)\n\n[webif]\nhttpport = \(httpport)\n"
        if let serverip {
            text += "serverip = \(serverip)\n"
        }
        if let user {
            text += "httpuser = \(user)\n"
        }
        if let pwd {
            text += "httppwd = \(pwd)\n"
        }
        if let allowed {
            text += "httpallowed = \(allowed)\n"
        }
        if readonly {
            text += "httpreadonly = 1\n"
        }
        return text
    }

    /// Writes the files (`conf` gets the log file's path) without starting anything.
    init(label: String, conf: (_ logFile: String) -> String, files: [String: String] = [:]) throws {
        root = try TestEnvironment.makeTempDir(label)
        configDir = root + "/cfg/"
        tempDir = root + "/tmp"
        pidFile = root + "/oscam.pid"
        logFile = root + "/oscam.log"
        outputFile = root + "/standin.out"
        do {
            try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
            try TestEnvironment.write(conf(logFile), to: confPath)
            for (name, text) in files {
                try TestEnvironment.write(text, to: configDir + name)
            }
        } catch {
            TestEnvironment.removeTree(root)
            throw error
        }
    }

    /// Writes the files, reserves nothing, starts the stand-in unless `start` is false, waits
    /// until its WebIF listens on `port` (when given), runs `body`, and always stops it and
    /// removes its files, also when `body` throws.
    static func with<T>(
        label: String, port: ReservedPort?, start: Bool = true, environment: [String: String] = [:],
        files: [String: String] = [:], conf: (_ logFile: String) -> String,
        _ body: (OScamStandIn) async throws -> T
    ) async throws -> T {
        let standIn = try OScamStandIn(label: label, conf: conf, files: files)
        do {
            if start {
                port?.release()
                try standIn.start(environment: environment)
                if let port {
                    try await standIn.waitUntilListening(port: port.port)
                }
            }
            let result = try await body(standIn)
            await standIn.stop()
            return result
        } catch {
            await standIn.stop()
            throw error
        }
    }

    /// Starts the stand-in. `environment` adds the test knobs (OSCAM_STANDIN_*).
    func start(environment: [String: String] = [:]) throws {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OSCAM_STANDIN_") }
        env["OSCAM_STANDIN_VERSION"] = "2.26.05-11961@5b6fa7ad"
        env.merge(environment) { _, new in new }
        _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: StandInSupport.launcher)
        process.arguments = ["-r", "0", "-c", configDir, "-t", tempDir, "-B", pidFile]
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        let output = FileHandle(forWritingAtPath: outputFile)
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the log says the WebIF listens on `port`. Generous: a loaded CI box starts
    /// a dozen Python processes at once.
    func waitUntilListening(port: Int, timeout: Double = 40) async throws {
        let listening = { () -> Bool in
            let log = TestEnvironment.read(self.logFile)
            return log.contains("Server running.") && log.contains("port=\(port)")
        }
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < end {
            if listening() {
                return
            }
            guard process.isRunning else {
                throw StandInError("stand-in exited (\(process.terminationStatus)) before listening:\n\(diagnostics)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // A starved task may wake up after the deadline: look once more before failing.
        if listening() {
            return
        }
        throw StandInError("stand-in not listening on \(port) after \(timeout) s:\n\(diagnostics)")
    }

    var diagnostics: String {
        "log:\n" + TestEnvironment.read(logFile) + "\noutput:\n" + TestEnvironment.read(outputFile)
    }

    /// The instance discovery would report for this config dir.
    var instance: DiscoveredInstance {
        DiscoveredInstance(
            id: DiscoveredInstance.id(forConfigDir: configDir), name: "standin", configDir: configDir,
            tempDir: tempDir, pidFile: pidFile, provenance: [Provenance(source: .configured, detail: configDir)],
            state: .running)
    }

    /// SIGTERM, up to 5 s for a clean exit, then SIGKILL; removes the temp dir. Polls with
    /// `Task.sleep`, so waiting does not hold one of the few threads the tests share.
    func stop() async {
        if process.processIdentifier > 0 {
            await StandInSupport.terminate(process)
        }
        TestEnvironment.removeTree(root)
    }
}

extension StandInSupport {
    /// SIGTERM, up to 5 s for a clean exit, then SIGKILL and a (short) blocking wait.
    static func terminate(_ process: Process) async {
        let pid = process.processIdentifier
        if process.isRunning {
            kill(pid, SIGTERM)
        }
        for _ in 0..<250 where process.isRunning {
            if (try? await Task.sleep(for: .milliseconds(20))) == nil {
                break   // cancelled: do not wait politely
            }
        }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Runs blocking work (libcurl, waitpid) on a Dispatch thread, off the small cooperative
    /// pool the tests' async code shares.
}

// MARK: - Running the collector

enum WebIfProbe {
    /// Runs the real `webif` collector over libcurl for `instance`, with a deadline `seconds`
    /// away; returns its status and how long the call took.
    static func collect(_ instance: DiscoveredInstance, seconds: Double = 10, webifTimeout: Double = 5)
        async throws -> (status: WebIfStatus, contribution: Contribution, elapsed: Duration) {
        try await TestEnvironment.offPool {
            let discovery = DiscoveryResult(instances: [instance])
            let context = CollectContext(
                discovery: discovery, files: CollectContext.loadFiles(for: discovery), procTable: LinuxProcTable(),
                procRoot: "/proc", http: CurlTransport(), now: StandInSupport.unixNow(), webifTimeout: webifTimeout)
            let clock = ContinuousClock()
            let started = clock.now
            let deadline = started + .milliseconds(Int(seconds * 1000))
            let contribution = try WebIfCollector().collect(context, deadline: deadline)
            let elapsed = clock.now - started
            guard let status = contribution.instances[instance.id]?.webif else {
                throw StandInError("the collector returned no webif status for \(instance.id)")
            }
            return (status, contribution, elapsed)
        }
    }

    /// One GET with libcurl, off the cooperative pool.
    static func get(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await TestEnvironment.offPool {
            try CurlTransport().perform(request)
        }
    }

    /// The expected `starttime` of the API header for a Unix start time: local time,
    /// `%Y-%m-%dT%H:%M:%S%z`, as OScam (and the stand-in) format it.
    static func isoLocal(_ unix: Int64) -> String {
        var time = time_t(unix)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `Unix Starttime:` of the stand-in's oscam.version.
    static func unixStartTime(versionFile: String) -> Int64? {
        for line in TestEnvironment.read(versionFile).split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "unix starttime" {
                return Int64(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }
}

// MARK: - A plain static web server

/// `python3 -m http.server` on 127.0.0.1 serving a fresh directory: a WebIF port answered by
/// something that is not OScam. `/oscamapi.json?part=status` serves the file `oscamapi.json`
/// (its query string is ignored); without that file the answer is 404.
final class StaticWebServer {
    let root: String
    let port: Int
    private let process = Process()

    /// Starts the server on `port` (released first), waits until it accepts connections, runs
    /// `body`, and always stops it.
    static func with<T>(port reserved: ReservedPort, statusBody: String?, _ body: () async throws -> T)
        async throws -> T {
        let server = try StaticWebServer(port: reserved, statusBody: statusBody)
        do {
            try await server.waitUntilListening()
            let result = try await body()
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    private init(port reserved: ReservedPort, statusBody: String?) throws {
        root = try TestEnvironment.makeTempDir("static-web")
        port = reserved.port
        let docs = root + "/docs"
        do {
            try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
            if let statusBody {
                try TestEnvironment.write(statusBody, to: docs + "/oscamapi.json")
            }
            reserved.release()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1",
                                 "--directory", docs]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        } catch {
            TestEnvironment.removeTree(root)
            throw error
        }
    }

    /// Polls until a TCP connect to the port succeeds.
    private func waitUntilListening(timeout: Double = 40) async throws {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < end {
            if Self.connects(port) {
                return
            }
            guard process.isRunning else {
                throw StandInError("http.server exited (\(process.terminationStatus))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        if Self.connects(port) {
            return
        }
        throw StandInError("http.server not listening on \(port) after \(timeout) s")
    }

    private static func connects(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            return false
        }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) }
        } == 0
    }

    private func stop() async {
        if process.processIdentifier > 0 {
            await StandInSupport.terminate(process)
        }
        TestEnvironment.removeTree(root)
    }
}
