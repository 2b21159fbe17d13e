// MARK: - Options

/// Where discovery looks, and whether it looks on its own at all.
public struct DiscoveryOptions: Sendable, Equatable {
    /// OScam's compiled-in config dir of Makefile and Linux CMake builds (`CS_CONFDIR`).
    public static let compiledInConfigDir = "/usr/local/etc"
    /// The directories OScam's `find_conf_dir()` tries, in order, when `CS_CONFDIR` has no
    /// `oscam.conf` (OSCAM.md §1.2).
    public static let autoDetectConfigDirs = [
        "/etc/tuxbox/config", "/etc/tuxbox/config/oscam", "/var/tuxbox/config", "/usr/keys", "/var/keys",
        "/var/etc/oscam", "/var/etc", "/var/oscam", "/config/oscam",
    ]
    /// ``compiledInConfigDir`` followed by ``autoDetectConfigDirs``: OScam's own search order.
    public static let standardDefaultConfigDirs = [compiledInConfigDir] + autoDetectConfigDirs
    /// The systemd unit directories, highest priority first.
    public static let standardSystemdDirs = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
    /// OScam's default temp dir, where `oscam.version` lives unless `-t` says otherwise.
    public static let defaultTempDir = "/tmp/.oscam"

    /// Whether to find instances on its own (processes, version files, systemd units, default
    /// dirs). When `false`, only ``extraConfigDirs`` become instances; processes and version
    /// files that point at one of them still fill in runtime details.
    public var auto: Bool
    /// The proc root, `/proc` on a real system.
    public var procRoot: String
    /// systemd unit directories, highest priority first.
    public var systemdDirs: [String]
    /// Temp dirs to look for `oscam.version` in, besides every `-t` dir seen.
    public var versionDirs: [String]
    /// Config dirs the operator configured: always listed, with a problem when missing.
    public var extraConfigDirs: [String]
    /// OScam's search order for a config dir when none is given with `-c`; each one that holds an
    /// `oscam.conf` is also an instance of its own when ``auto`` is on.
    public var defaultConfigDirs: [String]

    /// Creates options; the defaults describe a standard Linux server.
    public init(
        auto: Bool = true,
        procRoot: String = "/proc",
        systemdDirs: [String] = DiscoveryOptions.standardSystemdDirs,
        versionDirs: [String] = [DiscoveryOptions.defaultTempDir],
        extraConfigDirs: [String] = [],
        defaultConfigDirs: [String] = DiscoveryOptions.standardDefaultConfigDirs
    ) {
        self.auto = auto
        self.procRoot = procRoot
        self.systemdDirs = systemdDirs
        self.versionDirs = versionDirs
        self.extraConfigDirs = extraConfigDirs
        self.defaultConfigDirs = defaultConfigDirs
    }
}

// MARK: - Result model

/// How an instance was found.
public enum DiscoverySource: String, Sendable, CaseIterable, Comparable {
    /// A running OScam process (detail: `pid <worker>`, or the lone process's pid).
    case process
    /// An `oscam.version` file (detail: its path).
    case versionFile = "version_file"
    /// A systemd unit (detail: the unit file, plus the unit name for template instances).
    case systemdUnit = "systemd_unit"
    /// One of OScam's default config dirs holding an `oscam.conf` (detail: the dir).
    case defaultDir = "default_dir"
    /// A config dir the operator configured (detail: the dir).
    case configured

    /// Declaration order: live evidence first.
    public static func < (lhs: DiscoverySource, rhs: DiscoverySource) -> Bool {
        let order = allCases
        return (order.firstIndex(of: lhs) ?? 0) < (order.firstIndex(of: rhs) ?? 0)
    }
}

/// One piece of evidence for an instance.
public struct Provenance: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// What kind of evidence.
    public var source: DiscoverySource
    /// Which one: a pid, a path or a unit file; never file contents.
    public var detail: String

    /// Creates a provenance entry.
    public init(source: DiscoverySource, detail: String) {
        self.source = source
        self.detail = detail
    }

    /// By source, then detail.
    public static func < (lhs: Provenance, rhs: Provenance) -> Bool {
        lhs.source != rhs.source ? lhs.source < rhs.source : lhs.detail < rhs.detail
    }

    /// `<source>: <detail>`.
    public var description: String { "\(source.rawValue): \(detail)" }
}

/// Whether an instance runs.
public enum InstanceState: String, Sendable, CaseIterable {
    /// An OScam process for the instance's config dir is alive.
    case running
    /// No such process exists; version or pid files left behind by a crash do not count.
    case stopped
    /// The process table cannot tell (it is unreadable or hides other users' processes).
    case unknown
}

/// One OScam instance, identified by its config dir.
public struct DiscoveredInstance: Sendable, Equatable {
    /// Stable id derived from ``configDir``: `osc_` and 16 lower-case hex digits (FNV-1a-64).
    public var id: String
    /// A display name, unique within a result: the systemd unit without `.service`, else the
    /// config dir's last component; clashes get `-2`, `-3`, … in id order.
    public var name: String
    /// The normalised config dir, absolute and ending in `/` like OScam's `ConfigDir`.
    public var configDir: String
    /// The temp dir in use (normalised, no trailing `/`), when known.
    public var tempDir: String?
    /// The pid file OScam writes: `-B`, else `[global] pidfile`, else `<tempDir>/oscam.pid`.
    public var pidFile: String?
    /// The OScam binary, when known.
    public var binary: String?
    /// The systemd unit, e.g. `oscam.service`, when known.
    public var unit: String?
    /// Every way the instance was found, sorted and without duplicates.
    public var provenance: [Provenance]
    /// Whether the instance runs.
    public var state: InstanceState
    /// The worker process (the real OScam), when running.
    public var workerPID: Int32?
    /// The restart watchdog (the worker's parent), when running in restart mode.
    public var watchdogPID: Int32?
    /// The `oscam.version` file for this config dir, when one was readable.
    public var versionFile: OScamVersionFile?
    /// Where ``versionFile`` was read from.
    public var versionFilePath: String?

    /// Creates an instance value.
    public init(
        id: String, name: String, configDir: String, tempDir: String? = nil, pidFile: String? = nil,
        binary: String? = nil, unit: String? = nil, provenance: [Provenance] = [], state: InstanceState = .unknown,
        workerPID: Int32? = nil, watchdogPID: Int32? = nil, versionFile: OScamVersionFile? = nil,
        versionFilePath: String? = nil
    ) {
        self.id = id
        self.name = name
        self.configDir = configDir
        self.tempDir = tempDir
        self.pidFile = pidFile
        self.binary = binary
        self.unit = unit
        self.provenance = provenance
        self.state = state
        self.workerPID = workerPID
        self.watchdogPID = watchdogPID
        self.versionFile = versionFile
        self.versionFilePath = versionFilePath
    }

    /// The id for a normalised config dir: `osc_` + FNV-1a-64 of its UTF-8 bytes in 16 lower-case
    /// hex digits, which always matches `[A-Za-z0-9_-]{1,64}`.
    public static func id(forConfigDir configDir: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in configDir.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "osc_" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Whether `id` has the shape `id(forConfigDir:)` produces, so a name from outside (the
    /// panel) can be compared and logged without carrying anything else.
    public static func isWellFormedID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return bytes.count == 20 && id.hasPrefix("osc_")
            && bytes[4...].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// Something discovery could not read or make sense of. One line, safe to log: a path and a
/// message, never file contents (a config line could hold a password).
public struct DiscoveryProblem: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The file, directory or `/proc` entry concerned.
    public var path: String
    /// What is wrong, in one line.
    public var message: String

    /// Creates a problem.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// A problem for a failed file-system operation.
    public init(error: DiscoveryFileError) {
        self.init(path: error.path, message: "cannot read: \(error.reason)")
    }

    /// By path, then message.
    public static func < (lhs: DiscoveryProblem, rhs: DiscoveryProblem) -> Bool {
        lhs.path != rhs.path ? lhs.path < rhs.path : lhs.message < rhs.message
    }

    /// `<path>: <message>`.
    public var description: String { "\(path): \(message)" }
}

/// What one discovery run found.
public struct DiscoveryResult: Sendable, Equatable {
    /// The instances, sorted by config dir.
    public var instances: [DiscoveredInstance]
    /// Everything that could not be read or understood, sorted, without duplicates.
    public var problems: [DiscoveryProblem]

    /// Creates a result.
    public init(instances: [DiscoveredInstance] = [], problems: [DiscoveryProblem] = []) {
        self.instances = instances
        self.problems = problems
    }
}

// MARK: - Discovery

/// Finds the OScam instances on this machine and tells whether each one runs (OSCAM.md §1, §2, §8).
///
/// Sources: running processes, `oscam.version` files (in the configured dirs and every `-t` dir
/// seen), systemd units, OScam's default config dirs and the configured ones. The same config
/// dir found several ways is one instance with every source in its provenance. A version or pid
/// file left behind by a crash never makes an instance running: only a live process that looks
/// like OScam and uses the instance's config dir does.
public struct Discovery: Sendable {
    /// How far the version file's `Unix Starttime` may lie before the worker's start: clocks and
    /// tick rounding.
    public static let startTimeSlackBefore: Int64 = 5
    /// How far it may lie after: OScam writes the file once the configs are loaded, which can take
    /// a while on a slow box.
    public static let startTimeSlackAfter: Int64 = 60

    /// The options in effect.
    public let options: DiscoveryOptions
    let procTable: any ProcTable
    let fileSystem: any DiscoveryFileSystem
    let pidfileSetting: @Sendable (String) -> String?

    /// Creates a discovery.
    ///
    /// - Parameter pidfileSetting: returns `[global] pidfile` of the `oscam.conf` in the given
    ///   config dir (normalised, ending in `/`), or `nil`.
    public init(
        options: DiscoveryOptions, procTable: any ProcTable, fileSystem: any DiscoveryFileSystem = RealFileSystem(),
        pidfileSetting: @escaping @Sendable (String) -> String? = { _ in nil }
    ) {
        self.options = options
        self.procTable = procTable
        self.fileSystem = fileSystem
        self.pidfileSetting = pidfileSetting
    }

    /// Creates a discovery over the process table at ``DiscoveryOptions/procRoot``.
    public init(
        options: DiscoveryOptions, fileSystem: any DiscoveryFileSystem = RealFileSystem(),
        pidfileSetting: @escaping @Sendable (String) -> String? = { _ in nil }
    ) {
        self.init(
            options: options, procTable: LinuxProcTable(root: options.procRoot, fileSystem: fileSystem),
            fileSystem: fileSystem, pidfileSetting: pidfileSetting)
    }

    /// Runs discovery once. Never fails: whatever cannot be read becomes a problem.
    public func discover() -> DiscoveryResult {
        var run = DiscoveryRun(discovery: self)
        return run.run()
    }

    // MARK: - Recognising OScam

    /// Whether a file name names OScam: it starts with `oscam`, in any case.
    public static func isOScamName(_ name: String) -> Bool {
        name.lowercased().hasPrefix("oscam")
    }

    /// Whether a process looks like OScam: its command name, executable or `argv[0]` starts with
    /// `oscam`, or `argv[0]` is an interpreter and its script (the first non-option) does.
    public static func looksLikeOScam(_ process: ProcProcess) -> Bool {
        oscamPath(of: process) != nil || isOScamName(process.comm)
    }

    /// The path that makes `process` OScam: the executable, else `argv[0]`, else an interpreter's
    /// script.
    static func oscamPath(of process: ProcProcess) -> String? {
        if let exe = process.exe, isOScamName(DiscoveryPath.basename(exe)) { return exe }
        guard let first = process.argv.first else { return nil }
        if isOScamName(DiscoveryPath.basename(first)) { return first }
        guard isInterpreter(DiscoveryPath.basename(first)),
              let script = process.argv.dropFirst().first(where: { !$0.hasPrefix("-") }),
              isOScamName(DiscoveryPath.basename(script)) else { return nil }
        return script
    }

    private static func isInterpreter(_ name: String) -> Bool {
        let shells: Set<String> = ["sh", "bash", "dash", "ash", "zsh", "ksh", "busybox", "env"]
        return shells.contains(name) || ["python", "perl", "ruby", "node", "php"].contains { name.hasPrefix($0) }
    }
}

// MARK: - One run

/// An OScam process with its command line resolved.
struct DiscoveryProcess {
    var process: ProcProcess
    var arguments: OScamArguments
    /// Normalised temp dir (`-t` or the default).
    var tempDir: String
    /// Normalised `-c`, if given.
    var explicitConfigDir: String?
    /// Normalised `-B`, if given.
    var pidFile: String?
    /// The config dir this process uses, once resolved.
    var configDir: String?

    var pid: Int32 { process.pid }
}

/// A systemd unit with its command line resolved.
struct DiscoveryUnit {
    var unit: SystemdUnit
    var tempDir: String
    var explicitConfigDir: String?
    var pidFile: String?
    var configDir: String?
}

/// A readable `oscam.version` file.
struct DiscoveryVersionFile {
    var path: String
    var directory: String
    var file: OScamVersionFile
    var configDir: String?
}

/// Everything found for one config dir before the instance is put together.
struct DiscoveryCandidate {
    var configDir: String
    var provenance: Set<Provenance> = []
    var processes: [DiscoveryProcess] = []
    var units: [DiscoveryUnit] = []
    var versionFiles: [DiscoveryVersionFile] = []
}

/// The state of one ``Discovery/discover()`` call.
struct DiscoveryRun {
    let discovery: Discovery
    var problems: Set<DiscoveryProblem> = []
    var autoDetectedConfigDir: String??

    init(discovery: Discovery) { self.discovery = discovery }

    private var options: DiscoveryOptions { discovery.options }
    private var fileSystem: any DiscoveryFileSystem { discovery.fileSystem }
    private var procTable: any ProcTable { discovery.procTable }

    mutating func run() -> DiscoveryResult {
        let extraDirs = configuredDirs()
        let visiblePIDs = procTable.pids()
        let tableIsBlind = visiblePIDs.isEmpty || procTable.hidesOtherUsersProcesses()

        let processes = oscamProcesses(visiblePIDs)
        var scannedUnitNames: Set<String> = []
        var units: [DiscoveryUnit] = []
        // Scanned without `auto` too: a unit that runs a configured dir is how the agent may
        // start and stop it; units for other dirs are dropped with the other candidates below.
        if !options.systemdDirs.isEmpty {
            let scan = SystemdUnitScanner(directories: options.systemdDirs, fileSystem: fileSystem).scan()
            problems.formUnion(scan.problems)
            scannedUnitNames = Set(scan.units.map(\.name))
            units = scan.units.compactMap(resolveUnit)
        }

        var versionDirs: [String] = []
        for dir in options.versionDirs + processes.map(\.tempDir) + units.map(\.tempDir) {
            if let normalized = DiscoveryPath.normalize(dir, relativeTo: "/"), !versionDirs.contains(normalized) {
                versionDirs.append(normalized)
            }
        }
        var versionFiles: [DiscoveryVersionFile] = []
        for dir in versionDirs {
            if let versionFile = readVersionFile(in: dir, oscamPIDs: Set(processes.map(\.process.pid))) {
                versionFiles.append(versionFile)
            }
        }
        var versionByDir: [String: DiscoveryVersionFile] = [:]
        for versionFile in versionFiles where versionByDir[versionFile.directory] == nil {
            versionByDir[versionFile.directory] = versionFile
        }

        var candidates: [String: DiscoveryCandidate] = [:]
        func candidate(_ configDir: String, _ update: (inout DiscoveryCandidate) -> Void) {
            update(&candidates[configDir, default: DiscoveryCandidate(configDir: configDir)])
        }

        for var process in processes {
            process.configDir = process.explicitConfigDir ?? inferredConfigDir(
                tempDir: process.tempDir, versionByDir: versionByDir, owner: process.process)
            guard let configDir = process.configDir else {
                problems.insert(DiscoveryProblem(
                    path: DiscoveryPath.join(options.procRoot, String(process.pid)),
                    message: "cannot tell the config dir of this OScam process"))
                continue
            }
            candidate(configDir) { $0.processes.append(process) }
        }
        for var unit in units {
            unit.configDir = unit.explicitConfigDir ?? inferredConfigDir(
                tempDir: unit.tempDir, versionByDir: versionByDir, owner: nil)
            guard let configDir = unit.configDir else {
                problems.insert(DiscoveryProblem(
                    path: unit.unit.fragmentPath, message: "cannot tell the config dir of \(unit.unit.name)"))
                continue
            }
            candidate(configDir) {
                $0.units.append(unit)
                $0.provenance.insert(Provenance(source: .systemdUnit, detail: unit.unit.provenanceDetail))
            }
        }
        for versionFile in versionFiles {
            if let configDir = versionFile.configDir {
                candidate(configDir) {
                    $0.versionFiles.append(versionFile)
                    $0.provenance.insert(Provenance(source: .versionFile, detail: versionFile.path))
                }
            } else {
                // Old builds may lack ConfigDir: the file then belongs to whoever uses its temp dir.
                for configDir in candidates.keys.sorted() where candidates[configDir]?.processes
                    .contains(where: { $0.tempDir == versionFile.directory }) == true {
                    candidate(configDir) {
                        $0.versionFiles.append(versionFile)
                        $0.provenance.insert(Provenance(source: .versionFile, detail: versionFile.path))
                    }
                }
            }
        }
        if options.auto {
            for dir in options.defaultConfigDirs {
                guard let configDir = DiscoveryPath.directory(dir, relativeTo: "/"),
                      fileSystem.fileExists(configDir + "oscam.conf") else { continue }
                candidate(configDir) { $0.provenance.insert(Provenance(source: .defaultDir, detail: configDir)) }
            }
        }
        for configDir in extraDirs {
            candidate(configDir) { $0.provenance.insert(Provenance(source: .configured, detail: configDir)) }
        }

        var instances: [DiscoveredInstance] = []
        for configDir in candidates.keys.sorted() {
            guard let found = candidates[configDir] else { continue }
            if !options.auto && !extraDirs.contains(configDir) { continue }
            instances.append(assemble(found, tableIsBlind: tableIsBlind, scannedUnitNames: scannedUnitNames))
        }
        assignUniqueNames(&instances)
        return DiscoveryResult(instances: instances, problems: problems.sorted())
    }

    // MARK: Sources

    private mutating func configuredDirs() -> [String] {
        var dirs: [String] = []
        for dir in options.extraConfigDirs {
            if !dir.hasPrefix("/") {
                problems.insert(DiscoveryProblem(
                    path: dir, message: "configured config dir is not absolute; read from /"))
            }
            guard let configDir = DiscoveryPath.directory(dir, relativeTo: "/") else { continue }
            if !fileSystem.isDirectory(configDir) {
                problems.insert(DiscoveryProblem(path: configDir, message: "configured config dir does not exist"))
            }
            if !dirs.contains(configDir) { dirs.append(configDir) }
        }
        return dirs
    }

    private mutating func oscamProcesses(_ pids: [Int32]) -> [DiscoveryProcess] {
        var result: [DiscoveryProcess] = []
        for pid in pids {
            guard let process = procTable.oscamProcess(pid) else {
                continue
            }
            if let resolved = resolveProcess(process) { result.append(resolved) }
        }
        return result
    }

    /// Resolves a process's `-c`, `-t` and `-B` against its working directory.
    private mutating func resolveProcess(_ process: ProcProcess) -> DiscoveryProcess? {
        let arguments = OScamArguments.parse(process.argv)
        let procPath = DiscoveryPath.join(options.procRoot, String(process.pid))
        var unresolvable = false
        func resolve(_ path: String?, directory: Bool) -> String? {
            guard let path, !path.isEmpty else { return nil }
            let resolved = directory
                ? DiscoveryPath.directory(path, relativeTo: process.cwd)
                : DiscoveryPath.normalize(path, relativeTo: process.cwd)
            if resolved == nil { unresolvable = true }
            return resolved
        }
        let configDir = resolve(arguments.configDir, directory: true)
        let tempDir = resolve(arguments.tempDir, directory: false)
        let pidFile = resolve(arguments.pidFile, directory: false)
        if unresolvable {
            problems.insert(DiscoveryProblem(
                path: procPath, message: "relative path on the OScam command line and unreadable working directory"))
            if arguments.configDir != nil && configDir == nil { return nil }
        }
        return DiscoveryProcess(
            process: process, arguments: arguments, tempDir: tempDir ?? DiscoveryOptions.defaultTempDir,
            explicitConfigDir: configDir, pidFile: pidFile)
    }

    private func resolveUnit(_ unit: SystemdUnit) -> DiscoveryUnit? {
        let arguments = unit.arguments
        // systemd starts services in / unless WorkingDirectory= says otherwise.
        let base = unit.workingDirectory ?? "/"
        return DiscoveryUnit(
            unit: unit,
            tempDir: arguments.tempDir.flatMap { DiscoveryPath.normalize($0, relativeTo: base) }
                ?? DiscoveryOptions.defaultTempDir,
            explicitConfigDir: arguments.configDir.flatMap { DiscoveryPath.directory($0, relativeTo: base) },
            pidFile: arguments.pidFile.flatMap { DiscoveryPath.normalize($0, relativeTo: base) })
    }

    private mutating func readVersionFile(in directory: String, oscamPIDs: Set<Int32>) -> DiscoveryVersionFile? {
        let path = DiscoveryPath.join(directory, "oscam.version")
        let text: String
        do {
            text = try fileSystem.readText(path, limit: 64 * 1024)
        } catch {
            if error.code != .notFound { problems.insert(DiscoveryProblem(error: error)) }
            return nil
        }
        let file = OScamVersionFile.parse(text)
        let configDir = file.configDir.flatMap { DiscoveryPath.directory($0, relativeTo: "/") }
        if configDir == nil {
            problems.insert(DiscoveryProblem(path: path, message: "version file names no absolute ConfigDir"))
        }
        // /tmp/.oscam is writable by anyone who creates it first: a version file is believed only
        // from root, from the user running the OScam process it names, or from the owner of its
        // config dir. Otherwise any local user could make the agent report a tree of their choice.
        if let owner = fileSystem.ownerUID(path), owner != 0 {
            let runner = file.pid.flatMap { pid in
                oscamPIDs.contains(pid) ? fileSystem.ownerUID(DiscoveryPath.join(options.procRoot, String(pid))) : nil
            }
            let dirOwner = configDir.flatMap { fileSystem.ownerUID($0) }
            guard owner == runner || owner == dirOwner else {
                problems.insert(DiscoveryProblem(path: path, message: "ignored: owned by uid \(owner), which neither runs "
                    + "the OScam it names nor owns its config dir"))
                return nil
            }
        }
        return DiscoveryVersionFile(path: path, directory: directory, file: file, configDir: configDir)
    }

    /// The config dir OScam uses without `-c`: the one its version file reports, else OScam's own
    /// search (§1.2). A process only trusts a version file written by its own tree, i.e. whose
    /// `PID` (the worker's parent) is the process itself or its parent.
    private mutating func inferredConfigDir(
        tempDir: String, versionByDir: [String: DiscoveryVersionFile], owner: ProcProcess?
    ) -> String? {
        if let versionFile = versionByDir[tempDir], let configDir = versionFile.configDir {
            if let owner {
                if let pid = versionFile.file.pid, pid == owner.pid || pid == owner.ppid { return configDir }
            } else {
                return configDir
            }
        }
        return autoDetectConfigDir()
    }

    private mutating func autoDetectConfigDir() -> String? {
        if let cached = autoDetectedConfigDir { return cached }
        let dirs = options.defaultConfigDirs.compactMap { DiscoveryPath.directory($0, relativeTo: "/") }
        // Without any oscam.conf, OScam still starts (WebIF builds) and uses its compiled-in dir.
        let found = dirs.first { fileSystem.fileExists($0 + "oscam.conf") } ?? dirs.first
        autoDetectedConfigDir = .some(found)
        return found
    }

    // MARK: Assembly

    /// A watchdog with its worker, or a lone process.
    private struct ProcessTree {
        var root: DiscoveryProcess
        var workers: [DiscoveryProcess]
    }

    private mutating func assemble(
        _ found: DiscoveryCandidate, tableIsBlind: Bool, scannedUnitNames: Set<String>
    ) -> DiscoveredInstance {
        let configDir = found.configDir
        var provenance = found.provenance
        var processes: [DiscoveryProcess] = []
        for process in found.processes where !processes.contains(where: { $0.pid == process.pid }) {
            processes.append(process)
        }

        // The instance's temp dir, and from it the pid file and the version file.
        let preferredUnit = found.units.min { $0.unit.name < $1.unit.name }
        // Several trees with different temp dirs are reported as a problem below; the first
        // process decides, so that temp dir, pid file and version file stay consistent.
        var tempDir = processes.first?.tempDir ?? preferredUnit?.tempDir
        let versionFile = chooseVersionFile(found.versionFiles, tempDir: tempDir)
        if tempDir == nil { tempDir = versionFile?.directory }

        let pidFile = pidFilePath(processes: processes, unit: preferredUnit, configDir: configDir, tempDir: tempDir)
        var trees = processTrees(processes)
        var validatedWorker: DiscoveryProcess?
        if let pidFile, let pid = readPIDFile(pidFile) {
            validatedWorker = validateWorker(pid, configDir: configDir, tempDir: tempDir)
            if validatedWorker == nil {
                problems.insert(DiscoveryProblem(
                    path: pidFile, message: "stale pid file: PID \(pid) is not an OScam process for \(configDir)"))
            }
        }
        if let worker = validatedWorker, !trees.contains(where: { tree in
            tree.root.pid == worker.pid || tree.workers.contains { $0.pid == worker.pid } }) {
            // It started after the listing: still the best evidence there is.
            trees.append(ProcessTree(root: worker, workers: []))
        }

        // The worker of a tree: the one the pid file names, else the newest child.
        func worker(of tree: ProcessTree) -> DiscoveryProcess? {
            tree.workers.first { $0.pid == validatedWorker?.pid }
                ?? tree.workers.max { $0.process.startTicks < $1.process.startTicks }
        }
        var workerPID: Int32?
        var watchdogPID: Int32?
        var primary: DiscoveryProcess?
        let chosen = trees.first { tree in
            validatedWorker.map { worker in
                tree.root.pid == worker.pid || tree.workers.contains { $0.pid == worker.pid } } ?? false
        } ?? trees.first { !$0.workers.isEmpty } ?? trees.first
        if let tree = chosen {
            if tree.workers.isEmpty {
                // A lone process is the worker (`-r 0`, or a build without WebIF), unless the
                // version file names it as the worker's parent: then it is a watchdog between workers.
                let root = tree.root
                let namedAsParent = versionFile?.file.pid == root.pid && root.arguments.hasWatchdog
                    && validatedWorker?.pid != root.pid
                if namedAsParent { watchdogPID = root.pid } else { workerPID = root.pid }
                primary = root
            } else {
                let treeWorker = worker(of: tree)
                watchdogPID = tree.root.pid
                workerPID = treeWorker?.pid
                primary = treeWorker ?? tree.root
            }
        }
        if trees.count > 1 {
            problems.insert(DiscoveryProblem(
                path: configDir, message: "\(trees.count) separate OScam process trees use this config dir"))
        }
        for tree in trees {
            provenance.insert(Provenance(source: .process, detail: "pid \((worker(of: tree) ?? tree.root).pid)"))
        }

        if let versionFile, let workerPID,
           let worker = processes.first(where: { $0.pid == workerPID }) ?? validatedWorker,
           let written = versionFile.file.unixStartTime, let started = procTable.startTime(of: worker.process) {
            let delta = written - started
            if delta < -Discovery.startTimeSlackBefore || delta > Discovery.startTimeSlackAfter {
                problems.insert(DiscoveryProblem(
                    path: versionFile.path,
                    message: "version file does not match the running worker (start times differ by \(delta) s)"))
            }
        }

        let state: InstanceState
        if workerPID != nil || watchdogPID != nil {
            state = .running
        } else {
            state = tableIsBlind ? .unknown : .stopped
        }

        var unit: String?
        if let cgroupUnit = primary?.process.cgroupUnit,
           scannedUnitNames.contains(cgroupUnit) || Discovery.isOScamName(cgroupUnit) {
            unit = cgroupUnit
        } else {
            unit = preferredUnit?.unit.name
        }
        let binary = primary.flatMap { Discovery.oscamPath(of: $0.process) }.map { path in
            path.contains("/") ? (DiscoveryPath.normalize(path, relativeTo: primary?.process.cwd) ?? path) : path
        } ?? preferredUnit?.unit.command.path

        return DiscoveredInstance(
            id: DiscoveredInstance.id(forConfigDir: configDir),
            name: Self.baseName(unit: unit, configDir: configDir),
            configDir: configDir, tempDir: tempDir, pidFile: pidFile, binary: binary, unit: unit,
            provenance: provenance.sorted(), state: state, workerPID: workerPID, watchdogPID: watchdogPID,
            versionFile: versionFile?.file, versionFilePath: versionFile?.path)
    }

    /// Groups processes into trees: a process whose parent is in the group is a worker under it.
    private func processTrees(_ processes: [DiscoveryProcess]) -> [ProcessTree] {
        let pids = Set(processes.map(\.pid))
        return processes
            .filter { !pids.contains($0.process.ppid) || $0.process.ppid == $0.pid }
            .sorted { $0.pid < $1.pid }
            .map { root in
                ProcessTree(root: root, workers: processes.filter { $0.process.ppid == root.pid && $0.pid != root.pid })
            }
    }

    /// The version file in the instance's temp dir, else the most recently written one.
    private func chooseVersionFile(_ files: [DiscoveryVersionFile], tempDir: String?) -> DiscoveryVersionFile? {
        if let tempDir, let match = files.first(where: { $0.directory == tempDir }) { return match }
        return files.max { ($0.file.unixStartTime ?? .min, $1.path) < ($1.file.unixStartTime ?? .min, $0.path) }
    }

    /// §1.4: `-B`, else `[global] pidfile`, else `<tempdir>/oscam.pid`.
    private func pidFilePath(
        processes: [DiscoveryProcess], unit: DiscoveryUnit?, configDir: String, tempDir: String?
    ) -> String? {
        if let explicit = processes.lazy.compactMap(\.pidFile).first ?? unit?.pidFile { return explicit }
        if let setting = discovery.pidfileSetting(configDir), !setting.isEmpty,
           let path = DiscoveryPath.normalize(setting, relativeTo: processes.first?.process.cwd ?? "/") {
            return path
        }
        return tempDir.map { DiscoveryPath.join($0, "oscam.pid") }
    }

    private mutating func readPIDFile(_ path: String) -> Int32? {
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.readFile(path, limit: 4096)
        } catch {
            if error.code != .notFound { problems.insert(DiscoveryProblem(error: error)) }
            return nil
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let firstLine = DiscoveryText.trim(DiscoveryText.lines(text).first ?? "")
        guard DiscoveryText.isDigits(firstLine), let pid = Int32(firstLine), pid > 0 else {
            problems.insert(DiscoveryProblem(path: path, message: "pid file does not hold a PID"))
            return nil
        }
        return pid
    }

    /// The pid file's process counts only if it is alive, looks like OScam and uses this
    /// instance's config dir (or, without `-c`, its temp dir): a reused PID means stopped.
    private mutating func validateWorker(_ pid: Int32, configDir: String, tempDir: String?) -> DiscoveryProcess? {
        guard let process = procTable.oscamProcess(pid),
              let resolved = resolveProcess(process) else { return nil }
        if let explicit = resolved.explicitConfigDir { return explicit == configDir ? resolved : nil }
        return resolved.tempDir == (tempDir ?? DiscoveryOptions.defaultTempDir) ? resolved : nil
    }

    // MARK: Names

    private static func baseName(unit: String?, configDir: String) -> String {
        if let unit, !unit.isEmpty {
            let name = unit.hasSuffix(".service") ? String(unit.dropLast(".service".count)) : unit
            if !name.isEmpty { return name }
        }
        let last = DiscoveryPath.basename(configDir)
        return last.isEmpty ? "oscam" : last
    }

    /// Suffixes `-2`, `-3`, … to repeated names, in id order, so every name in a result is unique.
    private func assignUniqueNames(_ instances: inout [DiscoveredInstance]) {
        var taken = Set<String>()
        for index in instances.indices.sorted(by: { instances[$0].id < instances[$1].id }) {
            let base = instances[index].name
            var name = base
            var counter = 2
            while taken.contains(name) {
                name = "\(base)-\(counter)"
                counter += 1
            }
            taken.insert(name)
            instances[index].name = name
        }
    }
}
