/// The second wall: removes every secret value known on this host, and anything shaped like card
/// data, from every string in the payload, and counts what it removed per rule.
///
/// The typed model already has no field for a secret; this filter assumes it might be wrong (a
/// password reused as an account name, a key pasted into a description that a future field
/// reports) and scrubs the values wherever they appear. Secrets of 4 bytes or more are found
/// anywhere inside a string; shorter ones only as a whole string, since a 2-byte password found
/// "inside" every word would wreck the payload without protecting anything.
public struct RedactionFilter: StringFilter {
    public static let replacement = "<redacted>"
    public static let minimumSubstringLength = 4
    /// Fields that hold a hash of a file, which is hex by design and not card data.
    static let hexExemptKeys: Set<String> = ["sha256"]

    public let name = "redaction"
    private let exact: [String: String]
    /// Secret length → rolling hash → candidate secrets of that length.
    private let byLength: [Int: [UInt64: [(bytes: [UInt8], rule: String)]]]
    private let lengths: [Int]
    /// Strings shorter than this and not a whole-value secret cannot hold a secret; card
    /// patterns need at least 16 bytes. Most strings of a payload are that short.
    private let shortest: Int

    /// `secrets` are `(rule, value)` pairs, e.g. `("oscam.user:pwd", "hunter22")`;
    /// `wholeValueOnly` are scrubbed only where a string is exactly them (login names, which
    /// also occur inside paths and labels).
    public init(secrets: [(rule: String, value: String)], wholeValueOnly: [(rule: String, value: String)] = []) {
        var exact: [String: String] = [:]
        var byLength: [Int: [UInt64: [(bytes: [UInt8], rule: String)]]] = [:]
        for (rule, value) in wholeValueOnly where !value.isEmpty && exact[value] == nil {
            exact[value] = rule
        }
        for (rule, value) in secrets where !value.isEmpty {
            let bytes = Array(value.utf8)
            if bytes.count >= Self.minimumSubstringLength {
                byLength[bytes.count, default: [:]][Self.hash(bytes[...]), default: []].append((bytes, rule))
            } else if exact[value] == nil {
                exact[value] = rule
            }
        }
        self.exact = exact
        self.byLength = byLength
        lengths = byLength.keys.sorted(by: >)
        shortest = min(lengths.last ?? Int.max, CardPatterns.minimumHexRun)
    }

    public var secretCount: Int {
        exact.count + byLength.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
    }

    public func apply(_ value: JSONValue, counts: inout [String: Int]) -> JSONValue {
        walk(value, key: nil, counts: &counts)
    }

    private func walk(_ value: JSONValue, key: String?, counts: inout [String: Int]) -> JSONValue {
        switch value {
        case .string(let text):
            return .string(scrub(text, key: key, counts: &counts))
        case .array(let items):
            return .array(items.map { walk($0, key: key, counts: &counts) })
        case .object(let members):
            var result: [String: JSONValue] = [:]
            for (name, member) in members {
                result[name] = walk(member, key: name, counts: &counts)
            }
            return .object(result)
        default:
            return value
        }
    }

    /// One string: exact short secrets, then every known secret inside it, then card patterns.
    public func scrub(_ text: String, key: String?, counts: inout [String: Int]) -> String {
        if !exact.isEmpty, let rule = exact[text] {
            counts[rule, default: 0] += 1
            return Self.replacement
        }
        if text.utf8.count < shortest {
            return text
        }
        let bytes = Array(text.utf8)
        // Every match is found on the original bytes first, then overlapping matches are merged
        // and each merged range replaced once: no secret keeps a part outside an overlap, and
        // the replacement text itself is never searched.
        var matches: [(start: Int, end: Int, rule: String)] = []
        for length in lengths where length <= bytes.count {
            guard let table = byLength[length] else {
                continue
            }
            var power: UInt64 = 1
            for _ in 1..<length {
                power = power &* Self.base
            }
            var start = 0
            var rolling = Self.hash(bytes[0..<length])
            while true {
                if let candidates = table[rolling],
                   let hit = candidates.first(where: { $0.bytes.elementsEqual(bytes[start..<(start + length)]) }) {
                    matches.append((start, start + length, hit.rule))
                }
                let next = start + length
                guard next < bytes.count else {
                    break
                }
                rolling = (rolling &- UInt64(bytes[start]) &* power) &* Self.base &+ UInt64(bytes[next])
                start += 1
            }
        }
        var changed = false
        var output = bytes
        if !matches.isEmpty {
            changed = true
            matches.sort { ($0.start, -$0.end) < ($1.start, -$1.end) }
            output = []
            output.reserveCapacity(bytes.count)
            var copied = 0
            var index = 0
            while index < matches.count {
                var end = matches[index].end
                let start = matches[index].start
                counts[matches[index].rule, default: 0] += 1
                index += 1
                while index < matches.count, matches[index].start < end {
                    // A match inside a longer one is part of that secret, not one of its own.
                    if matches[index].end > end {
                        counts[matches[index].rule, default: 0] += 1
                        end = matches[index].end
                    }
                    index += 1
                }
                output += bytes[copied..<start]
                output += Array(Self.replacement.utf8)
                copied = end
            }
            output += bytes[copied...]
        }
        var result = changed ? String(decoding: output, as: UTF8.self) : text
        if !(key.map(Self.hexExemptKeys.contains) ?? false) {
            result = CardPatterns.scrub(result, counts: &counts)
        }
        return result
    }

    private static let base: UInt64 = 257

    private static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 &* base &+ UInt64($1) }
    }
}

/// Shapes of card data that must never leave even when no file named them: long hex strings
/// (keys, serials, EMM/ECM payloads) and ATRs.
enum CardPatterns {
    static let hexRule = "pattern:hex16"
    static let atrRule = "pattern:atr"
    static let minimumHexRun = 16

    static func scrub(_ text: String, counts: inout [String: Int]) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count >= 16 else {
            return text
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        var changed = false
        while index < bytes.count {
            if let end = atrEnd(bytes, from: index) {
                output += Array(RedactionFilter.replacement.utf8)
                counts[atrRule, default: 0] += 1
                index = end
                changed = true
                continue
            }
            var end = index
            while end < bytes.count, isHex(bytes[end]) {
                end += 1
            }
            if end - index >= minimumHexRun, index == 0 || !isWordByte(bytes[index - 1]) || isHexPrefix(bytes, index),
               end == bytes.count || !isWordByte(bytes[end]) {
                output += Array(RedactionFilter.replacement.utf8)
                counts[hexRule, default: 0] += 1
                index = end
                changed = true
                continue
            }
            let stop = max(end, index + 1)
            output += bytes[index..<stop]
            index = stop
        }
        return changed ? String(decoding: output, as: UTF8.self) : text
    }

    /// `3B 9F 21 0E …`: eight or more space-separated hex bytes starting with an ATR's TS byte.
    private static func atrEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard start + 2 <= bytes.count, bytes[start] == UInt8(ascii: "3"),
              bytes[start + 1] == UInt8(ascii: "B") || bytes[start + 1] == UInt8(ascii: "F")
                || bytes[start + 1] == UInt8(ascii: "b") || bytes[start + 1] == UInt8(ascii: "f"),
              start == 0 || !isWordByte(bytes[start - 1]) else {
            return nil
        }
        var index = start
        var pairs = 0
        var end = start
        while index + 1 < bytes.count, isHex(bytes[index]), isHex(bytes[index + 1]) {
            pairs += 1
            end = index + 2
            guard end < bytes.count, bytes[end] == UInt8(ascii: " ") else {
                break
            }
            index = end + 1
        }
        return pairs >= 8 ? end : nil
    }

    /// `0x` right before `index`, itself at a word start: `0x0123…` is hex, not a word.
    private static func isHexPrefix(_ bytes: [UInt8], _ index: Int) -> Bool {
        index >= 2 && (bytes[index - 1] == UInt8(ascii: "x") || bytes[index - 1] == UInt8(ascii: "X"))
            && bytes[index - 2] == UInt8(ascii: "0") && (index == 2 || !isWordByte(bytes[index - 3]))
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 70) || (byte >= 97 && byte <= 102)
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        isHex(byte) || (byte >= 71 && byte <= 90) || (byte >= 103 && byte <= 122) || byte == 95
    }
}
