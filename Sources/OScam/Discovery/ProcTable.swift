#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Model

/// One process as seen in the process table.
public struct ProcProcess: Sendable, Equatable {
    /// The process id.
    public var pid: Int32
    /// The parent's process id.
    public var ppid: Int32
    /// The kernel's short command name (`/proc/<pid>/stat` field 2, at most 15 bytes).
    public var comm: String
    /// The command line; empty for kernel threads, zombies and unreadable entries.
    public var argv: [String]
    /// The executable (`/proc/<pid>/exe`); `nil` when not permitted, which is normal for other
    /// users' processes when the agent is unprivileged.
    public var exe: String?
    /// The working directory (`/proc/<pid>/cwd`), needed to resolve relative `-c`/`-t`/`-B`;
    /// `nil` when not permitted.
    public var cwd: String?
    /// Start time in clock ticks after boot (`stat` field 22).
    public var startTicks: UInt64
    /// The state letter (`R`, `S`, `D`, `Z`, …).
    public var state: Character
    /// The number of threads.
    public var threads: Int
    /// Resident set size in pages.
    public var rssPages: Int64
    /// User-mode CPU time in clock ticks.
    public var utimeTicks: UInt64
    /// Kernel-mode CPU time in clock ticks.
    public var stimeTicks: UInt64
    /// The systemd service the process runs in, e.g. `oscam.service`, from `/proc/<pid>/cgroup`.
    public var cgroupUnit: String?

    /// Creates a process value.
    public init(
        pid: Int32, ppid: Int32, comm: String, argv: [String] = [], exe: String? = nil, cwd: String? = nil,
        startTicks: UInt64 = 0, state: Character = "S", threads: Int = 1, rssPages: Int64 = 0,
        utimeTicks: UInt64 = 0, stimeTicks: UInt64 = 0, cgroupUnit: String? = nil
    ) {
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.argv = argv
        self.exe = exe
        self.cwd = cwd
        self.startTicks = startTicks
        self.state = state
        self.threads = threads
        self.rssPages = rssPages
        self.utimeTicks = utimeTicks
        self.stimeTicks = stimeTicks
        self.cgroupUnit = cgroupUnit
    }

    /// Whether the process has exited and only waits to be reaped (`Z`) or is being torn down (`X`).
    public var isDead: Bool { state == "Z" || state == "X" || state == "x" }
}

/// The fields of `/proc/<pid>/stat` that discovery uses.
public struct ProcStat: Sendable, Equatable {
    /// Field 1: the process id.
    public var pid: Int32
    /// Field 2: the command name, without the parentheses.
    public var comm: String
    /// Field 3: the state letter.
    public var state: Character
    /// Field 4: the parent's process id.
    public var ppid: Int32
    /// Field 14: user-mode CPU time in clock ticks.
    public var utimeTicks: UInt64
    /// Field 15: kernel-mode CPU time in clock ticks.
    public var stimeTicks: UInt64
    /// Field 20: the number of threads.
    public var threads: Int
    /// Field 22: start time in clock ticks after boot.
    public var startTicks: UInt64
    /// Field 24: resident set size in pages.
    public var rssPages: Int64
}

// MARK: - Protocol

/// Read access to the process table, so tests can use a fixture tree or a fake.
///
/// Reading is racy by nature: a process listed by ``pids()`` may be gone when ``process(_:)`` is
/// called, which is not an error (it returns `nil`).
public protocol ProcTable: Sendable {
    /// The ids of all visible processes, in no particular order; empty when the table cannot be read.
    func pids() -> [Int32]
    /// One process, or `nil` when it does not exist (any more) or its `stat` cannot be read.
    func process(_ pid: Int32) -> ProcProcess?
    /// One live process that looks like OScam (``Discovery/looksLikeOScam(_:)``), or `nil`. The
    /// default reads the whole process; a table may read less of the processes it rules out.
    func oscamProcess(_ pid: Int32) -> ProcProcess?
    /// The boot time in epoch seconds (`btime` in `<root>/stat`), or `nil` when unknown.
    func bootTime() -> Int64?
    /// Clock ticks per second, the unit of ``ProcProcess/startTicks``. Defaults to `sysconf(_SC_CLK_TCK)`.
    func clockTicksPerSecond() -> Int64
    /// Whether the table hides other users' processes (`/proc` mounted with `hidepid`), so that an
    /// absent process proves nothing. Defaults to `false`.
    func hidesOtherUsersProcesses() -> Bool
}

extension ProcTable {
    /// `sysconf(_SC_CLK_TCK)`, or 100 (the Linux value on every common architecture) if it fails.
    public func clockTicksPerSecond() -> Int64 {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Int64(ticks) : 100
    }

    /// See ``ProcTable/oscamProcess(_:)``.
    public func oscamProcess(_ pid: Int32) -> ProcProcess? {
        process(pid).flatMap { !$0.isDead && Discovery.looksLikeOScam($0) ? $0 : nil }
    }

    /// `false`: a table is complete unless it says otherwise.
    public func hidesOtherUsersProcesses() -> Bool { false }

    /// When `process` started, in epoch seconds, or `nil` when the boot time is unknown.
    public func startTime(of process: ProcProcess) -> Int64? {
        guard let boot = bootTime() else { return nil }
        let ticks = max(clockTicksPerSecond(), 1)
        return boot + Int64(clamping: process.startTicks / UInt64(ticks))
    }
}

// MARK: - Linux implementation

/// The process table of a Linux `/proc` file system, or of a fixture tree shaped like one
/// (`<root>/<pid>/stat`, `cmdline`, `cgroup`, `exe`, `cwd`; `<root>/stat` with `btime`).
public struct LinuxProcTable: ProcTable {
    /// The proc root, `/proc` by default.
    public let root: String
    private let fileSystem: any DiscoveryFileSystem

    /// Creates a table reading `root` through `fileSystem`.
    public init(root: String = "/proc", fileSystem: any DiscoveryFileSystem = RealFileSystem()) {
        self.root = root
        self.fileSystem = fileSystem
    }

    /// See ``ProcTable/pids()``.
    public func pids() -> [Int32] {
        guard let names = try? fileSystem.listDirectory(root) else { return [] }
        return names.compactMap { DiscoveryText.isDigits(Substring($0)) ? Int32($0) : nil }.sorted()
    }

    /// See ``ProcTable/process(_:)``.
    public func process(_ pid: Int32) -> ProcProcess? {
        read(pid, only: { _ in true })
    }

    /// See ``ProcTable/oscamProcess(_:)``. Discovery asks this of every process on every cycle,
    /// so the working directory and the cgroup, which only an OScam process needs, are read
    /// only once `stat`, `cmdline` and `exe` say it is one.
    public func oscamProcess(_ pid: Int32) -> ProcProcess? {
        read(pid, only: { !$0.isDead && Discovery.looksLikeOScam($0) })
    }

    private func read(_ pid: Int32, only wanted: (ProcProcess) -> Bool) -> ProcProcess? {
        let dir = DiscoveryPath.join(root, String(pid))
        // The files are parsed as bytes (see `ASCIIProcText`).
        guard let statBytes = try? fileSystem.readFile(DiscoveryPath.join(dir, "stat")),
              let stat = Self.parseStat(bytes: statBytes) else { return nil }
        let argv = (try? fileSystem.readFile(DiscoveryPath.join(dir, "cmdline"))).map(Self.parseCmdline) ?? []
        var process = ProcProcess(
            pid: pid, ppid: stat.ppid, comm: stat.comm, argv: argv,
            exe: fileSystem.readLink(DiscoveryPath.join(dir, "exe")).map(Self.stripDeleted),
            startTicks: stat.startTicks, state: stat.state, threads: stat.threads, rssPages: stat.rssPages,
            utimeTicks: stat.utimeTicks, stimeTicks: stat.stimeTicks)
        guard wanted(process) else { return nil }
        process.cwd = fileSystem.readLink(DiscoveryPath.join(dir, "cwd")).map(Self.stripDeleted)
        process.cgroupUnit = (try? fileSystem.readFile(DiscoveryPath.join(dir, "cgroup"))).flatMap(Self.parseCgroup(bytes:))
        return process
    }

    /// See ``ProcTable/bootTime()``.
    public func bootTime() -> Int64? {
        guard let text = try? fileSystem.readText(DiscoveryPath.join(root, "stat")) else { return nil }
        return Self.parseBootTime(text)
    }

    /// Reads `<root>/self/mountinfo` and reports whether `root` is a proc mount with `hidepid`
    /// (a fixture tree has no such file and is never restricted).
    public func hidesOtherUsersProcesses() -> Bool {
        guard let text = try? fileSystem.readText(DiscoveryPath.join(root, "self/mountinfo")) else { return false }
        return Self.parseHidesProcesses(mountinfo: text, mountPoint: DiscoveryPath.normalize(root) ?? root)
    }

    // MARK: - Pure parsers

    /// Parses `/proc/<pid>/stat`. The command name may contain spaces and parentheses, so it is
    /// taken between the first `(` and the **last** `)`. Returns `nil` for truncated or garbage input.
    public static func parseStat(_ text: String) -> ProcStat? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else {
            return nil
        }
        guard let pid = Int32(DiscoveryText.trim(text[..<open])) else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(whereSeparator: DiscoveryText.isSpace)
        // fields[0] is field 3 (state); field n is fields[n - 3]; rss (24) is the last one needed.
        guard fields.count >= 22, fields[0].count == 1, let state = fields[0].first,
              let ppid = Int32(fields[1]),
              let utime = UInt64(fields[11]), let stime = UInt64(fields[12]),
              let threads = Int(fields[17]), let start = UInt64(fields[19]), let rss = Int64(fields[21])
        else { return nil }
        return ProcStat(
            pid: pid, comm: comm, state: state, ppid: ppid, utimeTicks: utime, stimeTicks: stime,
            threads: threads, startTicks: start, rssPages: rss)
    }

    /// `parseStat` on the file's bytes: the same result, without `Character` processing when the
    /// bytes are ASCII (as `/proc` writes them unless a command name is not).
    static func parseStat(bytes: [UInt8]) -> ProcStat? {
        guard ASCIIProcText.isASCII(bytes) else {
            return parseStat(String(decoding: bytes, as: UTF8.self))
        }
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
              open < close, let pid = Int32(ASCIIProcText.string(ASCIIProcText.trim(bytes[..<open]))) else {
            return nil
        }
        let fields = bytes[(close + 1)...].split(whereSeparator: ASCIIProcText.isSpace).map(ASCIIProcText.string)
        guard fields.count >= 22, fields[0].utf8.count == 1, let state = fields[0].first,
              let ppid = Int32(fields[1]),
              let utime = UInt64(fields[11]), let stime = UInt64(fields[12]),
              let threads = Int(fields[17]), let start = UInt64(fields[19]), let rss = Int64(fields[21])
        else { return nil }
        return ProcStat(
            pid: pid, comm: ASCIIProcText.string(bytes[(open + 1)..<close]), state: state, ppid: ppid,
            utimeTicks: utime, stimeTicks: stime, threads: threads, startTicks: start, rssPages: rss)
    }

    /// `parseCgroup` on the file's bytes, without `Character` processing when they are ASCII.
    static func parseCgroup(bytes: [UInt8]) -> String? {
        guard ASCIIProcText.isASCII(bytes) else {
            return parseCgroup(String(decoding: bytes, as: UTF8.self))
        }
        var v2Path: ArraySlice<UInt8>?
        var v1Path: ArraySlice<UInt8>?
        for line in bytes.split(whereSeparator: { $0 == LineSyntax.lf || $0 == LineSyntax.cr }) {
            let parts = line.split(separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0].elementsEqual("0".utf8) && parts[1].isEmpty {
                v2Path = parts[2]
            } else if parts[1].split(separator: UInt8(ascii: ",")).contains(where: { $0.elementsEqual("name=systemd".utf8) }) {
                v1Path = parts[2]
            }
        }
        guard let path = v2Path ?? v1Path else { return nil }
        for component in path.split(separator: UInt8(ascii: "/")).reversed() {
            if component.count > ".service".utf8.count && component.reversed().starts(with: ".service".utf8.reversed()) {
                return ASCIIProcText.string(component)
            }
            if component.reversed().starts(with: ".scope".utf8.reversed())
                || component.reversed().starts(with: ".slice".utf8.reversed()) {
                return nil
            }
        }
        return nil
    }

    /// Splits `/proc/<pid>/cmdline` at NUL bytes; the final NUL does not start another argument.
    /// Invalid UTF-8 becomes U+FFFD rather than failing.
    public static func parseCmdline(_ bytes: [UInt8]) -> [String] {
        guard !bytes.isEmpty else { return [] }
        var parts = bytes.split(separator: 0, omittingEmptySubsequences: false)
        if bytes.last == 0 { parts.removeLast() }
        return parts.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The systemd service from `/proc/<pid>/cgroup`: the cgroup v2 line (`0::/system.slice/x.service`)
    /// or else the v1 `name=systemd` line. Walking the path from its end, the first `*.service`
    /// component is the unit (`…/oscam.service/sub` → `oscam.service`); a `*.scope` or `*.slice`
    /// met first means the process is in no service of its own (a login session, a container), so
    /// the result is `nil`.
    public static func parseCgroup(_ text: String) -> String? {
        var v2Path: Substring?
        var v1Path: Substring?
        for line in DiscoveryText.lines(text, keepingEmpty: false) {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                v2Path = parts[2]
            } else if parts[1].split(separator: ",").contains("name=systemd") {
                v1Path = parts[2]
            }
        }
        guard let path = v2Path ?? v1Path else { return nil }
        for component in path.split(separator: "/").reversed() {
            if component.hasSuffix(".service") && component.count > ".service".count { return String(component) }
            if component.hasSuffix(".scope") || component.hasSuffix(".slice") { return nil }
        }
        return nil
    }

    /// The `btime` value of `/proc/stat`.
    public static func parseBootTime(_ text: String) -> Int64? {
        for line in DiscoveryText.lines(text, keepingEmpty: false) where line.hasPrefix("btime ") {
            return Int64(DiscoveryText.trim(line.dropFirst("btime ".count)))
        }
        return nil
    }

    /// Whether `mountinfo` shows `mountPoint` mounted as `proc` with a `hidepid` other than 0/off.
    /// The last matching mount wins, since it is the one on top.
    public static func parseHidesProcesses(mountinfo: String, mountPoint: String) -> Bool {
        var hides = false
        for line in DiscoveryText.lines(mountinfo, keepingEmpty: false) {
            let fields = line.split(separator: " ")
            guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count > separator + 1,
                  fields[4] == mountPoint, fields[separator + 1] == "proc" else { continue }
            let options = (fields[5].split(separator: ",")
                + (fields.count > separator + 3 ? fields[separator + 3].split(separator: ",") : []))
            hides = false
            for option in options where option.hasPrefix("hidepid=") {
                let value = option.dropFirst("hidepid=".count)
                hides = !(value == "0" || value == "off")
            }
        }
        return hides
    }

    /// The kernel appends ` (deleted)` to links whose target was removed (e.g. a replaced binary).
    private static func stripDeleted(_ link: String) -> String {
        link.hasSuffix(" (deleted)") ? String(link.dropLast(" (deleted)".count)) : link
    }
}

/// Byte helpers for the ASCII fast paths of the `/proc` parsers. On ASCII text a `Character` is
/// one byte, except CR LF, which is one `Character` but only ever a separator here, so these
/// give the `String` parsers' results exactly.
enum ASCIIProcText {
    static func isASCII(_ bytes: [UInt8]) -> Bool {
        bytes.allSatisfy { $0 < 0x80 }
    }

    /// `DiscoveryText.isSpace` on a byte.
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }

    /// `DiscoveryText.trim` on bytes.
    static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return bytes[bytes.endIndex...] }
        return bytes[first...last]
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
