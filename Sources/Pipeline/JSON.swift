/// A JSON value with a deterministic encoding: the same value always gives the same bytes.
///
/// Object keys are sorted by their UTF-8 bytes, numbers have one spelling (integers as
/// integers, fractions as `Fixed` decimals), strings escape only what JSON requires. The payload
/// hash in `--dry-run`, in logs and in heartbeats depends on this.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case fixed(Fixed)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Compact, deterministic bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Indented for people to read; not the bytes that are sent.
    public func pretty() -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out, indent: 2, level: 0)
        out.append(0x0A)
        return out
    }

    private func write(to out: inout [UInt8], indent: Int?, level: Int) {
        switch self {
        case .null:
            out.append("null")
        case .bool(let value):
            out.append(value ? "true" : "false")
        case .int(let value):
            out.appendDecimal(value)
        case .fixed(let value):
            JSONValue.fixed(value, to: &out)
        case .string(let value):
            JSONValue.writeString(value, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 {
                    out.append(UInt8(ascii: ","))
                }
                newline(&out, indent, level + 1)
                item.write(to: &out, indent: indent, level: level + 1)
            }
            if !items.isEmpty {
                newline(&out, indent, level)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (index, key) in keys.enumerated() {
                if index > 0 {
                    out.append(UInt8(ascii: ","))
                }
                newline(&out, indent, level + 1)
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil {
                    out.append(UInt8(ascii: " "))
                }
                members[key]?.write(to: &out, indent: indent, level: level + 1)
            }
            if !keys.isEmpty {
                newline(&out, indent, level)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private func newline(_ out: inout [UInt8], _ indent: Int?, _ level: Int) {
        guard let indent else {
            return
        }
        out.append(0x0A)
        out += [UInt8](repeating: 0x20, count: indent * level)
    }

    static func fixed<Sink: JSONSink & ~Copyable>(_ value: Fixed, to out: inout Sink) {
        value.description.utf8.withContiguousStorageIfAvailable { out.append($0) }
            ?? Array(value.description.utf8).withUnsafeBufferPointer { out.append($0) }
    }

    static func writeString<Sink: JSONSink & ~Copyable>(_ value: String, to out: inout Sink) {
        out.append(UInt8(ascii: "\""))
        if value.utf8.withContiguousStorageIfAvailable({ writeEscaped($0, to: &out) }) == nil {
            Array(value.utf8).withUnsafeBufferPointer { writeEscaped($0, to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The string's bytes with what JSON requires escaped; runs that need no escape are copied
    /// whole (most strings of a payload are one such run).
    private static func writeEscaped<Sink: JSONSink & ~Copyable>(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout Sink) {
        var runStart = 0
        var index = Self.plainPrefix(bytes)
        while index < bytes.count {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F else {
                index += 1
                continue
            }
            out.append(UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
            out.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            default:
                out.append("u00")
                out.append(lowerHexDigit(byte >> 4))
                out.append(lowerHexDigit(byte & 0xF))
            }
            index += 1
            runStart = index
        }
        out.append(UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
    }

    /// How many leading bytes need no escape, to the nearest 8: eight bytes are tested at once
    /// (a control byte, `"`, `\` or DEL in the word stops it).
    private static func plainPrefix(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        guard let base = bytes.baseAddress.map(UnsafeRawPointer.init) else {
            return 0
        }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ word: UInt64) -> Bool {
            (word &- ones) & ~word & highs != 0
        }
        var index = 0
        while index + 8 <= bytes.count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let control = (word &- ones &* 0x20) & ~word & highs != 0
            if control || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
                || hasZeroByte(word ^ (ones &* 0x7F)) {
                break
            }
            index += 8
        }
        return index
    }

    private static func lowerHexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

/// A decimal with a fixed number of fraction digits (at most 2 are kept), so that a measured
/// value like 9.1 MB always encodes as `9.1`, never `9.0999999999`.
public struct Fixed: Sendable, Equatable, CustomStringConvertible {
    /// The value times 100, rounded.
    public let hundredths: Int64

    public init(_ value: Double) {
        let scaled = (value * 100).rounded()
        // Clamped, not trapped: one absurd measurement must not take the agent down.
        if !scaled.isFinite {
            hundredths = 0
        } else if scaled >= 9.2e18 {
            hundredths = Int64.max
        } else if scaled <= -9.2e18 {
            hundredths = -Int64.max
        } else {
            hundredths = Int64(scaled)
        }
    }

    public init(hundredths: Int64) {
        self.hundredths = hundredths
    }

    public var description: String {
        let sign = hundredths < 0 ? "-" : ""
        let magnitude = hundredths.magnitude
        let whole = magnitude / 100
        let fraction = magnitude % 100
        if fraction == 0 {
            return "\(sign)\(whole)"
        }
        if fraction % 10 == 0 {
            return "\(sign)\(whole).\(fraction / 10)"
        }
        return "\(sign)\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// A model type that knows its JSON form. Every type that reaches a sink conforms, and none has
/// a field for a secret.
public protocol JSONRepresentable: Sendable {
    var json: JSONValue { get }
}

extension JSONValue {
    /// An object from optional members: nil members are absent, not `null`.
    public static func members(_ pairs: [(String, JSONValue?)]) -> JSONValue {
        var object: [String: JSONValue] = [:]
        for (key, value) in pairs {
            if let value {
                object[key] = value
            }
        }
        return .object(object)
    }

    public static func string(_ value: String?) -> JSONValue? {
        value.map(JSONValue.string)
    }

    public static func int<T: BinaryInteger>(_ value: T?) -> JSONValue? {
        value.map { .int(Int64($0)) }
    }

    public static func fixed(_ value: Double?) -> JSONValue? {
        value.map { .fixed(Fixed($0)) }
    }

    public static func array<T: JSONRepresentable>(_ values: [T]?) -> JSONValue? {
        values.map { .array($0.map(\.json)) }
    }

    public static func strings(_ values: [String]) -> JSONValue {
        .array(values.map(JSONValue.string))
    }
}
