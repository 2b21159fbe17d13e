#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Platform

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
    /// fatal.
    public static func loadFiles(for discovery: DiscoveryResult, maxBytes: Int = 64 << 20) -> [String: [OScamFile: LoadedFile]] {
        var result: [String: [OScamFile: LoadedFile]] = [:]
        for instance in discovery.instances {
            var files: [OScamFile: LoadedFile] = [:]
            for file in OScamFile.allCases {
                let path = DiscoveryPath.join(instance.configDir, file.rawValue)
                files[file] = LoadedFile(file: file, path: path, result: load(path, file: file, maxBytes: maxBytes))
            }
            result[instance.id] = files
        }
        return result
    }

    static func load(_ path: String, file: OScamFile, maxBytes: Int) -> Result<LoadedDocument, FileReadError> {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            return .failure(FileReadError(kind: code == ENOENT ? .missing : .unreadable,
                                          description: "\(path): \(String(cString: strerror(code)))"))
        }
        guard Int(info.st_size) <= maxBytes else {
            return .failure(FileReadError(kind: .tooLarge, description: "\(path): larger than \(maxBytes >> 20) MiB; not read"))
        }
        let bytes: [UInt8]
        do {
            bytes = try RealFileSystem().readFile(path, limit: maxBytes)
        } catch {
            return .failure(FileReadError(kind: .unreadable, description: error.description))
        }
        let fingerprint = FileFingerprint(sha256: Crypto.sha256Hex(bytes), size: Int64(bytes.count),
                                          mtime: Int64(info.st_mtim.tv_sec))
        return .success(LoadedDocument(bytes: bytes, file: file, path: path, fingerprint: fingerprint))
    }
}
