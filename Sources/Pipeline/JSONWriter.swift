/// Writes JSON straight from the typed model, for the snapshot's hot path: no intermediate
/// `JSONValue` tree, no dictionaries. Its output is byte for byte what
/// `value.json.encoded()` gives after the same filters (a test holds the two paths together);
/// callers emit object keys in sorted order, which debug builds check.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Applied to every string value (not to keys) with the key it belongs to.
    private let scrub: ((String, String?, inout [String: Int]) -> String)?
    public var counts: [String: Int] = [:]
    private var needsComma = false
    private var currentKey: String?
    /// The last key written at each open object level (debug check of the sort order).
    private var lastKeys: [String?] = []

    public init(capacity: Int = 64 << 10, scrub: ((String, String?, inout [String: Int]) -> String)? = nil) {
        bytes.reserveCapacity(capacity)
        self.scrub = scrub
    }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        lastKeys.append(nil)
        let outerKey = currentKey
        body(&self)
        lastKeys.removeLast()
        currentKey = outerKey
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Starts a member; the next value written is its value.
    public mutating func key(_ name: String) {
        if let last = lastKeys.last {
            assert(last.map { $0.utf8.lexicographicallyPrecedes(name.utf8) } ?? true, "keys out of order: \(name)")
            lastKeys[lastKeys.count - 1] = name
        }
        separator()
        JSONValue.writeString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
        currentKey = name
    }

    public mutating func string(_ value: String) {
        separator()
        if let scrub {
            JSONValue.writeString(scrub(value, currentKey, &counts), to: &bytes)
        } else {
            JSONValue.writeString(value, to: &bytes)
        }
        needsComma = true
    }

    public mutating func int<T: BinaryInteger>(_ value: T) {
        separator()
        bytes += Array(String(Int64(value)).utf8)
        needsComma = true
    }

    public mutating func fixed(_ value: Double) {
        separator()
        bytes += Array(Fixed(value).description.utf8)
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        separator()
        bytes += value ? Array("true".utf8) : Array("false".utf8)
        needsComma = true
    }

    /// A generic value (small, rarely used members).
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null:
            separator()
            bytes += Array("null".utf8)
            needsComma = true
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .fixed(let number):
            separator()
            bytes += Array(number.description.utf8)
            needsComma = true
        case .string(let text): string(text)
        case .array(let items): array { writer in items.forEach { writer.value($0) } }
        case .object(let members):
            object { writer in
                for name in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                    writer.key(name)
                    members[name].map { writer.value($0) }
                }
            }
        }
    }

    // MARK: - Members that may be absent

    public mutating func member(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    public mutating func member<T: BinaryInteger>(_ name: String, _ value: T?) {
        guard let value else { return }
        key(name)
        int(value)
    }

    public mutating func member(_ name: String, fixed value: Double?) {
        guard let value else { return }
        key(name)
        fixed(value)
    }

    public mutating func member(_ name: String, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bool(value)
    }

    public mutating func member(_ name: String, strings: [String]) {
        key(name)
        array { writer in strings.forEach { writer.string($0) } }
    }

    private mutating func separator() {
        if needsComma {
            bytes.append(UInt8(ascii: ","))
        }
        needsComma = false
    }
}

/// A filter that changes only string values, one at a time: the snapshot's fast path applies it
/// while writing instead of rebuilding the tree.
public protocol StringFilter: Filter {
    func scrub(_ text: String, key: String?, counts: inout [String: Int]) -> String
}
