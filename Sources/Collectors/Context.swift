#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Platform
import Synchronization

/// A file's fingerprint and typed views, computed once per cycle. The lossless document is kept
/// only for oscam.conf (small, and read for single settings); oscam.user and oscam.server are
/// read straight from their bytes (`FileAnalysis(scanning:)`), which are dropped once read, so a
/// cycle holds one file's bytes at a time and never every file's lines.
public struct LoadedDocument: Sendable {
    public let document: ConfigDocument?
    public let fingerprint: FileFingerprint
    public let analysis: FileAnalysis

    public init(document: ConfigDocument, fingerprint: FileFingerprint) {
        self.init(kept: document.file == .conf ? document : nil, fingerprint: fingerprint, analysis: document.analyze())
    }

    /// The same views as `init(document:fingerprint:)` gives for `ConfigDocument(bytes:file:path:)`.
    public init(bytes: [UInt8], file: OScamFile, path: String, fingerprint: FileFingerprint) {
        if file == .conf {
            self.init(document: ConfigDocument(bytes: bytes, file: file, path: path), fingerprint: fingerprint)
        } else {
            self.init(kept: nil, fingerprint: fingerprint, analysis: FileAnalysis(scanning: bytes, file: file, path: path))
        }
    }

    private init(kept document: ConfigDocument?, fingerprint: FileFingerprint, analysis: FileAnalysis) {
        self.document = document
        self.fingerprint = fingerprint
        self.analysis = analysis
    }
}

/// One OScam file as read for this cycle: its parsed document and views, or why it could not
/// be read.
public struct LoadedFile: Sendable {
    public let file: OScamFile
    public let path: String
    public let result: Result<LoadedDocument, FileReadError>

    public init(file: OScamFile, path: String, result: Result<LoadedDocument, FileReadError>) {
        self.file = file
        self.path = path
        self.result = result
    }
}

/// Why a file could not be read, in one line that names it.
public struct FileReadError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case missing, unreadable, tooLarge }
    public let kind: Kind
    public let description: String
}

/// Everything the collectors share in one cycle: discovery results, each instance's files read
/// once, and the host's paths. Platform access sits behind parameters so tests run on fixture
/// trees.
public struct CollectContext: Sendable {
    public let discovery: DiscoveryResult
    /// Instance id → its three files.
    public let files: [String: [OScamFile: LoadedFile]]
    public let procTable: any ProcTable
    public let procRoot: String
    public let osReleasePath: String
    public let http: any HTTPTransport
    /// Wall-clock seconds, from the injected clock.
    public let now: Int64
    public let webifTimeout: Double

    public init(discovery: DiscoveryResult, files: [String: [OScamFile: LoadedFile]], procTable: any ProcTable,
                procRoot: String, osReleasePath: String = "/etc/os-release", http: any HTTPTransport, now: Int64,
                webifTimeout: Double = 5) {
        self.discovery = discovery
        self.files = files
        self.procTable = procTable
        self.procRoot = procRoot
        self.osReleasePath = osReleasePath
        self.http = http
        self.now = now
        self.webifTimeout = webifTimeout
    }

    /// The parsed document of `file` for an instance, or nil (the loader's error is reported by
    /// the `instances` collector, once).
    public func document(_ file: OScamFile, of instance: String) -> ConfigDocument? {
        loaded(file, of: instance)?.document
    }


    /// The loaded document with its views, or nil.
    public func loaded(_ file: OScamFile, of instance: String) -> LoadedDocument? {
        guard case .success(let loaded)? = files[instance]?[file]?.result else {
            return nil
        }
        return loaded
    }

    /// The typed views of `file`: empty ones when the file does not exist (OScam then has no
    /// accounts or readers), nil when it exists but could not be read.
    public func analysis(_ file: OScamFile, of instance: String) -> FileAnalysis? {
        switch files[instance]?[file]?.result {
        case .success(let loaded)?:
            return loaded.analysis
        case .failure(let error)? where error.kind == .missing:
            return FileAnalysis(accounts: [], readers: [])
        default:
            return nil
        }
    }

    /// Reads the three files of every instance; a missing or unreadable file is recorded, not
    /// fatal. With a `cache`, a file that has not changed since an earlier cycle is not read
    /// again (``FileCache``).
    public static func loadFiles(for discovery: DiscoveryResult, maxBytes: Int = 64 << 20,
                                 cache: FileCache? = nil) -> [String: [OScamFile: LoadedFile]] {
        var result: [String: [OScamFile: LoadedFile]] = [:]
        var kept: [String: FileCache.Entry] = [:]
        for instance in discovery.instances {
            var files: [OScamFile: LoadedFile] = [:]
            for file in OScamFile.allCases {
                let path = DiscoveryPath.join(instance.configDir, file.rawValue)
                let cached = cache?.entry(path)
                let (loaded, entry) = load(path, file: file, maxBytes: maxBytes, cached: cached)
                if let cached, let entry, cached.identity == entry.identity {
                    cache?.noteReuse()
                }
                files[file] = LoadedFile(file: file, path: path, result: loaded)
                kept[path] = entry
            }
            result[instance.id] = files
        }
        // Only this cycle's files stay: an instance that went away takes its entries with it.
        cache?.replace(with: kept)
        return result
    }

    /// The file read and analysed, or `cached` when the file is provably the one it was made
    /// from; and the entry to keep for the next cycle, if the result may be reused.
    private static func load(_ path: String, file: OScamFile, maxBytes: Int, cached: FileCache.Entry?)
        -> (Result<LoadedDocument, FileReadError>, FileCache.Entry?) {
        // Taken before the file is looked at, for `FileIdentity.isSettled`.
        let readStart = FileIdentity.now()
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            return (.failure(FileReadError(kind: code == ENOENT ? .missing : .unreadable,
                                           description: "\(path): \(String(cString: strerror(code)))")), nil)
        }
        let identity = FileIdentity(info)
        if let cached, cached.identity == identity {
            return (.success(cached.loaded), cached)
        }
        guard Int(info.st_size) <= maxBytes else {
            return (.failure(FileReadError(kind: .tooLarge, description: "\(path): larger than \(maxBytes >> 20) MiB; not read")), nil)
        }
        let bytes: [UInt8]
        do {
            bytes = try RealFileSystem().readFile(path, limit: maxBytes)
        } catch {
            return (.failure(FileReadError(kind: .unreadable, description: error.description)), nil)
        }
        let fingerprint = FileFingerprint(sha256: Crypto.sha256Hex(bytes), size: Int64(bytes.count),
                                          mtime: Int64(info.st_mtim.tv_sec))
        let loaded = LoadedDocument(bytes: bytes, file: file, path: path, fingerprint: fingerprint)
        var after = stat()
        let unchanged = stat(path, &after) == 0 && FileIdentity(after) == identity && Int64(bytes.count) == identity.size
        let entry = unchanged && identity.isSettled(at: readStart) ? FileCache.Entry(identity: identity, loaded: loaded) : nil
        return (.success(loaded), entry)
    }
}

/// What identifies one version of a file without reading it: the inode and the size, and the
/// times of the last change to its content (mtime) and to anything about it (ctime), to the
/// nanosecond. Writing a file, in place or by renaming another over it, changes one of these;
/// ctime cannot be set back by anyone but the kernel's clock.
public struct FileIdentity: Equatable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let mtime: timespec
    let ctime: timespec

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        mtime = info.st_mtim
        ctime = info.st_ctim
    }

    public static func == (lhs: FileIdentity, rhs: FileIdentity) -> Bool {
        lhs.device == rhs.device && lhs.inode == rhs.inode && lhs.size == rhs.size
            && lhs.mtime.tv_sec == rhs.mtime.tv_sec && lhs.mtime.tv_nsec == rhs.mtime.tv_nsec
            && lhs.ctime.tv_sec == rhs.ctime.tv_sec && lhs.ctime.tv_nsec == rhs.ctime.tv_nsec
    }

    /// Whether the file's last change is old enough that a later one must show in its times.
    /// The kernel stamps files from a clock that advances in ticks of a few milliseconds, so a
    /// write in the same tick as an earlier one, of the same size, leaves the times as they
    /// were: a file changed less than two seconds before it was read is read again next cycle
    /// (git's "racily clean" rule).
    func isSettled(at readStart: timespec) -> Bool {
        let latest = max(mtime.tv_sec, ctime.tv_sec)
        return readStart.tv_sec - latest >= 2
    }

    static func now() -> timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }
}

/// The files of earlier cycles with their analyses, so that an unchanged oscam.user of
/// thousands of accounts is not read, hashed and scanned again every cycle. Holds one entry per
/// file of the instances of the last cycle; the command path never uses it (it always reads).
public final class FileCache: Sendable {
    struct Entry: Sendable {
        let identity: FileIdentity
        let loaded: LoadedDocument
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let reused = Atomic<Int>(0)

    public init() {}

    func entry(_ path: String) -> Entry? {
        entries.withLock { $0[path] }
    }

    func noteReuse() {
        reused.add(1, ordering: .relaxed)
    }

    /// How many times a file was not read because its entry was still good.
    public var hits: Int {
        reused.load(ordering: .relaxed)
    }

    func replace(with kept: [String: Entry]) {
        entries.withLock { $0 = kept }
    }

    /// How many files it holds.
    public var count: Int {
        entries.withLock { $0.count }
    }
}
