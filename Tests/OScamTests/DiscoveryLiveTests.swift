import Testing

@testable import OScam

#if canImport(Glibc)
import Glibc
#endif

/// Discovery against the real `/proc` with real processes: a tiny C program named `oscam` that
/// forks once like OScam's restart watchdog (parent waits, child works).
@Suite struct DiscoveryLiveTests {
    static let standInSource = """
        #include <errno.h>
        #include <sys/types.h>
        #include <sys/wait.h>
        #include <unistd.h>

        /* An OScam stand-in: ignores its arguments, forks once; the parent (watchdog) waits for
           the child (worker), which sleeps for up to 60 s. */
        int main(void) {
            pid_t child = fork();
            if (child < 0) return 1;
            if (child == 0) {
                for (int i = 0; i < 600; i++) usleep(100000);
                return 0;
            }
            int status = 0;
            while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
            return 0;
        }
        """

    @Test(.timeLimit(.minutes(1)))
    func realWatchdogAndWorkerAreFoundThenStopped() throws {
        let tree = try DiscoveryTempDir()
        defer { tree.remove() }
        guard let compiler = Self.findCCompiler() else {
            Issue.record(
                "no C compiler: neither clang next to the swift binary nor cc on PATH; cannot run the live test")
            return
        }
        let source = try tree.write("standin.c", Self.standInSource)
        let binary = tree.at("bin/oscam")
        try tree.mkdir("bin")
        let compileStatus = try Self.run([compiler, "-O0", "-o", binary, source])
        try #require(compileStatus == 0, "compiling the stand-in with \(compiler) failed")

        let config = try tree.mkdir("etc/oscam")
        try tree.write("etc/oscam/oscam.conf", "[global]\n")
        let temp = try tree.mkdir("tmp/.oscam")
        let pidFile = tree.at("run/oscam.pid")
        try tree.mkdir("run")

        let watchdog = try Self.spawn([binary, "-b", "-c", config, "-t", temp, "-B", pidFile])
        var worker: pid_t?
        var reaped = false
        func stop() {
            if let worker { kill(worker, SIGKILL) }
            if !reaped {
                kill(watchdog, SIGKILL)
                var status: Int32 = 0
                while waitpid(watchdog, &status, 0) < 0 && errno == EINTR {}
                reaped = true
            }
        }
        defer { stop() }

        let table = LinuxProcTable()
        worker = Self.waitForChild(of: watchdog, in: table)
        let workerPID = try #require(worker, "the stand-in's worker did not appear in /proc")

        // What OScam itself writes: the worker in the pid file, the watchdog as PID in the version file.
        try tree.write("run/oscam.pid", "\(workerPID)\n")
        try tree.write(
            "tmp/.oscam/oscam.version",
            versionFileText(pid: watchdog, configDir: config + "/", tempDir: temp, startTime: Int64(time(nil))))

        let discovery = Discovery(
            options: DiscoveryOptions(
                auto: true, procRoot: "/proc", systemdDirs: [], versionDirs: [temp], extraConfigDirs: [],
                defaultConfigDirs: []),
            procTable: table)

        let running = discovery.discover()
        let found = try #require(running.instances.first { $0.configDir == config + "/" })
        #expect(found.state == .running)
        #expect(found.workerPID == workerPID)
        #expect(found.watchdogPID == watchdog)
        #expect(found.binary == binary)
        #expect(found.pidFile == pidFile)
        #expect(found.tempDir == temp)
        #expect(found.provenance == [
            Provenance(source: .process, detail: "pid \(workerPID)"),
            Provenance(source: .versionFile, detail: temp + "/oscam.version"),
        ])
        #expect(running.problems.filter { $0.path.hasPrefix(tree.path) } == [])

        stop()

        let stopped = discovery.discover()
        let after = try #require(stopped.instances.first { $0.configDir == config + "/" })
        #expect(after.state == .stopped)
        #expect(after.workerPID == nil)
        #expect(after.watchdogPID == nil)
        #expect(after.provenance == [Provenance(source: .versionFile, detail: temp + "/oscam.version")])
        // With the process gone, nothing tells `-B` any more: OScam's default applies.
        #expect(after.pidFile == temp + "/oscam.pid")
    }

    // MARK: - Helpers

    /// clang next to the `swift` binary on PATH (the toolchain's), else `cc` on PATH.
    static func findCCompiler() -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init)
        if let swift = dirs.lazy.map({ $0 + "/swift" }).first(where: { access($0, X_OK) == 0 }),
           let real = realpath(swift, nil) {
            let resolved = String(cString: real)
            free(real)
            let clang = String(resolved[..<(resolved.lastIndex(of: "/") ?? resolved.endIndex)]) + "/clang"
            if access(clang, X_OK) == 0 { return clang }
        }
        return dirs.lazy.map { $0 + "/cc" }.first { access($0, X_OK) == 0 }
    }

    /// Starts `argv` with posix_spawn and returns its pid.
    static func spawn(_ argv: [String]) throws -> pid_t {
        var pid: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        let result = arguments.withUnsafeBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return EINVAL }
            return posix_spawn(&pid, argv[0], nil, nil, base, environ)
        }
        guard result == 0 else { throw DiscoveryTestError("posix_spawn \(argv[0]) failed: \(result)") }
        return pid
    }

    /// Runs `argv` to completion and returns its exit status (or -1 when killed by a signal).
    static func run(_ argv: [String]) throws -> Int32 {
        let pid = try spawn(argv)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw DiscoveryTestError("waitpid failed: errno \(errno)") }
        }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }

    /// Polls the process table for a child of `parent`, for up to 5 s.
    static func waitForChild(of parent: pid_t, in table: LinuxProcTable) -> pid_t? {
        for _ in 0..<100 {
            for pid in table.pids() where table.process(pid)?.ppid == parent { return pid }
            usleep(50_000)
        }
        return nil
    }
}
