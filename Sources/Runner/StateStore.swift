#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import OScam
import Pipeline
import Platform
import Sinks

/// The daemon's state in `state_dir` (mode 0700): `state.json` (mode 0600), written by temp file
/// + fsync + rename. It holds the HMAC secret, so it is never logged and never sent.
struct AgentState: Sendable, Equatable {
    enum Status: String, Sendable {
        /// A secret exists and registration was started but not confirmed.
        case pending
        case registered
        /// Ten unsigned rejections over ten minutes (PANEL-API "Revocation").
        case revoked
    }

    static let fileName = "state.json"
    static let formatVersion = 1

    var status: Status
    var secret: [UInt8]
    var serverID: String?
    var clockOffset: Int64 = 0
    var heartbeatSeq: Int64 = 0
    var snapshotSeq: Int64 = 0
    var registeredAt: Int64?
    /// The install token was used but could not be deleted: never read it again.
    var tokenConsumed = false

    var json: JSONValue {
        .members([
            ("version", .int(Int64(Self.formatVersion))), ("status", .string(status.rawValue)),
            ("secret", .string(Data(secret).base64EncodedString())), ("server_id", .string(serverID)),
            ("clock_offset_s", .int(clockOffset)), ("heartbeat_seq", .int(heartbeatSeq)),
            ("snapshot_seq", .int(snapshotSeq)), ("registered_at", .int(registeredAt)),
            ("token_consumed", .bool(tokenConsumed)),
        ])
    }
}

/// One agent process per state dir: `state_dir/lock`, held with flock(2) for the life of the
/// process (the kernel lets it go when the process dies, also on SIGKILL). Two daemons on one
/// state dir would each run commands and roll back each other's edits at start-up.
enum StateLock {
    enum Outcome {
        case held
        /// Another process holds it: exit 75 (systemd tries again later).
        case busy(String)
        case failed(String)
    }

    static func acquire(_ directory: String) -> Outcome {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            return .failed("\(directory): cannot create the state directory: \(String(cString: strerror(errno)))")
        }
        let path = directory + "/lock"
        // Read-only and 0644: it holds nothing, and flock(2) needs no write access.
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            return .failed("\(path): cannot open the agent's lock: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            return code == EWOULDBLOCK
                ? .busy("another myosicam-agent is running with the state directory \(directory); not starting a second")
                : .failed("\(path): cannot lock: \(String(cString: strerror(code)))")
        }
        // Kept open, and so locked, until the process ends.
        return .held
    }

    /// Removes the temporary files a killed agent left in the state dir and its subdirectories
    /// (state, status, spool, command records, journal). Call with the lock held.
    static func removeLeftovers(_ directory: String) {
        var directories = [directory] + ["spool", "commands", "journal", "backup"].map { directory + "/" + $0 }
        directories += (Files.list(directory + "/backup") ?? []).map { directory + "/backup/" + $0 }
        for path in directories {
            AtomicFile.removeLeftovers(in: path)
        }
    }

    /// nil when the lock is held; else the exit status, with the reason logged.
    static func acquire(_ directory: String, logger: Logger) -> Int32? {
        switch acquire(directory) {
        case .held:
            return nil
        case .busy(let message):
            logger.error(message)
            return Exit.tempfail
        case .failed(let message):
            logger.error(message)
            return Exit.config
        }
    }
}

/// Reading and writing the state file. A state file that exists but cannot be read or makes no
/// sense is an error that names it: it is never silently replaced, since a new registration
/// would orphan the server the panel knows.
struct StateStore: Sendable {
    struct Failure: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    let directory: String

    var path: String {
        directory + "/" + AgentState.fileName
    }

    /// nil when there is no state yet.
    func load() throws(Failure) -> AgentState? {
        let bytes: [UInt8]
        do {
            bytes = try RealFileSystem().readFile(path, limit: 1 << 20)
        } catch {
            if error.code == .notFound {
                return nil
            }
            throw Failure(description: "\(path): cannot read the agent state: \(error.reason)")
        }
        func corrupt(_ why: String) -> Failure {
            Failure(description: "\(path): the agent state is damaged (\(why)); it was left as it is. Restore it from "
                + "a backup, or remove it and register again with a new install token")
        }
        let value: JSONValue
        do {
            value = try StrictJSON.parse(bytes)
        } catch {
            throw corrupt(error.description)
        }
        guard case .object(let members) = value else {
            throw corrupt("not a JSON object")
        }
        guard case .int(let version)? = members["version"], version == Int64(AgentState.formatVersion) else {
            throw corrupt("unknown format version")
        }
        guard case .string(let statusText)? = members["status"], let status = AgentState.Status(rawValue: statusText) else {
            throw corrupt("no valid status")
        }
        guard case .string(let secretText)? = members["secret"], let secret = Data(base64Encoded: secretText),
              secret.count == 32 else {
            throw corrupt("no valid secret")
        }
        var state = AgentState(status: status, secret: Array(secret))
        if case .string(let id)? = members["server_id"] {
            guard Self.isValidID(id) else {
                throw corrupt("invalid server id")
            }
            state.serverID = id
        }
        if status != .pending && state.serverID == nil {
            throw corrupt("registered without a server id")
        }
        func integer(_ key: String) throws(Failure) -> Int64? {
            switch members[key] {
            case .int(let number)?: return number
            case nil, .null?: return nil
            default: throw corrupt("\(key) is not an integer")
            }
        }
        state.clockOffset = try integer("clock_offset_s") ?? 0
        state.heartbeatSeq = try integer("heartbeat_seq") ?? 0
        state.snapshotSeq = try integer("snapshot_seq") ?? 0
        state.registeredAt = try integer("registered_at")
        if case .bool(let consumed)? = members["token_consumed"] {
            state.tokenConsumed = consumed
        }
        return state
    }

    /// Creates the directory (0700) if needed and replaces the state file atomically (0600).
    func save(_ state: AgentState) throws(Failure) {
        var info = stat()
        if stat(directory, &info) != 0 {
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw Failure(description: "\(directory): cannot create the state directory: \(String(cString: strerror(errno)))")
            }
        }
        do {
            try AtomicFile.write(state.json.encoded(), to: path, mode: 0o600)
        } catch {
            throw Failure(description: error.isNoSpace
                ? "\(path): the disk is full; the agent state was not saved (the previous one is intact)"
                : error.description)
        }
    }

    /// `[A-Za-z0-9_-]{1,64}` (PANEL-API "Formats").
    static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return (1...64).contains(bytes.count) && bytes.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45
        }
    }
}
