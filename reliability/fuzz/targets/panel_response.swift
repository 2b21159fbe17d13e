import OScam
import Pipeline
import Sinks

// What the panel's answers go through once their signature verified: the strict JSON reader,
// the error-name reader, and the command validator (PanelCommand, compiled in from the Runner)
// on the answer itself, on each element of its `commands` and, for an array, on each element.
// A command without a valid id must never be answerable; an answerable one must carry exactly
// the id it was sent with; a valid one must hold what the executor relies on, and must survive
// the command store's record round trip.

let now: Int64 = 1_795_945_629
/// Put in place of every value an edit carries (a password, say) to see where values flow.
let valueMarker = "\u{1}marker-for-a-value-the-panel-sent\u{1}"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPanelResponse(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzerBytes(data, size)
    let value: JSONValue
    do {
        value = try StrictJSON.parse(bytes)
    } catch {
        require((0...bytes.count).contains(error.offset), "error offset \(error.offset) outside \(bytes.count) bytes")
        require(isOneLine(error.message), "parser message must be one line")
        require(PanelClient.errorName(bytes) == nil, "an error name from a body that is not JSON")
        return 0
    }
    require(String(validating: bytes, as: UTF8.self) != nil, "accepted JSON must be UTF-8")
    require(depth(value) <= StrictJSON.maxDepth + 1, "accepted JSON nested deeper than the bound")
    // The agent's own encoding of what it read must read back to the same bytes.
    let encoded = value.encoded()
    let reread = try? StrictJSON.parse(encoded)
    require(reread?.encoded() == encoded, "re-encoded JSON does not read back")

    if let name = PanelClient.errorName(bytes) {
        guard case .object(let members) = value, case .string(name)? = members["error"] else {
            require(false, "error name \(name) is not the body's error member")
            return 0
        }
        require(name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || $0 == 95 }, "error name outside [a-z_]")
    }

    var candidates = [value]
    if case .object(let members) = value, case .array(let list)? = members["commands"] {
        candidates += list.prefix(1000)
    }
    if case .array(let list) = value {
        candidates += list.prefix(1000)
    }
    for candidate in candidates {
        checkCommand(candidate)
    }
    return 0
}

func checkCommand(_ value: JSONValue) {
    let parsed = PanelCommand.parse(value, now: now)
    var sentID: String?
    if case .object(let fields) = value, case .string(let id)? = fields["id"] {
        sentID = id
    }
    let answerable = sentID.map(isPanelID) ?? false
    switch parsed {
    case .unanswerable(let reason):
        require(!answerable, "a command with a valid id was not answerable")
        require(isOneLine(reason), "reason must be one line")
    case .rejected(let id, let type, let reason):
        require(answerable && id == sentID, "rejected a command under an id it was not sent with: \(id)")
        require(PanelCommand.knownTypes.contains(type) || type == "unknown", "type \(type) reaches a result")
        require(!reason.isEmpty, "a rejection without a reason")
    case .valid(let command):
        require(answerable && command.id == sentID, "accepted a command under an id it was not sent with")
        checkValid(command)
    }
    if case .rejected(_, _, let reason) = PanelCommand.parse(marked(value), now: now) {
        require(!reason.contains(valueMarker), "a value the panel sent reached a rejection reason")
    }
}

func checkValid(_ command: PanelCommand) {
    require(command.expiresAt > now, "an expired command is valid")
    require(PanelCommand.knownTypes.contains(command.type), "unknown type \(command.type) is valid")
    switch command.kind {
    case .resync:
        require(command.instance == nil && command.type == "resync", "resync with an instance")
    case .service:
        require(command.type == "service", "service kind under type \(command.type)")
    case .applyConfig(let file, let base, let edits):
        require(command.type == "apply_config", "apply_config kind under type \(command.type)")
        require(file == .user || file == .conf, "apply_config on \(file.rawValue)")
        require((1...ConfigDocument.maxEdits).contains(edits.count), "\(edits.count) edits accepted")
        require(base.map { $0.utf8.count == 64 && $0.utf8.allSatisfy(isLowerHex) } ?? true, "base_sha256 shape")
    }
    if command.type != "resync" {
        require(command.instance.map(DiscoveredInstance.isWellFormedID) == true, "instance id not well formed")
    }
    // What CommandChannel records before it runs a command must read back as it was written.
    let record = CommandRecord(id: command.id, type: command.type, instance: command.instance,
                               expiresAt: command.expiresAt, phase: .running, startedAt: now)
    let reread = (try? StrictJSON.parse(record.json.encoded())).flatMap(CommandRecord.init(json:))
    require(reread == record, "the command's record does not read back")
    // Once answered, the record is pruned at some start after it expired (must not trap).
    var answered = record
    answered.reported = true
    for time in [now, Int64.max, Int64.min] {
        _ = CommandStore.isPastKeeping(answered, now: time)
    }
}

/// `[A-Za-z0-9_-]{1,64}`, restated from docs/commands.md.
func isPanelID(_ id: String) -> Bool {
    (1...64).contains(id.unicodeScalars.count) && id.unicodeScalars.allSatisfy { scalar in
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "_" || scalar == "-"
    }
}

func isLowerHex(_ byte: UInt8) -> Bool {
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
}

func depth(_ value: JSONValue) -> Int {
    switch value {
    case .array(let items): 1 + (items.map(depth).max() ?? 0)
    case .object(let members): 1 + (members.values.map(depth).max() ?? 0)
    default: 0
    }
}

/// The command with every value an edit carries replaced by `valueMarker`: the strings in `set`
/// objects and the `value` of `set` edits.
func marked(_ command: JSONValue) -> JSONValue {
    guard case .object(var fields) = command, case .array(let edits)? = fields["edits"] else {
        return command
    }
    fields["edits"] = .array(edits.map { edit in
        guard case .object(var members) = edit else { return edit }
        if case .string? = members["value"] {
            members["value"] = .string(valueMarker)
        }
        if case .object(let pairs)? = members["set"] {
            members["set"] = .object(pairs.mapValues { if case .string = $0 { .string(valueMarker) } else { $0 } })
        }
        return .object(members)
    })
    return .object(fields)
}
