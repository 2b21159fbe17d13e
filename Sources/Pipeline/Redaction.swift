#if canImport(Glibc)
import Glibc
#endif

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
    /// Byte lengths of the whole-value secrets (bit n: length n, bit 63: 63 or more), to skip
    /// most lookups: a string of another length cannot equal one of them when both are ASCII
    /// (Swift compares strings by canonical equivalence, under which a non-ASCII string may
    /// equal a shorter or longer one).
    private let exactLengths: UInt64
    private let exactAllASCII: Bool
    /// The secrets found inside strings.
    private let table: SecretTable
    /// Strings shorter than this and not a whole-value secret cannot hold a secret; card
    /// patterns need at least 16 bytes. Most strings of a payload are that short.
    private let shortest: Int
    private let substringCount: Int

    /// `secrets` are `(rule, value)` pairs, e.g. `("oscam.user:pwd", "hunter22")`;
    /// `wholeValueOnly` are scrubbed only where a string is exactly them (login names, which
    /// also occur inside paths and labels).
    public init(secrets: [(rule: String, value: String)], wholeValueOnly: [(rule: String, value: String)] = []) {
        var exact: [String: String] = [:]
        for (rule, value) in wholeValueOnly where !value.isEmpty && exact[value] == nil {
            exact[value] = rule
        }
        for (rule, value) in secrets where !value.isEmpty && value.utf8.count < Self.minimumSubstringLength
            && exact[value] == nil {
            exact[value] = rule
        }
        self.exact = exact
        exactLengths = exact.keys.reduce(0) { $0 | Self.lengthBit($1.utf8.count) }
        exactAllASCII = exact.keys.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
        table = SecretTable(secrets)
        substringCount = secrets.reduce(0) { $0 + ($1.value.utf8.count >= Self.minimumSubstringLength ? 1 : 0) }
        shortest = min(table.minLength > 0 ? table.minLength : Int.max, CardPatterns.minimumHexRun)
    }

    public var secretCount: Int {
        exact.count + substringCount
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
        text.utf8.withContiguousStorageIfAvailable { scrub(text, $0, key: key, counts: &counts) }
            ?? Array(text.utf8).withUnsafeBufferPointer { scrub(text, $0, key: key, counts: &counts) }
    }

    /// `scrub` with the text's bytes at hand, looked at once for most strings.
    private func scrub(_ text: String, _ bytes: UnsafeBufferPointer<UInt8>, key: String?,
                       counts: inout [String: Int]) -> String {
        let mayBeExact = !exact.isEmpty && (exactLengths & Self.lengthBit(bytes.count) != 0 || !exactAllASCII)
        if bytes.count < shortest && !mayBeExact && (exact.isEmpty || TextShape.isASCII(bytes)) {
            // Most strings of a payload: too short to hold a secret, and not one of the short ones.
            return text
        }
        let shape = TextShape(bytes)
        if mayBeExact || (!exact.isEmpty && !shape.isASCII), let rule = exact[text] {
            counts[rule, default: 0] += 1
            return Self.replacement
        }
        if bytes.count < shortest {
            return text
        }
        var result = text
        var changed = false
        if table.minLength > 0 && bytes.count >= table.minLength, let scrubbed = table.scrub(bytes, counts: &counts) {
            result = scrubbed
            changed = true
        }
        // Unchanged text that holds nothing shaped like card data needs no second look.
        if (changed || shape.mayHoldCardData) && !(key.map(Self.hexExemptKeys.contains) ?? false) {
            result = CardPatterns.scrub(result, counts: &counts)
        }
        return result
    }

    private static func lengthBit(_ length: Int) -> UInt64 {
        1 << UInt64(min(length, 63))
    }
}

/// What one pass over a string's bytes says about it, so most strings need no second look.
struct TextShape {
    private(set) var isASCII = true
    /// A run of 16 hex digits or a `3B`/`3F` that could start an ATR: `CardPatterns` may match.
    private(set) var mayHoldCardData = false

    init(_ text: String) {
        self = text.utf8.withContiguousStorageIfAvailable { TextShape($0) }
            ?? Array(text.utf8).withUnsafeBufferPointer { TextShape($0) }
    }

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        isASCII = Self.isASCII(bytes)
        guard bytes.count >= CardPatterns.minimumHexRun else {
            return
        }
        var run = 0
        var previous: UInt8 = 0
        // Hex bytes written as pairs with a separator after each: `01 23 45 …`, `01:23:45:…`.
        var separatedPairs = 0
        for byte in bytes {
            if CardPatterns.isHex(byte) {
                run += 1
            } else {
                let isSeparator = byte == UInt8(ascii: " ") || byte == UInt8(ascii: ":")
                separatedPairs = isSeparator && run == 2 ? separatedPairs + 1 : 0
                run = 0
            }
            if run >= CardPatterns.minimumHexRun || separatedPairs >= CardPatterns.minimumBytes - 1
                || (previous == UInt8(ascii: "3") && ((byte | 0x20) == UInt8(ascii: "b") || (byte | 0x20) == UInt8(ascii: "f"))) {
                mayHoldCardData = true
                return
            }
            previous = byte
        }
    }

    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var bits: UInt8 = 0
        for byte in bytes {
            bits |= byte
        }
        return bits < 0x80
    }
}

/// The secrets found inside strings. All their bytes sit in one array, indexed by one
/// open-addressing table on (length, polynomial hash), so twenty thousand passwords cost a few
/// allocations. A bit set of their first four bytes rules out almost every position of a text
/// with one probe, however many different lengths the secrets have; only where it hits are the
/// lengths tried, each extending the previous hash by one byte. A value listed twice keeps its
/// first rule, as the first match would.
struct SecretTable: Sendable {
    /// 12 bytes a secret: where its bytes are, and its rule.
    private struct Entry: Sendable {
        let start: Int32
        let length: Int32
        let rule: Int32
    }

    /// The shortest and longest secret; 0 when there is none.
    let minLength: Int
    private let maxLength: Int
    /// Bit n set: some secret is n bytes long.
    private let lengthBits: [UInt64]
    private let bytes: [UInt8]
    private let entries: [Entry]
    private let rules: [String]
    /// Entry index + 1, 0 when empty; a power of two long.
    private let slots: [Int32]
    private let slotShift: UInt64
    /// One bit per hashed first four bytes of a secret.
    private let grams: [UInt64]
    private let gramShift: UInt32

    private static let base: UInt64 = 257

    /// The secrets of at least `RedactionFilter.minimumSubstringLength` (4) bytes; shorter ones
    /// are left out.
    init(_ secrets: [(rule: String, value: String)]) {
        var bytes: [UInt8] = []
        var entries: [Entry] = []
        var rules: [String] = []
        var ruleIndex: [String: Int] = [:]
        let slotBits = max(6, Self.log2(secrets.count * 2) + 1)
        let gramBits = min(24, slotBits + 3)
        slotShift = UInt64(64 - slotBits)
        let gramShift = UInt32(32 - gramBits)
        self.gramShift = gramShift
        var slots = [Int32](repeating: 0, count: 1 << slotBits)
        var grams = [UInt64](repeating: 0, count: max(1, (1 << gramBits) / 64))
        bytes.reserveCapacity(secrets.reduce(0) { $0 + $1.value.utf8.count })
        var lastRule: (name: String, index: Int)?
        for (rule, value) in secrets where value.utf8.count >= RedactionFilter.minimumSubstringLength {
            let start = bytes.count
            bytes.append(contentsOf: value.utf8)
            let length = bytes.count - start
            let hash = Self.hash(bytes[start...])
            var slot = Self.slot(hash, length, shift: slotShift)
            var duplicate = false
            while slots[slot] != 0 {
                let other = entries[Int(slots[slot]) - 1]
                let otherStart = Int(other.start)
                if Int(other.length) == length && bytes[otherStart..<(otherStart + length)].elementsEqual(bytes[start...]) {
                    duplicate = true
                    break
                }
                slot = (slot + 1) & (slots.count - 1)
            }
            guard !duplicate else {
                bytes.removeLast(length)
                continue
            }
            // Secrets come in runs of one rule (every account's `pwd`): look the name up once a run.
            let index: Int
            if let lastRule, lastRule.name == rule {
                index = lastRule.index
            } else if let known = ruleIndex[rule] {
                index = known
            } else {
                index = rules.count
                ruleIndex[rule] = index
                rules.append(rule)
            }
            lastRule = (rule, index)
            entries.append(Entry(start: Int32(truncatingIfNeeded: start), length: Int32(truncatingIfNeeded: length),
                                 rule: Int32(truncatingIfNeeded: index)))
            slots[slot] = Int32(entries.count)
            let gram = bytes.withUnsafeBufferPointer { Self.gram($0, start, shift: gramShift) }
            grams[gram >> 6] |= 1 << UInt64(gram & 63)
        }
        minLength = entries.map { Int($0.length) }.min() ?? 0
        maxLength = entries.map { Int($0.length) }.max() ?? 0
        var lengthBits = [UInt64](repeating: 0, count: maxLength / 64 + 1)
        for entry in entries {
            lengthBits[Int(entry.length) >> 6] |= 1 << UInt64(entry.length & 63)
        }
        self.lengthBits = lengthBits
        self.bytes = bytes
        self.entries = entries
        self.rules = rules
        self.slots = slots
        self.grams = grams
    }

    /// The text with every secret inside it replaced, or nil when it holds none. Every match is
    /// found on the original bytes first, then overlapping matches are merged and each merged
    /// range replaced once: no secret keeps a part outside an overlap, and the replacement text
    /// itself is never searched.
    func scrub(_ text: UnsafeBufferPointer<UInt8>, counts: inout [String: Int]) -> String? {
        guard minLength > 0, text.count >= minLength else {
            return nil
        }
        var matches: [(start: Int, end: Int, rule: Int)] = []
        var word = UInt32(text[0]) << 16 | UInt32(text[1]) << 8 | UInt32(text[2])
        for start in 0...(text.count - RedactionFilter.minimumSubstringLength) {
            // The four bytes at `start`, rolled forward one byte at a time.
            word = word << 8 | UInt32(text[start + 3])
            let gram = Int((word &* Self.gramFactor) >> gramShift)
            guard grams[gram >> 6] & (1 << UInt64(gram & 63)) != 0 else {
                continue
            }
            var hash: UInt64 = 0
            let longest = min(maxLength, text.count - start)
            for length in 1...longest {
                hash = hash &* Self.base &+ UInt64(text[start + length - 1])
                if lengthBits[length >> 6] & (1 << UInt64(length & 63)) != 0,
                   let rule = find(hash, length, text, at: start) {
                    matches.append((start, start + length, rule))
                }
            }
        }
        guard !matches.isEmpty else {
            return nil
        }
        matches.sort { ($0.start, -$0.end) < ($1.start, -$1.end) }
        var output: [UInt8] = []
        output.reserveCapacity(text.count)
        var copied = 0
        var index = 0
        while index < matches.count {
            var end = matches[index].end
            let start = matches[index].start
            counts[rules[matches[index].rule], default: 0] += 1
            index += 1
            while index < matches.count, matches[index].start < end {
                // A match inside a longer one is part of that secret, not one of its own.
                if matches[index].end > end {
                    counts[rules[matches[index].rule], default: 0] += 1
                    end = matches[index].end
                }
                index += 1
            }
            output += text[copied..<start]
            output += RedactionFilter.replacement.utf8
            copied = end
        }
        output += text[copied...]
        return String(decoding: output, as: UTF8.self)
    }

    /// The rule of the secret at `text[start..<start + length]`, whose hash is `hash`.
    private func find(_ hash: UInt64, _ length: Int, _ text: UnsafeBufferPointer<UInt8>, at start: Int) -> Int? {
        var slot = Self.slot(hash, length, shift: slotShift)
        while slots[slot] != 0 {
            let entry = entries[Int(slots[slot]) - 1]
            if Int(entry.length) == length && bytes.withUnsafeBufferPointer({ stored in
                guard let mine = stored.baseAddress, let other = text.baseAddress else {
                    return false
                }
                return memcmp(mine + Int(entry.start), other + start, length) == 0
            }) {
                return Int(entry.rule)
            }
            slot = (slot + 1) & (slots.count - 1)
        }
        return nil
    }

    private static func hash(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 &* base &+ UInt64($1) }
    }

    /// The top bits of the hash mixed with the length.
    private static func slot(_ hash: UInt64, _ length: Int, shift: UInt64) -> Int {
        Int(truncatingIfNeeded: ((hash &+ UInt64(length)) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The bit of the four bytes at `start`.
    private static func gram(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, shift: UInt32) -> Int {
        let word = UInt32(bytes[start]) << 24 | UInt32(bytes[start + 1]) << 16 | UInt32(bytes[start + 2]) << 8
            | UInt32(bytes[start + 3])
        return Int((word &* gramFactor) >> shift)
    }

    private static let gramFactor: UInt32 = 0x9E37_79B1

    private static func log2(_ value: Int) -> Int {
        Int.bitWidth - max(1, value).leadingZeroBitCount - 1
    }
}

/// Shapes of card data that must never leave even when no file named them: long hex strings
/// (keys, serials, EMM/ECM payloads), the same written as separated bytes, and ATRs.
enum CardPatterns {
    static let hexRule = "pattern:hex16"
    static let atrRule = "pattern:atr"
    static let bytesRule = "pattern:hexbytes"
    static let minimumHexRun = 16
    /// Eight bytes: a 64-bit key or serial; a MAC address (six) stays.
    static let minimumBytes = 8

    static func scrub(_ text: String, counts: inout [String: Int]) -> String {
        guard text.utf8.count >= minimumHexRun, TextShape(text).mayHoldCardData else {
            return text
        }
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        var changed = false
        while index < bytes.count {
            if let (end, isATR) = separatedBytesEnd(bytes, from: index) {
                output += Array(RedactionFilter.replacement.utf8)
                counts[isATR ? atrRule : bytesRule, default: 0] += 1
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

    /// `3B 9F 21 0E …`, `01:23:45:…`: eight or more hex bytes, two digits each, one separator
    /// (a space or a colon) throughout, at a word start; an ATR when it starts with the TS byte
    /// `3B` or `3F`.
    private static func separatedBytesEnd(_ bytes: [UInt8], from start: Int) -> (end: Int, isATR: Bool)? {
        guard start + 2 < bytes.count, isHex(bytes[start]), isHex(bytes[start + 1]),
              bytes[start + 2] == UInt8(ascii: " ") || bytes[start + 2] == UInt8(ascii: ":"),
              start == 0 || !isWordByte(bytes[start - 1]) else {
            return nil
        }
        let separator = bytes[start + 2]
        var index = start
        var pairs = 0
        var end = start
        while index + 1 < bytes.count, isHex(bytes[index]), isHex(bytes[index + 1]) {
            pairs += 1
            end = index + 2
            guard end < bytes.count, bytes[end] == separator else {
                break
            }
            index = end + 1
        }
        guard pairs >= minimumBytes else {
            return nil
        }
        let isATR = bytes[start] == UInt8(ascii: "3") && (bytes[start + 1] | 0x20 == UInt8(ascii: "b") || bytes[start + 1] | 0x20 == UInt8(ascii: "f"))
        return (end, isATR)
    }

    /// `0x` right before `index`, itself at a word start: `0x0123…` is hex, not a word.
    private static func isHexPrefix(_ bytes: [UInt8], _ index: Int) -> Bool {
        index >= 2 && (bytes[index - 1] == UInt8(ascii: "x") || bytes[index - 1] == UInt8(ascii: "X"))
            && bytes[index - 2] == UInt8(ascii: "0") && (index == 2 || !isWordByte(bytes[index - 3]))
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 70) || (byte >= 97 && byte <= 102)
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        isHex(byte) || (byte >= 71 && byte <= 90) || (byte >= 103 && byte <= 122) || byte == 95
    }
}
