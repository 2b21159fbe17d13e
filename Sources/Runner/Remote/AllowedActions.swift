#if canImport(Glibc)
import Glibc
#endif
import Platform

/// The operator's veto (PANEL-API.md "Local veto"): `/etc/myosicam/allowed-actions`, one command
/// type (`apply_config`, `resync`, `service` for every action) or `service:<action>` per line,
/// `#` comments. Read again for every command, so an edit takes effect at once.
///
/// - No file: everything is allowed (the contract's default).
/// - A file: only what it lists; an empty file allows nothing.
/// - A file that is not owned by root, is writable by anyone but root, or has a line the agent
///   does not understand: nothing is allowed, and the reason says which. The veto exists to bind
///   the agent, so it fails closed and is never something the agent could have written itself.
enum AllowedActions {
    enum Decision: Sendable, Equatable {
        case allowed
        case refused(String)
    }

    static let names: Set<String> = ["apply_config", "resync", "service", "service:start", "service:stop",
                                     "service:restart", "service:reload"]

    static func decide(_ vetoName: String, path: String) -> Decision {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT ? .allowed : .refused("\(path) cannot be read; refusing every command")
        }
        guard info.st_uid == 0, info.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
            return .refused("\(path) must be owned by root and writable by root only; refusing every command")
        }
        guard let bytes = Files.read(path, limit: 65536) else {
            return .refused("\(path) cannot be read; refusing every command")
        }
        switch parse(String(decoding: bytes, as: UTF8.self), path: path) {
        case .failure(let problem):
            return .refused(problem.message + "; refusing every command")
        case .success(let allowed):
            let family = vetoName.split(separator: ":").first.map(String.init) ?? vetoName
            return allowed.contains(vetoName) || allowed.contains(family) ? .allowed : .refused("not allowed on this server")
        }
    }

    struct Problem: Error, Sendable, Equatable {
        let message: String
    }

    static func parse(_ text: String, path: String) -> Result<Set<String>, Problem> {
        var allowed: Set<String> = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = AgentConfig.stripComment(String(raw)).trimmed
            guard !line.isEmpty else {
                continue
            }
            guard names.contains(line) else {
                return .failure(Problem(message: "\(path):\(index + 1): unknown action (known: "
                    + names.sorted().joined(separator: ", ") + ")"))
            }
            allowed.insert(line)
        }
        return .success(allowed)
    }
}
