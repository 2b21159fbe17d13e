#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Errors

/// Why a file-system operation made during discovery failed.
///
/// Safe to log: it names the path and the kind of failure, never any file contents.
public struct DiscoveryFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: Sendable, Equatable {
        /// The path does not exist (`ENOENT`, `ENOTDIR` on a parent).
        case notFound
        /// The agent may not read it (`EACCES`, `EPERM`), which is normal for an unprivileged agent.
        case permissionDenied
        /// The path is not a regular file (a directory, FIFO, socket or device); it is never read.
        case notRegularFile
        /// The path is not a directory.
        case notADirectory
        /// The file is larger than the read limit.
        case tooLarge
        /// Any other system error, by `errno`.
        case system(Int32)
    }

    /// The kind of failure.
    public var code: Code
    /// The path that failed.
    public var path: String

    /// Creates an error for `path`.
    public init(_ code: Code, path: String) {
        self.code = code
        self.path = path
    }

    /// Maps an `errno` value to an error for `path`.
    public init(errno value: Int32, path: String) {
        switch value {
        case ENOENT, ENOTDIR: self.init(.notFound, path: path)
        case EACCES, EPERM: self.init(.permissionDenied, path: path)
        default: self.init(.system(value), path: path)
        }
    }

    /// A short, content-free phrase for the failure, e.g. `permission denied`.
    public var reason: String {
        switch code {
        case .notFound: return "not found"
        case .permissionDenied: return "permission denied"
        case .notRegularFile: return "not a regular file"
        case .notADirectory: return "not a directory"
        case .tooLarge: return "file too large"
        case .system(let value): return "system error \(value)"
        }
    }

    /// `<path>: <reason>`.
    public var description: String { "\(path): \(reason)" }
}

// MARK: - Protocol

/// The file-system access discovery needs, so tests can substitute a fixture tree.
///
/// Every method is synchronous, does not follow any policy of its own (no caching) and is safe to
/// call from any thread.
public protocol DiscoveryFileSystem: Sendable {
    /// Reads a whole regular file (following symlinks), failing with `.tooLarge` past `limit` bytes.
    ///
    /// Must never block on a FIFO or device: anything that is not a regular file fails with
    /// `.notRegularFile` (`/tmp` is world-writable, so a hostile user can plant one).
    func readFile(_ path: String, limit: Int) throws(DiscoveryFileError) -> [UInt8]
    /// The names in a directory, without `.` and `..`, in no particular order.
    func listDirectory(_ path: String) throws(DiscoveryFileError) -> [String]
    /// Whether `path` is a directory (following symlinks); `false` when it cannot be determined.
    func isDirectory(_ path: String) -> Bool
    /// The target of a symbolic link, or `nil` when `path` is not a link or cannot be read.
    func readLink(_ path: String) -> String?
    /// Whether anything exists at `path` (following symlinks); `false` when it cannot be determined.
    func fileExists(_ path: String) -> Bool
    /// The owner's uid of `path` (not following a final symlink), or `nil` when unknown.
    func ownerUID(_ path: String) -> UInt32?
}

extension DiscoveryFileSystem {
    /// Fakes that do not model owners know none.
    public func ownerUID(_ path: String) -> UInt32? {
        nil
    }

    /// The default read limit: far above any file discovery reads (version files, unit files,
    /// `/proc` entries), small enough that a planted huge file cannot exhaust memory.
    public static var defaultReadLimit: Int { 1 << 20 }

    /// Reads a whole regular file with the default limit of 1 MiB.
    public func readFile(_ path: String) throws(DiscoveryFileError) -> [UInt8] {
        try readFile(path, limit: Self.defaultReadLimit)
    }

    /// Reads a whole regular file as UTF-8 text (invalid sequences become U+FFFD).
    public func readText(_ path: String, limit: Int = Self.defaultReadLimit) throws(DiscoveryFileError) -> String {
        String(decoding: try readFile(path, limit: limit), as: UTF8.self)
    }
}

// MARK: - Real implementation

/// The real file system, through POSIX calls.
public struct RealFileSystem: DiscoveryFileSystem {
    /// Creates the real file system.
    public init() {}

    /// Reads a regular file; see ``DiscoveryFileSystem/readFile(_:limit:)``.
    public func readFile(_ path: String, limit: Int) throws(DiscoveryFileError) -> [UInt8] {
        // O_NONBLOCK so that opening a planted FIFO returns at once instead of waiting for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 { throw DiscoveryFileError(errno: errno, path: path) }
        defer { close(fd) }

        var info = stat()
        if fstat(fd, &info) != 0 { throw DiscoveryFileError(errno: errno, path: path) }
        if (info.st_mode & S_IFMT) != S_IFREG { throw DiscoveryFileError(.notRegularFile, path: path) }

        var bytes: [UInt8] = []
        // Room for what the file holds now, so that a large file is not copied as it grows.
        bytes.reserveCapacity(min(max(Int(info.st_size), 0), limit))
        // /proc files report a size of 0, so read until EOF rather than trusting st_size.
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                read(fd, buffer.baseAddress, buffer.count)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw DiscoveryFileError(errno: errno, path: path)
            }
            if count == 0 { break }
            if bytes.count + count > limit { throw DiscoveryFileError(.tooLarge, path: path) }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    /// Lists a directory; see ``DiscoveryFileSystem/listDirectory(_:)``.
    public func listDirectory(_ path: String) throws(DiscoveryFileError) -> [String] {
        guard let dir = opendir(path) else { throw DiscoveryFileError(errno: errno, path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether `path` is a directory; see ``DiscoveryFileSystem/isDirectory(_:)``.
    public func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads a symbolic link; see ``DiscoveryFileSystem/readLink(_:)``.
    public func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { pointer -> Int in
            guard let base = pointer.baseAddress else { return -1 }
            return readlink(path, base, pointer.count - 1)
        }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether anything exists at `path`; see ``DiscoveryFileSystem/fileExists(_:)``.
    public func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The owner of `path`; see ``DiscoveryFileSystem/ownerUID(_:)``.
    public func ownerUID(_ path: String) -> UInt32? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : nil
    }
}
