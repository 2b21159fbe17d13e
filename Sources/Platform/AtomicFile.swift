#if canImport(Glibc)
import Glibc
#endif

/// Writes a file so that a crash or `kill -9` at any instant leaves either the old content or
/// the new, never a mix: a temporary file in the same directory, written and fsynced, renamed
/// over the target, then the directory fsynced so the rename itself survives a power cut.
public enum AtomicFile {
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public let path: String
        public let operation: String
        public let errno: Int32

        public init(path: String, operation: String, errno: Int32) {
            self.path = path
            self.operation = operation
            self.errno = errno
        }

        public var description: String {
            "\(path): \(operation) failed: \(String(cString: strerror(errno)))"
        }

        /// The disk is full (or the quota used up): worth telling apart in logs.
        public var isNoSpace: Bool {
            errno == ENOSPC || errno == EDQUOT
        }
    }

    /// Replaces `path` with `bytes`, created with `mode` (the umask does not apply).
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(Error) {
        let directory = Files.parent(of: path)
        let temporary = directory + "/." + basename(of: path) + temporaryMarker + String(getpid())
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            throw Error(path: temporary, operation: "create", errno: errno)
        }
        var failure: Error?
        if fchmod(fd, mode) != 0 {
            failure = Error(path: temporary, operation: "chmod", errno: errno)
        }
        if failure == nil {
            failure = writeAll(fd, bytes, path: temporary)
        }
        if failure == nil, fsync(fd) != 0 {
            failure = Error(path: temporary, operation: "fsync", errno: errno)
        }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 {
            failure = Error(path: path, operation: "rename", errno: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }

    static let temporaryMarker = ".tmp-"

    /// Removes the temporary files of `write` that a process killed in the middle left in
    /// `directory` (`.<name>.tmp-<pid>`, not renamed yet). Only for a directory no other process
    /// is writing to; returns how many were removed.
    @discardableResult
    public static func removeLeftovers(in directory: String) -> Int {
        var removed = 0
        for name in Files.list(directory) ?? [] where name.hasPrefix(".") && name.contains(temporaryMarker) {
            if unlink(directory + "/" + name) == 0 {
                removed += 1
            }
        }
        return removed
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) -> Error? {
        bytes.withUnsafeBufferPointer { buffer -> Error? in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR {
                        continue
                    }
                    return Error(path: path, operation: "write", errno: errno)
                }
                offset += written
            }
            return nil
        }
    }

    static func basename(of path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
    }
}

/// Rewrites an existing file's content inside the same inode, so its owner, group, mode, ACL and
/// hard links stay exactly as they were — which a rename by an unprivileged writer cannot keep.
/// It is not atomic by itself: callers journal the old and new content first and finish or undo
/// an interrupted write on their next start. The space is reserved before the first byte is
/// overwritten, so a full disk fails the write while the old content is still intact.
public enum InPlaceFile {
    /// A failure of `replaceContents` before it could change anything (the file could not be
    /// opened for writing, or is not a regular file): the file is exactly as it was.
    public static func leftUntouched(_ error: AtomicFile.Error) -> Bool {
        error.operation.hasPrefix(openOperation)
    }

    private static let openOperation = "open"

    public static func replaceContents(of path: String, with bytes: [UInt8]) throws(AtomicFile.Error) {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw AtomicFile.Error(path: path, operation: openOperation + " for writing", errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw AtomicFile.Error(path: path, operation: openOperation + " (stat)", errno: errno)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw AtomicFile.Error(path: path, operation: openOperation + " (not a regular file)", errno: EINVAL)
        }
        if bytes.count > Int(info.st_size) {
            let result = posix_fallocate(fd, 0, off_t(bytes.count))
            // Filesystems without fallocate report EOPNOTSUPP; the write then finds out itself.
            if result != 0 && result != EOPNOTSUPP && result != EINVAL {
                throw AtomicFile.Error(path: path, operation: "reserve space", errno: result)
            }
        }
        if lseek(fd, 0, SEEK_SET) != 0 {
            throw AtomicFile.Error(path: path, operation: "seek", errno: errno)
        }
        if let failure = AtomicFile.writeAll(fd, bytes, path: path) {
            throw failure
        }
        if ftruncate(fd, off_t(bytes.count)) != 0 {
            throw AtomicFile.Error(path: path, operation: "truncate", errno: errno)
        }
        if fsync(fd) != 0 {
            throw AtomicFile.Error(path: path, operation: "fsync", errno: errno)
        }
    }
}
