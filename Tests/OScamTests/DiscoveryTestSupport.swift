import FoundationEssentials
import Testing

@testable import OScam

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Temp trees

/// A real temporary directory, removed by `remove()` (call it in a `defer`).
struct DiscoveryTempDir {
    let path: String

    init() throws {
        var template = Array("/tmp/oscam-discovery-test-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard created else { throw DiscoveryTestError("mkdtemp failed: errno \(errno)") }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` joined with a relative path.
    func at(_ relative: String) -> String { DiscoveryPath.join(path, relative) }

    /// Creates a directory (and its parents) under the temp dir; returns its absolute path.
    @discardableResult
    func mkdir(_ relative: String) throws -> String {
        let full = at(relative)
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }

    /// Writes a file (creating parent directories); returns its absolute path.
    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String {
        try write(relative, bytes: Array(text.utf8))
    }

    /// Writes raw bytes (creating parent directories); returns its absolute path.
    @discardableResult
    func write(_ relative: String, bytes: [UInt8]) throws -> String {
        let full = at(relative)
        try FileManager.default.createDirectory(
            atPath: String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)]), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: full, contents: Data(bytes)) else {
            throw DiscoveryTestError("cannot write \(full)")
        }
        return full
    }

    /// Creates a symbolic link at `relative` pointing at `target` (which need not exist).
    func symlink(_ relative: String, to target: String) throws {
        let full = at(relative)
        try FileManager.default.createDirectory(
            atPath: String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)]), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct DiscoveryTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Fixture proc trees

/// Builds a directory shaped like `/proc`: `<root>/<pid>/{stat,cmdline,comm,cgroup,exe,cwd}` and
/// `<root>/stat` with `btime`.
struct ProcFixture {
    let root: String
    let tree: DiscoveryTempDir
    let relativeRoot: String

    init(in tree: DiscoveryTempDir, name: String = "proc", bootTime: Int64 = 1_795_900_000) throws {
        self.tree = tree
        self.relativeRoot = name
        self.root = try tree.mkdir(name)
        try tree.write("\(name)/stat", "cpu  1 2 3 4\nintr 0\nctxt 5\nbtime \(bootTime)\nprocesses 9\n")
    }

    /// Adds a process. `argv` is written NUL-separated with a trailing NUL, as the kernel does.
    @discardableResult
    func add(
        pid: Int32, ppid: Int32, comm: String? = nil, argv: [String], state: Character = "S",
        startTicks: UInt64 = 1000, threads: Int = 1, exe: String? = nil, cwd: String? = "/",
        cgroup: String? = "0::/system.slice/oscam.service"
    ) throws -> ProcProcess {
        let name = comm ?? String(DiscoveryPath.basename(argv.first ?? "").prefix(15))
        let dir = "\(relativeRoot)/\(pid)"
        try tree.write("\(dir)/stat", Self.statLine(
            pid: pid, comm: name, state: state, ppid: ppid, threads: threads, startTicks: startTicks))
        try tree.write("\(dir)/comm", name + "\n")
        try tree.write("\(dir)/cmdline", bytes: argv.flatMap { Array($0.utf8) + [0] })
        if let cgroup { try tree.write("\(dir)/cgroup", cgroup + "\n") }
        if let exe { try tree.symlink("\(dir)/exe", to: exe) }
        if let cwd { try tree.symlink("\(dir)/cwd", to: cwd) }
        return ProcProcess(
            pid: pid, ppid: ppid, comm: name, argv: argv, exe: exe, cwd: cwd, startTicks: startTicks, state: state,
            threads: threads, rssPages: 2048, utimeTicks: 7, stimeTicks: 3,
            cgroupUnit: cgroup.flatMap(LinuxProcTable.parseCgroup))
    }

    /// A complete 52-field stat line.
    static func statLine(
        pid: Int32, comm: String, state: Character, ppid: Int32, threads: Int, startTicks: UInt64
    ) -> String {
        "\(pid) (\(comm)) \(state) \(ppid) \(pid) \(pid) 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 \(threads) 0 "
            + "\(startTicks) 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    }
}

// MARK: - Helpers

/// The Tests/OScamTests/testdata directory, found relative to this file.
func discoveryTestdata(_ relative: String, filePath: String = #filePath) -> String {
    let testsDir = String(filePath[..<(filePath.lastIndex(of: "/") ?? filePath.endIndex)])
    return DiscoveryPath.join(testsDir + "/testdata", relative)
}

/// Discovery over a fixture tree with nothing standard looked at unless asked for.
func fixtureDiscovery(
    proc: ProcFixture, auto: Bool = true, systemdDirs: [String] = [], versionDirs: [String] = [],
    extraConfigDirs: [String] = [], defaultConfigDirs: [String] = [],
    pidfileSetting: @escaping @Sendable (String) -> String? = { _ in nil }
) -> Discovery {
    Discovery(
        options: DiscoveryOptions(
            auto: auto, procRoot: proc.root, systemdDirs: systemdDirs, versionDirs: versionDirs,
            extraConfigDirs: extraConfigDirs, defaultConfigDirs: defaultConfigDirs),
        procTable: LinuxProcTable(root: proc.root), pidfileSetting: pidfileSetting)
}

/// An `oscam.version` file in the current format.
func versionFileText(
    pid: Int32, configDir: String, tempDir: String, startTime: Int64 = 1_795_900_010, webifPort: Int = 8888
) -> String {
    """
    Unix Starttime: \(startTime)
    Starttime:      29.11.2026 09:47:09
    Build Date:     29.11.2026 09:43:41
    Version:        2.26.05-11961@5b6fa7ad
    Compiler:       x86_64-linux-gnu
    Box Type:       generic (generic)
    PID:            \(pid)
    TempDir:        \(tempDir)
    ConfigDir:      \(configDir)
    WebifPort:      \(webifPort)

    Web interface support:                   yes

    """
}

/// The real file system, except that paths containing one of `denied` fail with
/// `.permissionDenied` (and such links cannot be read), as for an unprivileged agent.
struct DenyingFileSystem: DiscoveryFileSystem {
    let denied: [String]
    let real = RealFileSystem()

    private func isDenied(_ path: String) -> Bool { denied.contains { path.contains($0) } }

    func readFile(_ path: String, limit: Int) throws(DiscoveryFileError) -> [UInt8] {
        if isDenied(path) { throw DiscoveryFileError(.permissionDenied, path: path) }
        return try real.readFile(path, limit: limit)
    }

    func listDirectory(_ path: String) throws(DiscoveryFileError) -> [String] {
        if isDenied(path) { throw DiscoveryFileError(.permissionDenied, path: path) }
        return try real.listDirectory(path)
    }

    func isDirectory(_ path: String) -> Bool { real.isDirectory(path) }
    func readLink(_ path: String) -> String? { isDenied(path) ? nil : real.readLink(path) }
    func fileExists(_ path: String) -> Bool { real.fileExists(path) }
}
