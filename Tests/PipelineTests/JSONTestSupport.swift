import Foundation
import Pipeline
import TestSupport

// MARK: - An independent reading of our JSON

/// A JSON document as Foundation's `JSONDecoder` reads it, so the encoder's bytes are checked by
/// a parser we did not write. Strings and keys keep their UTF-8 bytes: `String`'s `==` ignores
/// differences in Unicode normalisation, and the encoder must not.
enum ParsedJSON: Decodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string([UInt8])
    case array([ParsedJSON])
    case object([[UInt8]: ParsedJSON])

    struct Unreadable: Error {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(Array(value.utf8))
        } else if let value = try? container.decode([ParsedJSON].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: ParsedJSON].self) {
            self = .object(Dictionary(uniqueKeysWithValues: value.map { (Array($0.key.utf8), $0.value) }))
        } else {
            throw Unreadable()
        }
    }

    /// What a correct encoding of `value` must parse to.
    init(expected value: JSONValue) {
        switch value {
        case .null:
            self = .null
        case .bool(let flag):
            self = .bool(flag)
        case .int(let number):
            self = .int(number)
        case .fixed(let fixed):
            self = fixed.hundredths % 100 == 0 ? .int(fixed.hundredths / 100) : .double(Double(fixed.hundredths) / 100)
        case .string(let text):
            self = .string(Array(text.utf8))
        case .array(let items):
            self = .array(items.map(ParsedJSON.init(expected:)))
        case .object(let members):
            self = .object(Dictionary(uniqueKeysWithValues: members.map {
                (Array($0.key.utf8), ParsedJSON(expected: $0.value))
            }))
        }
    }

    /// Parses with Foundation; throws on anything that is not strict JSON.
    static func parse(_ bytes: [UInt8]) throws -> ParsedJSON {
        try JSONDecoder().decode(ParsedJSON.self, from: Data(bytes))
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let flag): "\(flag)"
        case .int(let number): "\(number)"
        case .double(let number): "\(number)"
        case .string(let bytes): "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .array(let items): "[\(items.map(\.description).joined(separator: ","))]"
        case .object(let members):
            "{" + members.map { "\"\(String(decoding: $0.key, as: UTF8.self))\":\($0.value)" }.sorted()
                .joined(separator: ",") + "}"
        }
    }
}

// MARK: - Small helpers

extension Array where Element == UInt8 {
    /// The bytes as text, for exact comparisons in `#expect`.
    var text: String {
        String(decoding: self, as: UTF8.self)
    }

    /// Whether `needle` occurs anywhere in these bytes (byte-exact, unlike `String.contains`).
    func containsBytes(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else {
            return true
        }
        guard needle.count <= count else {
            return false
        }
        for start in 0...(count - needle.count) where self[start] == needle[0] {
            if self[start..<(start + needle.count)].elementsEqual(needle) {
                return true
            }
        }
        return false
    }
}

extension Array where Element == UInt8 {
    /// The parts between occurrences of `separator`.
    func segments(separatedBy separator: [UInt8]) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        while index < count {
            if index + separator.count <= count, self[index..<(index + separator.count)].elementsEqual(separator) {
                parts.append(current)
                current = []
                index += separator.count
            } else {
                current.append(self[index])
                index += 1
            }
        }
        parts.append(current)
        return parts
    }
}

extension JSONValue {
    /// The compact encoding as a `String`.
    var encodedText: String {
        encoded().text
    }
}

// MARK: - Random values

/// Random JSON values and strings drawn from a seeded generator, biased towards the characters
/// an encoder or a scrubber can get wrong.
struct RandomJSON {
    var random: SeededRandom

    init(seed: UInt64) {
        random = SeededRandom(seed: seed)
    }

    /// Scalars worth trying: controls, DEL, quotes, backslash, multi-byte (2, 3 and 4 bytes),
    /// a combining mark, line and paragraph separators, and plain ASCII.
    static let awkwardScalars: [Unicode.Scalar] = {
        var scalars: [Unicode.Scalar] = (0x00...0x1F).compactMap(Unicode.Scalar.init)
        scalars += ["\u{7F}", "\"", "\\", "/", "é", "€", "𝄞", "😀", "\u{301}", "\u{2028}", "\u{2029}",
                    "\u{FEFF}", "\u{FF61}", "\u{10000}", " "]
        scalars += (0x21...0x7E).compactMap(Unicode.Scalar.init)
        return scalars
    }()

    mutating func int(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &random)
    }

    mutating func string(maxLength: Int = 12, from scalars: [Unicode.Scalar] = awkwardScalars) -> String {
        var text = String.UnicodeScalarView()
        for _ in 0..<int(in: 0...maxLength) {
            text.append(scalars[int(in: 0...(scalars.count - 1))])
        }
        return String(text)
    }

    mutating func value(depth: Int = 4) -> JSONValue {
        let kinds = depth > 0 ? 7 : 5
        switch int(in: 0...(kinds - 1)) {
        case 0:
            return .null
        case 1:
            return .bool(Bool.random(using: &random))
        case 2:
            return .int(Int64.random(in: Int64.min...Int64.max, using: &random))
        case 3:
            return .fixed(Fixed(hundredths: Int64.random(in: -1_000_000_000...1_000_000_000, using: &random)))
        case 4:
            return .string(string())
        case 5:
            return .array((0..<int(in: 0...5)).map { _ in value(depth: depth - 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<int(in: 0...5) {
                members[string(maxLength: 6)] = value(depth: depth - 1)
            }
            return .object(members)
        }
    }
}
