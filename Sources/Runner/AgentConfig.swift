import OScam
import Platform

/// The agent's own configuration (`/etc/myosicam/agent.conf`): `key = value` under sections,
/// `#` comments (whole-line, or after whitespace), unknown keys and sections refused with their
/// line. Relative paths resolve against the file's own directory.
struct AgentConfig: Sendable, Equatable {
    static let defaultPath = "/etc/myosicam/agent.conf"

    var path: String?
    var panelURL = "https://panel.example.com"
    var caFile: String?
    var pinSHA256: String?
    /// Seconds without a command after which no long-poll is held open (0: always one).
    var commandPollIdleAfter = 600
    var stateDir = "/var/lib/myosicam"
    var collectorsFile = "/etc/myosicam/collectors.conf"
    var allowedActionsFile = "/etc/myosicam/allowed-actions"
    var installTokenFile = "/etc/myosicam/install-token"
    var logLevel = "info"
    /// The snapshot spool's size limit in bytes; the oldest are dropped beyond it.
    var spoolMaxBytes = 64 << 20
    var autoDiscovery = true
    var configDirs: [String] = []
    var procRoot = "/proc"
    var systemdDirs = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
    var versionDirs = ["/tmp/.oscam"]
    /// The only program the agent ever runs through sudo, and sudo itself: absolute paths, as the
    /// installer resolved them and wrote them into the sudoers rule.
    var sudo = "/usr/bin/sudo"
    var systemctl = "/usr/bin/systemctl"

    /// A problem in the agent's config, `path:line: message`.
    struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        let path: String
        let line: Int
        let message: String

        var description: String {
            line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)"
        }
    }

    enum Kind {
        case string, path, paths, bool, url, pin, level, bytes, program, seconds
    }

    static let keys: [String: [String: Kind]] = [
        "panel": ["url": .url, "ca_file": .path, "pin_sha256": .pin, "command_poll_idle_after": .seconds],
        "agent": ["state_dir": .path, "collectors_file": .path, "allowed_actions_file": .path,
                  "install_token_file": .path, "log_level": .level, "spool_max_bytes": .bytes],
        "discovery": ["auto": .bool, "config_dirs": .paths, "proc_root": .path, "systemd_dirs": .paths,
                      "version_dirs": .paths],
        "service": ["sudo": .program, "systemctl": .program],
    ]

    /// Parses the text of `path`; every problem is returned, not just the first.
    static func parse(_ text: String, path: String) -> (config: AgentConfig, problems: [Problem]) {
        var config = AgentConfig()
        config.path = path
        let base = Files.parent(of: path)
        var problems: [Problem] = []
        var section: String?
        var inUnknownSection = false
        var seen: Set<String> = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = stripComment(String(rawLine)).trimmed
            guard !line.isEmpty else {
                continue
            }
            func fail(_ message: String) {
                problems.append(Problem(path: path, line: lineNumber, message: message))
            }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else {
                    fail("a section header must end with ']'")
                    continue
                }
                let name = String(line.dropFirst().dropLast()).trimmed
                guard keys[name] != nil else {
                    fail("unknown section [\(name)]; known: [panel], [agent], [discovery], [service]")
                    section = nil
                    inUnknownSection = true
                    continue
                }
                section = name
                inUnknownSection = false
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                fail("expected 'key = value'")
                continue
            }
            let key = String(line[..<eq]).trimmed
            let value = String(line[line.index(after: eq)...]).trimmed
            guard let section else {
                if inUnknownSection {
                    // Already reported once, with the section's line.
                    continue
                }
                fail("'\(key)' is outside a section; put it under [panel], [agent], [discovery] or [service]")
                continue
            }
            guard let kind = keys[section]?[key] else {
                fail("unknown key '\(key)' in [\(section)]")
                continue
            }
            guard seen.insert("\(section).\(key)").inserted else {
                fail("'\(key)' is set twice in [\(section)]")
                continue
            }
            switch config.assign(section: section, key: key, value: value, kind: kind, base: base) {
            case .some(let message): fail(message)
            case .none: break
            }
        }
        return (config, problems)
    }

    /// Sets one key; returns a problem message or nil.
    private mutating func assign(section: String, key: String, value: String, kind: Kind, base: String) -> String? {
        func resolve(_ text: String) -> String? {
            DiscoveryPath.normalize(text, relativeTo: base)
        }
        var path: String?
        var paths: [String] = []
        switch kind {
        case .path:
            if value.isEmpty {
                path = nil
            } else {
                guard let resolved = resolve(value) else {
                    return "'\(key)' is not a valid path"
                }
                path = resolved
            }
        case .paths:
            for item in value.split(separator: ",").map({ String($0).trimmed }) where !item.isEmpty {
                guard let resolved = resolve(item) else {
                    return "'\(key)' holds an invalid path"
                }
                paths.append(resolved)
            }
        case .bool:
            guard ["yes", "no", "true", "false", "1", "0"].contains(value) else {
                return "'\(key)' must be yes or no"
            }
        case .url:
            guard value.hasPrefix("https://"), value.count > 8, !value.contains(" ") else {
                return "'\(key)' must be an https:// URL (the panel is reached over HTTPS only)"
            }
        case .pin:
            guard value.isEmpty || (value.hasPrefix("sha256//") && value.count > 8) else {
                return "'\(key)' must look like sha256//BASE64 (libcurl's pinned public key form)"
            }
        case .level:
            guard ["debug", "info", "warning", "error"].contains(value) else {
                return "'\(key)' must be debug, info, warning or error"
            }
        case .bytes:
            guard let number = Int(value), number >= 65536, number <= 1 << 34 else {
                return "'\(key)' must be a number of bytes from 65536 to 17179869184"
            }
        case .seconds:
            guard let number = Int(value), number >= 0, number <= 86400 else {
                return "'\(key)' must be a number of seconds from 0 to 86400"
            }
        case .program:
            // Absolute and plain: sudoers matches the exact path, and no shell ever sees it.
            guard value.hasPrefix("/"), !value.contains(" "), !value.contains("//"), !value.contains("/../"),
                  !value.hasSuffix("/..") else {
                return "'\(key)' must be an absolute path to the program, without spaces"
            }
        case .string:
            break
        }
        switch (section, key) {
        case ("panel", "url"): panelURL = value.hasSuffix("/") ? String(value.dropLast()) : value
        case ("panel", "ca_file"): caFile = path
        case ("panel", "pin_sha256"): pinSHA256 = value.isEmpty ? nil : value
        case ("panel", "command_poll_idle_after"): commandPollIdleAfter = Int(value) ?? commandPollIdleAfter
        case ("agent", "state_dir"): stateDir = path ?? stateDir
        case ("agent", "collectors_file"): collectorsFile = path ?? collectorsFile
        case ("agent", "allowed_actions_file"): allowedActionsFile = path ?? allowedActionsFile
        case ("agent", "install_token_file"): installTokenFile = path ?? installTokenFile
        case ("agent", "log_level"): logLevel = value
        case ("agent", "spool_max_bytes"): spoolMaxBytes = Int(value) ?? spoolMaxBytes
        case ("discovery", "auto"): autoDiscovery = ["yes", "true", "1"].contains(value)
        case ("discovery", "config_dirs"): configDirs = paths
        case ("discovery", "proc_root"): procRoot = path ?? procRoot
        case ("discovery", "systemd_dirs"): systemdDirs = paths
        case ("discovery", "version_dirs"): versionDirs = paths
        case ("service", "sudo"): sudo = value
        case ("service", "systemctl"): systemctl = value
        default: return "unknown key '\(key)' in [\(section)]"
        }
        return nil
    }

    /// `#` starts a comment at the line start or after whitespace, so `a#b` stays a value.
    static func stripComment(_ line: String) -> String {
        var previous: Character = " "
        for (offset, character) in line.enumerated() {
            if character == "#" && (previous == " " || previous == "\t") {
                return String(line.prefix(offset))
            }
            previous = character
        }
        return line
    }
}

extension String {
    var trimmed: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" || first == "\r" {
            slice = slice.dropFirst()
        }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" {
            slice = slice.dropLast()
        }
        return String(slice)
    }
}
