@testable import OScam

// The OScam document model (Sources/OScam/Config): any bytes as any of the three files must
// serialize back byte for byte, and an edit list decoded from the input must either be refused
// with the document untouched or leave a file that re-parses to exactly what the edits asked for
// (ConfigEditOracle, shared with ConfigFuzzTests). Input: the file's bytes, optionally followed by
// `editMarker` and an edit script; without a script a fixed, realistic edit list is applied.

let editMarker: [UInt8] = Array("\n#%edits%\n".utf8)

let users = ["alice", "bob", "carol", "new-user", "ünï", "a b"]
let sections = ["global", "webif", "newcamd", "monitor", "cccam", "dvbapi", "cache"]
let keys = ["pwd", "group", "caid", "ident", "nice", "httpport", "httpallowed", "au", "expdate", "disabled", "x_1"]
let values = ["s3cret", "1,2", "0963", "-1", "4500", "127.0.0.1", "", "2027-01-01", "a=b", "[x]", "# x", "ünïcödé"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigDocument(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzerBytes(data, size)
    guard let marker = firstRange(of: editMarker, in: input) else {
        for file in OScamFile.allCases {
            check(input, file: file, edits: defaultEdits(file), raw: false, mixed: false)
        }
        return 0
    }
    var script = FuzzBytes(input[marker.upperBound...])
    let file = OScamFile.allCases[Int(script.byte()) % OScamFile.allCases.count]
    var raw = false
    var mixed = false
    var edits: [ConfigEdit] = []
    for _ in 0..<(1 + Int(script.byte() % 8)) where !script.isEmpty {
        let edit = decodeEdit(&script, raw: &raw)
        mixed = mixed || (file == .user) != isAccountEdit(edit)
        edits.append(edit)
    }
    check(Array(input[..<marker.lowerBound]), file: file, edits: edits, raw: raw, mixed: mixed)
    return 0
}

func check(_ bytes: [UInt8], file: OScamFile, edits: [ConfigEdit], raw: Bool, mixed: Bool) {
    // Names and values from the pools are valid, so then only the file itself may be refused.
    var refusals: Set<ConfigEditError.Code> = [.unsafeFile, .wouldNotParse]
    if raw {
        refusals.formUnion([.invalidKey, .invalidSection, .invalidUser, .invalidValue])
    }
    if mixed {
        refusals.insert(.wrongFile)
    }
    let outcome = ConfigEditOracle.check(bytes, file: file, edits: edits, refusals: refusals)
    require(outcome.violations.isEmpty, "\(file.rawValue): \(outcome.violations.joined(separator: "; "))")
    if outcome.applied {
        for edit in edits {
            require(followsDocumentedRules(edit), "an edit outside docs/commands.md's rules was accepted: \(edit)")
        }
    }
}

func decodeEdit(_ script: inout FuzzBytes, raw: inout Bool) -> ConfigEdit {
    switch script.byte() % 4 {
    case 0:
        let user = script.string(from: users, raw: &raw)
        let set = (0..<Int(script.byte() % 4)).map { _ in
            KeyValue(script.string(from: keys, raw: &raw), script.string(from: values, raw: &raw))
        }
        let unset = (0..<Int(script.byte() % 3)).map { _ in script.string(from: keys, raw: &raw) }
        return .upsertAccount(user: user, set: set, unset: unset)
    case 1:
        return .deleteAccount(user: script.string(from: users, raw: &raw))
    case 2:
        return .set(section: script.string(from: sections, raw: &raw), key: script.string(from: keys, raw: &raw),
                    value: script.string(from: values, raw: &raw))
    default:
        return .unset(section: script.string(from: sections, raw: &raw), key: script.string(from: keys, raw: &raw))
    }
}

func defaultEdits(_ file: OScamFile) -> [ConfigEdit] {
    switch file {
    case .user:
        [.upsertAccount(user: "alice", set: [KeyValue("pwd", "s3cret"), KeyValue("group", "1,2")], unset: ["au"]),
         .deleteAccount(user: "bob"), .upsertAccount(user: "new-user", set: [KeyValue("caid", "0963")], unset: [])]
    case .conf, .server:
        [.set(section: "webif", key: "httpport", value: "8888"), .unset(section: "global", key: "nice"),
         .set(section: "cccam", key: "port", value: "12000")]
    }
}

func isAccountEdit(_ edit: ConfigEdit) -> Bool {
    switch edit {
    case .upsertAccount, .deleteAccount: true
    case .set, .unset: false
    }
}

/// docs/commands.md, restated independently of the validator: names `[a-z0-9_]{1,64}` in a
/// section OScam reads, user names of 1–63 bytes without control bytes, `[ ] = , #` or
/// surrounding spaces, values of at most 8,192 bytes without control bytes or surrounding spaces.
func followsDocumentedRules(_ edit: ConfigEdit) -> Bool {
    func name(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }
    func plain(_ text: String) -> Bool {
        !text.utf8.contains { $0 < 0x20 || $0 == 0x7F } && text.utf8.first != 0x20 && text.utf8.last != 0x20
    }
    func user(_ text: String) -> Bool {
        (1...63).contains(text.utf8.count) && plain(text) && !text.utf8.contains { "[]=,#".utf8.contains($0) }
    }
    func value(_ text: String) -> Bool {
        text.utf8.count <= 8192 && plain(text)
    }
    switch edit {
    case .upsertAccount(let who, let set, let unset):
        return user(who) && set.allSatisfy { name($0.key) && $0.key != "user" && value($0.value) }
            && unset.allSatisfy { name($0) && $0 != "user" }
    case .deleteAccount(let who):
        return user(who)
    case .set(let section, let key, let text):
        return name(section) && oscamConfSections.contains(section) && name(key) && value(text)
    case .unset(let section, let key):
        return name(section) && oscamConfSections.contains(section) && name(key)
    }
}

func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
    guard haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return start..<(start + needle.count)
    }
    return nil
}
