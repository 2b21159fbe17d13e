#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Platform
import Sinks

/// The answer to one command (PANEL-API.md `POST /commands/<id>/result`). Messages and details
/// are built by the agent from names, hashes and its own words: never from a value the panel
/// sent, so a password in an edit cannot come back out here.
struct CommandResult: Sendable, Equatable {
    enum Status: String, Sendable {
        case succeeded, failed, rejected, conflict
    }

    var status: Status
    var startedAt: Int64
    var finishedAt: Int64
    var message: String
    var details: [String: JSONValue] = [:]

    var json: JSONValue {
        .members([("status", .string(status.rawValue)), ("started_at", .int(startedAt)),
                  ("finished_at", .int(finishedAt)), ("message", .string(message)),
                  ("details", .object(details))])
    }

    init(status: Status, startedAt: Int64, finishedAt: Int64, message: String, details: [String: JSONValue] = [:]) {
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.message = Self.oneLine(message)
        self.details = details
    }

    init?(json: JSONValue) {
        guard case .object(let fields) = json, case .string(let name)? = fields["status"],
              let status = Status(rawValue: name), case .int(let started)? = fields["started_at"],
              case .int(let finished)? = fields["finished_at"], case .string(let message)? = fields["message"] else {
            return nil
        }
        var details: [String: JSONValue] = [:]
        if case .object(let object)? = fields["details"] {
            details = object
        }
        self.init(status: status, startedAt: started, finishedAt: finished, message: message, details: details)
    }

    /// One line, bounded: results are shown in the panel and logged.
    static func oneLine(_ text: String) -> String {
        var line = String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
        if line.utf8.count > 500 {
            line = String(line.prefix(480)) + "…"
        }
        return line
    }
}

/// One command the agent has seen, kept in `state_dir/commands/<id>.json` (mode 0600, atomic
/// writes). The record is written before a command starts and again with its result before the
/// result is sent, so a command is executed at most once and its result survives restarts until
/// the panel has acknowledged it.
struct CommandRecord: Sendable, Equatable {
    enum Phase: String, Sendable {
        case running, done
    }

    let id: String
    let type: String
    let instance: String?
    let expiresAt: Int64
    var phase: Phase
    var startedAt: Int64
    var result: CommandResult?
    var reported = false

    var json: JSONValue {
        .members([("id", .string(id)), ("type", .string(type)), ("instance", .string(instance)),
                  ("expires_at", .int(expiresAt)), ("phase", .string(phase.rawValue)), ("started_at", .int(startedAt)),
                  ("result", result?.json), ("reported", .bool(reported))])
    }

    init(id: String, type: String, instance: String?, expiresAt: Int64, phase: Phase, startedAt: Int64,
         result: CommandResult? = nil, reported: Bool = false) {
        self.id = id
        self.type = type
        self.instance = instance
        self.expiresAt = expiresAt
        self.phase = phase
        self.startedAt = startedAt
        self.result = result
        self.reported = reported
    }

    init?(json: JSONValue) {
        guard case .object(let fields) = json, case .string(let id)? = fields["id"], PanelCommand.isValidID(id),
              case .string(let type)? = fields["type"], case .int(let expires)? = fields["expires_at"],
              case .string(let phaseName)? = fields["phase"], let phase = Phase(rawValue: phaseName),
              case .int(let started)? = fields["started_at"] else {
            return nil
        }
        var instance: String?
        if case .string(let name)? = fields["instance"] {
            instance = name
        }
        let result = fields["result"].flatMap(CommandResult.init(json:))
        if phase == .done && result == nil {
            return nil
        }
        var reported = false
        if case .bool(let flag)? = fields["reported"] {
            reported = flag
        }
        self.init(id: id, type: type, instance: instance, expiresAt: expires, phase: phase, startedAt: started,
                  result: result, reported: reported)
    }
}

struct CommandStore: Sendable {
    struct Failure: Error, Sendable, CustomStringConvertible {
        let description: String
        let isNoSpace: Bool
    }

    let directory: String
    /// Answered records are kept this long after their command expired, so a late re-delivery
    /// still finds its result; after that the panel's own expiry check rejects it anyway.
    static let keepAfterExpiry: Int64 = 86_400

    init(stateDir: String) {
        directory = stateDir + "/commands"
    }

    private func path(_ id: String) -> String {
        directory + "/" + id + ".json"
    }

    func load(_ id: String) -> CommandRecord? {
        guard PanelCommand.isValidID(id), let bytes = Files.read(path(id), limit: 1 << 20),
              let json = try? StrictJSON.parse(bytes) else {
            return nil
        }
        return CommandRecord(json: json)
    }

    /// Whether a file for this id exists at all, readable or not: a damaged record still means
    /// the command was seen, and it must not run a second time.
    func exists(_ id: String) -> Bool {
        access(path(id), F_OK) == 0
    }

    func save(_ record: CommandRecord) throws(Failure) {
        if access(directory, F_OK) != 0 && mkdir(directory, 0o700) != 0 && errno != EEXIST {
            let code = errno
            throw Failure(description: "\(directory): cannot create: \(String(cString: strerror(code)))",
                          isNoSpace: code == ENOSPC)
        }
        do {
            try AtomicFile.write(record.json.encoded(), to: path(record.id))
        } catch {
            throw Failure(description: error.description, isNoSpace: error.isNoSpace)
        }
    }

    func all() -> [CommandRecord] {
        (Files.list(directory) ?? []).filter { $0.hasSuffix(".json") }.compactMap { load(String($0.dropLast(5))) }
    }

    /// Results not yet acknowledged by the panel, oldest first.
    func unreported() -> [CommandRecord] {
        all().filter { $0.phase == .done && !$0.reported }
            .sorted { ($0.result?.finishedAt ?? 0, $0.id) < ($1.result?.finishedAt ?? 0, $1.id) }
    }

    /// Drops answered records well past their expiry.
    func prune(now: Int64) {
        for record in all() where Self.isPastKeeping(record, now: now) {
            unlink(path(record.id))
        }
    }

    /// Whether an answered record has been kept long enough. `expires_at` is the panel's number:
    /// one near `Int64.max` ("never") must mean "keep", not an overflow that traps at every start.
    static func isPastKeeping(_ record: CommandRecord, now: Int64) -> Bool {
        let (keepUntil, overflow) = record.expiresAt.addingReportingOverflow(keepAfterExpiry)
        return record.reported && !overflow && keepUntil < now
    }
}
