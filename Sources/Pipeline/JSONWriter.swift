/// Writes JSON straight from the typed model, for the snapshot's hot path: no intermediate
/// `JSONValue` tree, no dictionaries. Its output is byte for byte what
/// `value.json.encoded()` gives after the same filters (a test holds the two paths together);
/// callers emit object keys in sorted order, which debug builds check.
public struct JSONWriter: ~Copyable {
    private var out: OutputBuffer
    /// Applied to every string value (not to keys) with the key it belongs to.
    private let scrub: ((String, String?, inout [String: Int]) -> String)?
    public var counts: [String: Int] = [:]
    private var needsComma = false
    private var currentKey = Key.none
    private var literalTexts = [(address: UnsafeRawPointer, text: String)?](repeating: nil, count: 64)
    /// By slot of a literal key: the last list written under that key (kept alive, so that its
    /// storage address cannot be reused by another list), the address, its bytes and the
    /// counts it added.
    private var lastListKeys = [UnsafeRawPointer?](repeating: nil, count: 64)
    private var lastListAddresses = [UnsafeRawPointer?](repeating: nil, count: 64)
    private var lastLists = [[String]](repeating: [], count: 64)
    private var lastListBytes = [[UInt8]](repeating: [], count: 64)
    private var lastListCounts = [[String: Int]](repeating: [:], count: 64)
    #if DEBUG
    /// The last key written at each open object level (debug check of the sort order).
    private var lastKeys: [String?] = []
    #endif

    /// The key the next value belongs to: the model's own keys are literals, written without a
    /// string being built; a string is made only when a filter asks for it, once per key.
    private enum Key {
        case none
        case literal(StaticString)
        case text(String)
    }

    /// Writes into `storage` (which must outlive the writer) until it is full, then into memory
    /// of its own; `finish(into:)` says which.
    public init(storage: UnsafeMutableBufferPointer<UInt8>,
                scrub: ((String, String?, inout [String: Int]) -> String)? = nil) {
        out = OutputBuffer(lending: storage)
        self.scrub = scrub
    }

    /// Writes into a buffer of its own.
    public init(scrub: ((String, String?, inout [String: Int]) -> String)? = nil) {
        self.init(storage: UnsafeMutableBufferPointer(start: nil, count: 0), scrub: scrub)
    }

    /// The bytes written.
    public var bytes: [UInt8] {
        out.array
    }

    /// How many bytes of the lent storage hold the output, or nil when it did not fit there
    /// (then `bytes` has them).
    public var countInStorage: Int? {
        out.ownsStorage ? nil : out.count
    }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        out.append(UInt8(ascii: "{"))
        needsComma = false
        #if DEBUG
        lastKeys.append(nil)
        #endif
        let outerKey = currentKey
        body(&self)
        #if DEBUG
        lastKeys.removeLast()
        #endif
        currentKey = outerKey
        out.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        out.append(UInt8(ascii: "["))
        needsComma = false
        body(&self)
        out.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Starts a member named by a literal that JSON needs no escape for (every key of the
    /// model); the next value written is its value.
    public mutating func key(_ name: StaticString) {
        checkOrder(name.description)
        separator()
        out.append(UInt8(ascii: "\""))
        out.append(name)
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
        needsComma = false
        currentKey = .literal(name)
    }

    /// Starts a member whose name comes from data (a file name, a setting, a rule).
    public mutating func key(named name: String) {
        checkOrder(name)
        separator()
        JSONValue.writeString(name, to: &out)
        out.append(UInt8(ascii: ":"))
        needsComma = false
        currentKey = .text(name)
    }

    public mutating func string(_ value: String) {
        separator()
        if let scrub {
            let key: String?
            switch currentKey {
            case .none:
                key = nil
            case .literal(let name):
                let text = literalText(name)
                key = text
                currentKey = .text(text)
            case .text(let name):
                key = name
            }
            JSONValue.writeString(scrub(value, key, &counts), to: &out)
        } else {
            JSONValue.writeString(value, to: &out)
        }
        needsComma = true
    }

    public mutating func int<T: BinaryInteger>(_ value: T) {
        separator()
        out.appendDecimal(Int64(value))
        needsComma = true
    }

    public mutating func fixed(_ value: Double) {
        separator()
        JSONValue.fixed(Fixed(value), to: &out)
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        separator()
        out.append(value ? "true" : "false")
        needsComma = true
    }

    /// A generic value (small, rarely used members).
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null:
            separator()
            out.append("null")
            needsComma = true
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .fixed(let number):
            separator()
            JSONValue.fixed(number, to: &out)
            needsComma = true
        case .string(let text): string(text)
        case .array(let items): array { writer in items.forEach { writer.value($0) } }
        case .object(let members):
            object { writer in
                for name in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                    writer.key(named: name)
                    members[name].map { writer.value($0) }
                }
            }
        }
    }

    // MARK: - Members that may be absent

    public mutating func member(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    public mutating func member<T: BinaryInteger>(_ name: StaticString, _ value: T?) {
        guard let value else { return }
        key(name)
        int(value)
    }

    public mutating func member(_ name: StaticString, fixed value: Double?) {
        guard let value else { return }
        key(name)
        fixed(value)
    }

    public mutating func member(_ name: StaticString, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bool(value)
    }

    public mutating func member(_ name: StaticString, strings: [String]) {
        key(name)
        guard name.hasPointerRepresentation, let storage = Self.address(of: strings) else {
            array { writer in strings.forEach { writer.string($0) } }
            return
        }
        // Thousands of accounts may share one CAID or ident list (the same array, parsed once):
        // the very same storage, kept alive by the cache so that it cannot be another list's,
        // is written again from the bytes and counts it gave last time under this key.
        let literal = UnsafeRawPointer(name.utf8Start)
        let slot = Self.slot(literal)
        if lastListKeys[slot] == literal && lastListAddresses[slot] == storage {
            separator()
            lastListBytes[slot].withUnsafeBufferPointer { out.append($0) }
            if !lastListCounts[slot].isEmpty {
                counts.merge(lastListCounts[slot], uniquingKeysWith: +)
            }
            needsComma = true
            return
        }
        let start = out.count
        let outer = counts
        counts = [:]
        array { writer in
            for index in strings.indices {
                writer.string(strings[index])
            }
        }
        let added = counts
        counts = outer
        if !added.isEmpty {
            counts.merge(added, uniquingKeysWith: +)
        }
        lastListKeys[slot] = literal
        lastListAddresses[slot] = storage
        lastLists[slot] = strings
        lastListBytes[slot] = out.bytes(from: start)
        lastListCounts[slot] = added
    }

    /// Where an array's elements are stored; nil for an empty one (they all share one storage).
    private static func address(of list: [String]) -> UnsafeRawPointer? {
        list.isEmpty ? nil : list.withUnsafeBufferPointer { $0.baseAddress.map(UnsafeRawPointer.init) }
    }

    private static func slot(_ literal: UnsafeRawPointer) -> Int {
        (Int(bitPattern: literal) >> 3) & 63
    }

    /// The string of a literal key, made once per literal: each account's `user` key hands the
    /// filter the same string. Slots are picked by the literal's address.
    private mutating func literalText(_ name: StaticString) -> String {
        guard name.hasPointerRepresentation else {
            return name.description
        }
        let address = UnsafeRawPointer(name.utf8Start)
        let slot = Self.slot(address)
        if let cached = literalTexts[slot], cached.address == address {
            return cached.text
        }
        let text = name.description
        literalTexts[slot] = (address, text)
        return text
    }

    /// Debug builds check that keys come in sorted order, as the tree encoder writes them.
    private mutating func checkOrder(_ name: @autoclosure () -> String) {
        #if DEBUG
        let name = name()
        if let last = lastKeys.last {
            assert(last.map { $0.utf8.lexicographicallyPrecedes(name.utf8) } ?? true, "keys out of order: \(name)")
            lastKeys[lastKeys.count - 1] = name
        }
        #endif
    }

    @inline(__always)
    private mutating func separator() {
        if needsComma {
            out.append(UInt8(ascii: ","))
        }
        needsComma = false
    }
}

/// A filter that changes only string values, one at a time: the snapshot's fast path applies it
/// while writing instead of rebuilding the tree.
public protocol StringFilter: Filter {
    func scrub(_ text: String, key: String?, counts: inout [String: Int]) -> String
}
