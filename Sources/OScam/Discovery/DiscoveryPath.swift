/// Lexical path helpers for discovery. None of them touches the file system, so symbolic links
/// are not resolved: `/etc/oscam` and a link to it are different config dirs.
public enum DiscoveryPath {
    /// Lexically normalises `path`: resolves it against `base` when relative, collapses repeated
    /// `/`, drops `.` components, resolves `..` (never above `/`) and removes a trailing `/`
    /// (except for the root itself).
    ///
    /// Returns `nil` when `path` is empty, or is relative and `base` is `nil` or relative.
    public static func normalize(_ path: String, relativeTo base: String? = nil) -> String? {
        guard !path.isEmpty else { return nil }
        var full = path
        if !path.hasPrefix("/") {
            guard let base, base.hasPrefix("/") else { return nil }
            full = base + "/" + path
        }
        var parts: [Substring] = []
        for component in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(component)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Normalises a directory the way OScam prints its `ConfigDir`: like ``normalize(_:relativeTo:)``
    /// but always ending in `/`, e.g. `/etc//oscam` → `/etc/oscam/`.
    public static func directory(_ path: String, relativeTo base: String? = nil) -> String? {
        guard let normalized = normalize(path, relativeTo: base) else { return nil }
        return normalized == "/" ? "/" : normalized + "/"
    }

    /// The last non-empty component of `path` (`/usr/bin/oscam` → `oscam`, `/etc/oscam/` → `oscam`),
    /// or `""` for `/` or an empty path.
    public static func basename(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
    }

    /// `dir` and `name` joined by exactly one `/`.
    public static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}
