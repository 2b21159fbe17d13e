import Pipeline

/// A strict JSON reader for panel responses (PANEL-API.md "Formats"): UTF-8 only, no duplicate
/// keys, no NaN or infinities, numbers that are integers or plain decimals, bounded nesting.
/// Anything else is an error, and an error means the response is not acted on.
public enum StrictJSON {
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public let offset: Int
        public let message: String

        public var description: String {
            "invalid JSON at byte \(offset): \(message)"
        }
    }

    public static let maxDepth = 32

    public static func parse(_ bytes: [UInt8]) throws(Error) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else {
            throw Error(offset: parser.index, message: "trailing data")
        }
        return value
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                index += 1
            }
        }

        func fail(_ message: String) -> Error {
            Error(offset: index, message: message)
        }

        mutating func value(depth: Int) throws(Error) -> JSONValue {
            guard depth <= StrictJSON.maxDepth else {
                throw fail("nested deeper than \(StrictJSON.maxDepth)")
            }
            guard index < bytes.count else {
                throw fail("unexpected end")
            }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        mutating func literal(_ word: String) throws(Error) {
            let expected = Array(word.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else {
                throw fail("unexpected token")
            }
            index += expected.count
        }

        mutating func object(depth: Int) throws(Error) -> JSONValue {
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw fail("expected a key")
                }
                let keyStart = index
                let key = try string()
                guard members[key] == nil else {
                    throw Error(offset: keyStart, message: "duplicate key")
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw fail("expected ':'")
                }
                index += 1
                skipWhitespace()
                members[key] = try value(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else {
                    throw fail("unexpected end")
                }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else {
                    throw fail("expected ',' or '}'")
                }
                index += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(Error) -> JSONValue {
            index += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else {
                    throw fail("unexpected end")
                }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "]") else {
                    throw fail("expected ',' or ']'")
                }
                index += 1
                return .array(items)
            }
        }

        mutating func string() throws(Error) -> String {
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    guard let text = String(validating: out, as: UTF8.self) else {
                        throw fail("string is not valid UTF-8")
                    }
                    return text
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else {
                        throw fail("unexpected end")
                    }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                                  bytes[index + 1] == UInt8(ascii: "u") else {
                                throw fail("unpaired surrogate")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw fail("unpaired surrogate")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw fail("unpaired surrogate")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else {
                            throw fail("invalid escape")
                        }
                        out += Array(String(Character(unicode)).utf8)
                    default:
                        throw fail("invalid escape")
                    }
                case 0..<0x20:
                    throw fail("control character in string")
                default:
                    out.append(byte)
                    index += 1
                }
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws(Error) -> UInt32 {
            guard index + 4 <= bytes.count else {
                throw fail("short \\u escape")
            }
            var value: UInt32 = 0
            for byte in bytes[index..<(index + 4)] {
                let nibble: UInt32
                switch byte {
                case 48...57: nibble = UInt32(byte - 48)
                case 65...70: nibble = UInt32(byte - 55)
                case 97...102: nibble = UInt32(byte - 87)
                default: throw fail("invalid \\u escape")
                }
                value = value << 4 | nibble
            }
            index += 4
            return value
        }

        /// Integers become `.int`; plain decimals `.fixed` (two digits kept). Exponents,
        /// leading zeros and anything beyond Int64 are refused.
        mutating func number() throws(Error) -> JSONValue {
            let start = index
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            let digitsStart = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                index += 1
            }
            guard index > digitsStart else {
                throw Error(offset: start, message: "unexpected token")
            }
            guard index - digitsStart == 1 || bytes[digitsStart] != 48 else {
                throw Error(offset: start, message: "leading zero")
            }
            var isFraction = false
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                isFraction = true
                index += 1
                let fractionStart = index
                while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                    index += 1
                }
                guard index > fractionStart else {
                    throw Error(offset: start, message: "bad number")
                }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                throw Error(offset: start, message: "exponents are not accepted")
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            if isFraction {
                guard let value = Double(text), value.isFinite, abs(value) < 9e15 else {
                    throw Error(offset: start, message: "number out of range")
                }
                return .fixed(Fixed(value))
            }
            guard let value = Int64(text) else {
                throw Error(offset: start, message: "number out of range")
            }
            return .int(value)
        }
    }
}
