import OScam
import Pipeline

/// A command from the panel (PANEL-API.md "Commands"), checked field by field before anything
/// is touched. Parsing never throws: every way a command can be wrong is a `rejected` result
/// with a reason, except an invalid id, which cannot be answered at all.
struct PanelCommand: Sendable, Equatable {
    enum ServiceAction: String, Sendable, CaseIterable {
        case start, stop, restart, reload
    }

    enum Kind: Sendable, Equatable {
        case applyConfig(file: OScamFile, baseSHA256: String?, edits: [ConfigEdit])
        case service(ServiceAction)
        case resync
    }

    let id: String
    let type: String
    let issuedAt: Int64
    let expiresAt: Int64
    /// The instance the command names; nil for `resync`.
    let instance: String?
    let kind: Kind

    /// What the veto file calls this command: `apply_config`, `resync`, `service:<action>`.
    var vetoName: String {
        if case .service(let action) = kind {
            return "service:" + action.rawValue
        }
        return type
    }

    /// Lets the command id reach a URL path and a file name safely; the panel's own rule.
    static func isValidID(_ id: String) -> Bool {
        let bytes = id.utf8
        return !bytes.isEmpty && bytes.count <= 64 && bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D
        }
    }

    enum Parsed: Sendable, Equatable {
        case valid(PanelCommand)
        /// A command that can be answered, but not executed.
        case rejected(id: String, type: String, reason: String)
        /// No usable id: it cannot be answered, only logged.
        case unanswerable(reason: String)
    }

    static let knownTypes = ["apply_config", "service", "resync"]

    /// Parses one element of the poll answer's `commands` array. `now` is the agent's corrected
    /// clock (local time + the panel's offset).
    static func parse(_ value: JSONValue, now: Int64) -> Parsed {
        guard case .object(let fields) = value else {
            return .unanswerable(reason: "a command is not a JSON object")
        }
        guard case .string(let id)? = fields["id"], isValidID(id) else {
            return .unanswerable(reason: "a command has no valid id ([A-Za-z0-9_-]{1,64})")
        }
        let typeName: String
        if case .string(let text)? = fields["type"] {
            typeName = text
        } else {
            typeName = ""
        }
        func reject(_ reason: String) -> Parsed {
            .rejected(id: id, type: knownTypes.contains(typeName) ? typeName : "unknown", reason: reason)
        }
        guard knownTypes.contains(typeName) else {
            return reject(typeName.isEmpty ? "the command has no type" : "unknown command type")
        }
        guard case .int(let issuedAt)? = fields["issued_at"], case .int(let expiresAt)? = fields["expires_at"] else {
            return reject("issued_at and expires_at must be unix times")
        }
        guard expiresAt > now else {
            return reject("the command expired at \(expiresAt) (agent's corrected clock: \(now))")
        }
        var instance: String?
        if typeName != "resync" {
            guard case .string(let name)? = fields["instance"], DiscoveredInstance.isWellFormedID(name) else {
                return reject("the command names no valid instance id")
            }
            instance = name
        }
        let kind: Kind
        switch typeName {
        case "apply_config":
            switch applyConfig(fields) {
            case .success(let parsed): kind = parsed
            case .failure(let problem): return reject(problem.reason)
            }
        case "service":
            guard case .string(let name)? = fields["action"], let action = ServiceAction(rawValue: name) else {
                return reject("action must be start, stop, restart or reload")
            }
            kind = .service(action)
        default:
            kind = .resync
        }
        return .valid(PanelCommand(id: id, type: typeName, issuedAt: issuedAt, expiresAt: expiresAt,
                                   instance: instance, kind: kind))
    }

    struct Problem: Error, Sendable {
        let reason: String
    }

    private static func applyConfig(_ fields: [String: JSONValue]) -> Result<Kind, Problem> {
        guard case .string(let fileName)? = fields["file"], let file = OScamFile(rawValue: fileName),
              file == .user || file == .conf else {
            return .failure(Problem(reason: "file must be oscam.user or oscam.conf"))
        }
        var base: String?
        switch fields["base_sha256"] {
        case nil, .null?:
            break
        case .string(let hex)? where hex.utf8.count == 64 && hex.utf8.allSatisfy(isLowerHex):
            base = hex
        default:
            return .failure(Problem(reason: "base_sha256 must be 64 lowercase hex digits"))
        }
        guard case .array(let list)? = fields["edits"] else {
            return .failure(Problem(reason: "edits must be a list"))
        }
        guard !list.isEmpty else {
            return .failure(Problem(reason: "edits is empty"))
        }
        guard list.count <= ConfigDocument.maxEdits else {
            return .failure(Problem(reason: "\(list.count) edits; at most \(ConfigDocument.maxEdits) are accepted"))
        }
        var edits: [ConfigEdit] = []
        edits.reserveCapacity(list.count)
        for (index, item) in list.enumerated() {
            switch edit(item) {
            case .success(let edit): edits.append(edit)
            case .failure(let problem): return .failure(Problem(reason: "edit \(index + 1): \(problem.reason)"))
            }
        }
        return .success(.applyConfig(file: file, baseSHA256: base, edits: edits))
    }

    /// One edit's shape; the values themselves are checked by the document model, which knows
    /// OScam's rules and never repeats a value in its messages.
    private static func edit(_ value: JSONValue) -> Result<ConfigEdit, Problem> {
        guard case .object(let fields) = value, case .string(let op)? = fields["op"] else {
            return .failure(Problem(reason: "an edit must be an object with an op"))
        }
        func string(_ name: String) -> String? {
            if case .string(let text)? = fields[name] {
                return text
            }
            return nil
        }
        func only(_ allowed: Set<String>) -> Problem? {
            let extra = fields.keys.filter { !allowed.contains($0) }.sorted()
            return extra.isEmpty ? nil : Problem(reason: "unexpected field '\(extra[0].prefix(40))' in \(op)")
        }
        switch op {
        case "upsert_account":
            guard let user = string("user") else {
                return .failure(Problem(reason: "upsert_account needs a user"))
            }
            var set: [KeyValue] = []
            switch fields["set"] {
            case nil:
                break
            case .object(let pairs)?:
                for key in pairs.keys.sorted() {
                    guard case .string(let text)? = pairs[key] else {
                        return .failure(Problem(reason: "every value in set must be a string"))
                    }
                    set.append(KeyValue(key, text))
                }
            default:
                return .failure(Problem(reason: "set must be an object of strings"))
            }
            var unset: [String] = []
            switch fields["unset"] {
            case nil:
                break
            case .array(let keys)?:
                for key in keys {
                    guard case .string(let name) = key else {
                        return .failure(Problem(reason: "unset must be a list of key names"))
                    }
                    unset.append(name)
                }
            default:
                return .failure(Problem(reason: "unset must be a list of key names"))
            }
            if let problem = only(["op", "user", "set", "unset"]) {
                return .failure(problem)
            }
            return .success(.upsertAccount(user: user, set: set, unset: unset))
        case "delete_account":
            guard let user = string("user") else {
                return .failure(Problem(reason: "delete_account needs a user"))
            }
            return only(["op", "user"]).map { .failure($0) } ?? .success(.deleteAccount(user: user))
        case "set":
            guard let section = string("section"), let key = string("key"), let value = string("value") else {
                return .failure(Problem(reason: "set needs section, key and value strings"))
            }
            return only(["op", "section", "key", "value"]).map { .failure($0) }
                ?? .success(.set(section: section, key: key, value: value))
        case "unset":
            guard let section = string("section"), let key = string("key") else {
                return .failure(Problem(reason: "unset needs section and key strings"))
            }
            return only(["op", "section", "key"]).map { .failure($0) } ?? .success(.unset(section: section, key: key))
        default:
            return .failure(Problem(reason: "unknown op"))
        }
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
    }
}
