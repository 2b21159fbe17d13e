#if canImport(Glibc)
import Glibc
#endif

/// Small file reads for the agent's own files (state, spool), without the OScam module's
/// discovery file system.
public enum Files {
    /// The whole file, or nil when it cannot be opened, is not regular, or exceeds `limit`.
    public static func read(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            return nil
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= limit else {
            return nil
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR {
                continue
            }
            guard count > 0 else {
                return count == 0 ? bytes : nil
            }
            bytes += buffer[0..<count]
            if bytes.count > limit {
                return nil
            }
        }
    }

    /// The names in a directory (no `.`/`..`), or nil when it cannot be read.
    public static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else {
            return nil
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." {
                names.append(name)
            }
        }
        return names
    }

    /// The directory part of a path: `/etc/myosicam/agent.conf` → `/etc/myosicam`, `/x` → `/`,
    /// a bare name → `.`.
    public static func parent(of path: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count > 1 else {
            return path.hasPrefix("/") ? "/" : "."
        }
        parts.removeLast()
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }
}
