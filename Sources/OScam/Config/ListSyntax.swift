#if canImport(Glibc)
import Glibc
#endif

/// A value of a list-typed key that OScam's own checker would reject or drop.
///
/// `position` is the 1-based entry in the list; the message never quotes the value.
public struct ListSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public let syntax: String
    public let position: Int
    public let message: String

    public var description: String {
        "\(syntax) entry \(position): \(message)"
    }
}

/// `caid` entry: `CAID[&MASK][:MAPTO]`, all hex (OSCAM.md §3.2).
public struct CAIDEntry: Sendable, Equatable, Hashable {
    public let caid: UInt16
    public let mask: UInt16?
    public let mapTo: UInt16?

    /// OScam's own notation: `%04X` (`%02X` below 0x100) with `&%04X` and `:%04X`.
    public var text: String {
        NotationText.string(capacity: 14) { out in
            out.append(UInt32(caid), width: caid < 0x100 ? 2 : 4)
            if let mask {
                out.append(UInt8(ascii: "&"))
                out.append(UInt32(mask), width: 4)
            }
            if let mapTo {
                out.append(UInt8(ascii: ":"))
                out.append(UInt32(mapTo), width: 4)
            }
        }
    }
}

/// `ident` group: `CAID:PROV[,PROV…]`, hex.
public struct IdentEntry: Sendable, Equatable, Hashable {
    public let caid: UInt16
    public let providers: [UInt32]

    /// OScam's notation: `%04X:` then `%06X` joined by `,`.
    public var text: String {
        NotationText.string(capacity: 5 + 9 * providers.count) { out in
            out.append(UInt32(caid), width: 4)
            out.append(UInt8(ascii: ":"))
            for (index, provider) in providers.enumerated() {
                if index > 0 {
                    out.append(UInt8(ascii: ","))
                }
                out.append(provider, width: 6)
            }
        }
    }
}

/// A listening port with its optional CAID/provider restriction (cs378x and newcamd syntax).
public struct ListenerPort: Sendable, Equatable, Hashable {
    public let port: Int
    public let caid: UInt16?
    public let providers: [UInt32]

    public init(port: Int, caid: UInt16? = nil, providers: [UInt32] = []) {
        self.port = port
        self.caid = caid
        self.providers = providers
    }
}

/// One `IP` or `IP-IP` entry of `httpallowed`, `nocrypt`, `allowed`.
public struct IPRange: Sendable, Equatable, Hashable {
    public let lower: IPAddress
    public let upper: IPAddress

    /// True when every address in the range is a loopback address.
    public var isLoopbackOnly: Bool {
        lower.isLoopback && upper.isLoopback && lower.family == upper.family
    }

    /// True when `address` lies inside the range.
    public func contains(_ address: IPAddress) -> Bool {
        address.family == lower.family && !address.bytes.lexicographicallyPrecedes(lower.bytes)
            && !upper.bytes.lexicographicallyPrecedes(address.bytes)
    }

    public var text: String {
        lower == upper ? lower.text : "\(lower.text)-\(upper.text)"
    }
}

/// An IPv4 or IPv6 address, parsed with `inet_pton`.
public struct IPAddress: Sendable, Equatable, Hashable {
    public enum Family: Sendable, Equatable, Hashable { case v4, v6 }
    public let family: Family
    public let bytes: [UInt8]
    public let text: String

    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            family = .v4
            bytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            family = .v6
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
        self.text = text
    }

    public var isLoopback: Bool {
        switch family {
        case .v4: bytes.first == 127
        case .v6: bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }
}

/// Parsers for OScam's list syntaxes (OSCAM.md §3.2, §4.2). Each accepts what OScam's checker
/// accepts and throws where OScam would reject or silently drop an entry.
public enum ListSyntax {
    /// `caid = 0963,098C&FFF0:1830`.
    public static func caids(_ text: String) throws(ListSyntaxError) -> [CAIDEntry] {
        try caids(bytes: Array(text.utf8)[...])
    }

    /// `caids` on a value's bytes.
    static func caids(bytes text: ArraySlice<UInt8>) throws(ListSyntaxError) -> [CAIDEntry] {
        var result: [CAIDEntry] = []
        try forEachItem(text, separator: UInt8(ascii: ",")) { (position, item) throws(ListSyntaxError) in
            func fail(_ message: String) -> ListSyntaxError {
                ListSyntaxError(syntax: "caid", position: position + 1, message: message)
            }
            var rest = item
            var mapTo: UInt16?
            if let colon = rest.firstIndex(of: UInt8(ascii: ":")) {
                guard let value = hexBytes(rest[(colon + 1)...], maxDigits: 4) else {
                    throw fail("the value after ':' is not 1 to 4 hex digits")
                }
                mapTo = UInt16(value)
                rest = rest[..<colon]
            }
            var mask: UInt16?
            if let amp = rest.firstIndex(of: UInt8(ascii: "&")) {
                guard let value = hexBytes(rest[(amp + 1)...], maxDigits: 4) else {
                    throw fail("the mask after '&' is not 1 to 4 hex digits")
                }
                mask = UInt16(value)
                rest = rest[..<amp]
            }
            guard let caid = hexBytes(rest, maxDigits: 4) else {
                throw fail("CAID is not 1 to 4 hex digits")
            }
            result.append(CAIDEntry(caid: UInt16(caid), mask: mask, mapTo: mapTo))
        }
        return result
    }

    /// `ident = 0963:000000,000001;098C:000000`.
    public static func idents(_ text: String) throws(ListSyntaxError) -> [IdentEntry] {
        try idents(bytes: Array(text.utf8)[...])
    }

    /// `idents` on a value's bytes.
    static func idents(bytes text: ArraySlice<UInt8>) throws(ListSyntaxError) -> [IdentEntry] {
        var result: [IdentEntry] = []
        try forEachItem(text, separator: UInt8(ascii: ";")) { (position, group) throws(ListSyntaxError) in
            func fail(_ message: String) -> ListSyntaxError {
                ListSyntaxError(syntax: "ident", position: position + 1, message: message)
            }
            // OScam's chk_ftab skips a group without ':' (it has no provider, and a group
            // without one is never added), so such a group is not an ident OScam applies.
            guard let colon = group.firstIndex(of: UInt8(ascii: ":")) else {
                throw fail("group is not CAID:PROVIDER[,PROVIDER...]")
            }
            guard let caid = hexBytes(group[..<colon], maxDigits: 4) else {
                throw fail("CAID is not 1 to 4 hex digits")
            }
            var providers: [UInt32] = []
            // Every piece after the colon is a provider, even an empty one (`0963:`).
            var start = colon + 1
            while true {
                let end = group[start...].firstIndex(of: UInt8(ascii: ",")) ?? group.endIndex
                guard let value = hexBytes(group[start..<end], maxDigits: 6) else {
                    throw fail("provider is not 1 to 6 hex digits")
                }
                providers.append(value)
                guard end < group.endIndex else {
                    break
                }
                start = end + 1
            }
            result.append(IdentEntry(caid: UInt16(caid), providers: providers))
        }
        return result
    }

    /// `group = 1,2,3`: decimals from 1 to 64; OScam drops others with a log line.
    public static func groups(_ text: String) throws(ListSyntaxError) -> [Int] {
        try groups(bytes: Array(text.utf8)[...])
    }

    /// `groups` on a value's bytes.
    static func groups(bytes text: ArraySlice<UInt8>) throws(ListSyntaxError) -> [Int] {
        var result: [Int] = []
        try forEachItem(text, separator: UInt8(ascii: ",")) { (position, item) throws(ListSyntaxError) in
            var value = 0
            let digits = item.count <= 2 && !item.isEmpty && item.allSatisfy { byte in
                guard byte >= 48 && byte <= 57 else {
                    return false
                }
                value = value * 10 + Int(byte - 48)
                return true
            }
            guard digits, (1...64).contains(value) else {
                throw ListSyntaxError(syntax: "group", position: position + 1, message: "group must be a number from 1 to 64")
            }
            if !result.contains(value) {
                result.append(value)
            }
        }
        return result.sorted()
    }

    /// `httpallowed = 127.0.0.1,192.168.0.0-192.168.255.255,::1`.
    public static func ipRanges(_ text: String) throws(ListSyntaxError) -> [IPRange] {
        var result: [IPRange] = []
        for (position, item) in items(text, separator: UInt8(ascii: ",")).enumerated() {
            let bounds = item.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { trimmed($0) }
            guard let lower = IPAddress(String(bounds[0])),
                  let upper = bounds.count == 2 ? IPAddress(String(bounds[1])) : lower,
                  lower.family == upper.family,
                  !upper.bytes.lexicographicallyPrecedes(lower.bytes) else {
                throw ListSyntaxError(syntax: "ip range", position: position + 1, message: "not an IP address or IP-IP range")
            }
            result.append(IPRange(lower: lower, upper: upper))
        }
        return result
    }

    /// A single port number: `[camd33]`, `[cs357x]`, `[radegast]`, `[scam]`, `[monitor]`.
    public static func port(_ text: String) throws(ListSyntaxError) -> Int {
        let value = trimmed(Substring(text))
        guard value.allSatisfy(\.isDecimalDigit), !value.isEmpty, let port = Int(value), (0...65535).contains(port) else {
            throw ListSyntaxError(syntax: "port", position: 1, message: "port must be a number from 0 to 65535")
        }
        return port
    }

    /// `port = 12000,12001`: `[cccam]` (up to 32) and `[gbox]`.
    public static func portList(_ text: String, limit: Int = 32) throws(ListSyntaxError) -> [Int] {
        var result: [Int] = []
        for (position, item) in items(text, separator: UInt8(ascii: ",")).enumerated() {
            guard position < limit else {
                throw ListSyntaxError(syntax: "port", position: position + 1, message: "more than \(limit) ports")
            }
            do {
                result.append(try port(item))
            } catch {
                throw ListSyntaxError(syntax: "port", position: position + 1, message: error.message)
            }
        }
        return result
    }

    /// `[cs378x] port = 30000@0100:FFFFFF;30001@0200:FFF000,FFFF00;30002`.
    public static func camd35Ports(_ text: String) throws(ListSyntaxError) -> [ListenerPort] {
        try caidPorts(text, allowKey: false)
    }

    /// `[newcamd] port = 10000@0100:FFFFFF;20000{DESKEY}@0963:000000`: one CAID per port, an
    /// optional DES key in braces (a secret: never returned). A bare port is accepted only when
    /// the whole value is shorter than 6 characters, as OScam does.
    public static func newcamdPorts(_ text: String) throws(ListSyntaxError) -> [ListenerPort] {
        let value = trimmed(Substring(text))
        if value.count < 6, !value.contains("@") {
            return value.isEmpty ? [] : [ListenerPort(port: try port(String(value)))]
        }
        let ports = try caidPorts(text, allowKey: true)
        if let index = ports.firstIndex(where: { $0.caid == nil }) {
            throw ListSyntaxError(syntax: "newcamd port", position: index + 1, message: "newcamd ports need @CAID")
        }
        return ports
    }

    /// The DES keys inside a newcamd `port` value, for the redaction list only.
    public static func newcamdPortKeys(_ text: String) -> [String] {
        var keys: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let key = rest[rest.index(after: open)..<close]
            if !key.isEmpty {
                keys.append(String(key))
            }
            rest = rest[rest.index(after: close)...]
        }
        return keys
    }

    private static func caidPorts(_ text: String, allowKey: Bool) throws(ListSyntaxError) -> [ListenerPort] {
        var result: [ListenerPort] = []
        let syntax = allowKey ? "newcamd port" : "cs378x port"
        for (position, item) in items(text, separator: UInt8(ascii: ";")).enumerated() {
            func fail(_ message: String) -> ListSyntaxError {
                ListSyntaxError(syntax: syntax, position: position + 1, message: message)
            }
            var head = Substring(item)
            var tail: Substring?
            if let at = head.firstIndex(of: "@") {
                tail = head[head.index(after: at)...]
                head = head[..<at]
            }
            if let brace = head.firstIndex(of: "{") {
                guard allowKey, head.last == "}" else {
                    throw fail("unexpected '{' in the port")
                }
                let key = head[head.index(after: brace)..<head.index(before: head.endIndex)]
                guard key.count == 28, key.allSatisfy({ $0.isASCII && $0.isHexDigit }) else {
                    throw fail("the DES key in braces must be 28 hex digits")
                }
                head = head[..<brace]
            }
            let number: Int
            do {
                number = try port(String(head))
            } catch {
                throw fail(error.message)
            }
            guard let tail else {
                result.append(ListenerPort(port: number))
                continue
            }
            let parts = tail.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let caid = hexValue(parts[0], maxDigits: 4) else {
                throw fail("CAID after '@' is not 1 to 4 hex digits")
            }
            var providers: [UInt32] = []
            if parts.count == 2 {
                for provider in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
                    guard let value = hexValue(trimmed(provider), maxDigits: 6) else {
                        throw fail("provider is not 1 to 6 hex digits")
                    }
                    providers.append(value)
                }
            }
            result.append(ListenerPort(port: number, caid: UInt16(caid), providers: providers))
        }
        return result
    }

    // MARK: - Helpers

    /// Splits a list and trims each item; an empty list gives no items, an empty item is kept
    /// so the parser can name its position. On bytes, as OScam's strtok does: split on
    /// `Character`s, `;` would also match U+037E, which Unicode makes canonically equal to it.
    private static func items(_ text: String, separator: UInt8) -> [String] {
        byteItems(text, separator: separator).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with each item of a list and its 0-based position: split on `separator`,
    /// spaces and TABs trimmed around each item, on bytes (these lists are parsed for every
    /// account, so no Character processing and no array of items). An empty list has no items;
    /// an empty item is kept so the parser can name its position.
    static func forEachItem<Failure: Error>(
        _ list: ArraySlice<UInt8>, separator: UInt8,
        _ body: (Int, ArraySlice<UInt8>) throws(Failure) -> Void
    ) throws(Failure) {
        let whole = trimBytes(list)
        guard !whole.isEmpty else {
            return
        }
        var start = whole.startIndex
        var position = 0
        while true {
            let end = whole[start...].firstIndex(of: separator) ?? whole.endIndex
            try body(position, trimBytes(whole[start..<end]))
            guard end < whole.endIndex else {
                return
            }
            position += 1
            start = end + 1
        }
    }

    /// The items of a list, as `forEachItem` finds them.
    static func byteItems(_ text: String, separator: UInt8) -> [ArraySlice<UInt8>] {
        var items: [ArraySlice<UInt8>] = []
        forEachItem(Array(text.utf8)[...], separator: separator) { _, item in
            items.append(item)
        }
        return items
    }

    static func trimBytes(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 {
            slice = slice.dropFirst()
        }
        while let last = slice.last, last == 0x20 || last == 0x09 {
            slice = slice.dropLast()
        }
        return slice
    }

    /// 1 to `maxDigits` hex digits (surrounding spaces allowed) as a number.
    static func hexBytes(_ bytes: ArraySlice<UInt8>, maxDigits: Int) -> UInt32? {
        let digits = trimBytes(bytes)
        guard !digits.isEmpty, digits.count <= maxDigits else {
            return nil
        }
        var value: UInt32 = 0
        for byte in digits {
            let nibble: UInt8
            switch byte {
            case 48...57: nibble = byte - 48
            case 65...70: nibble = byte - 55
            case 97...102: nibble = byte - 87
            default: return nil
            }
            value = value << 4 | UInt32(nibble)
        }
        return value
    }

    static func trimmed(_ text: Substring) -> Substring {
        var slice = text
        while let first = slice.first, first == " " || first == "\t" {
            slice = slice.dropFirst()
        }
        while let last = slice.last, last == " " || last == "\t" {
            slice = slice.dropLast()
        }
        return slice
    }

    static func hexValue(_ text: some StringProtocol, maxDigits: Int) -> UInt32? {
        let digits = trimmed(Substring(text))
        guard !digits.isEmpty, digits.count <= maxDigits, digits.allSatisfy({ $0.isASCII && $0.isHexDigit }) else {
            return nil
        }
        return UInt32(digits, radix: 16)
    }
}

extension Character {
    fileprivate var isDecimalDigit: Bool {
        isASCII && isNumber
    }
}

/// Numbers in OScam's notations (upper-case hex, zero-padded decimals) written straight into a
/// string's storage.
struct NotationText {
    private var buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0

    /// A string of at most `capacity` bytes, built by `body` without intermediate arrays.
    static func string(capacity: Int, _ body: (inout NotationText) -> Void) -> String {
        String(unsafeUninitializedCapacity: capacity) { buffer in
            var text = NotationText(buffer: buffer)
            body(&text)
            return text.count
        }
    }

    mutating func append(_ byte: UInt8) {
        buffer[count] = byte
        count += 1
    }

    /// `value` (not negative) in decimal, zero-padded to `width` digits (more when it needs more).
    mutating func appendDecimal(_ value: Int, width: Int) {
        var digits = 1
        var power = 10
        while power <= value {
            digits += 1
            power *= 10
        }
        var rest = value
        let end = count + max(width, digits)
        var index = end
        while index > count {
            index -= 1
            buffer[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        }
        count = end
    }

    /// `value` in upper-case hex, zero-padded to `width` digits (more when it needs more).
    mutating func append(_ value: UInt32, width: Int) {
        let digits = max(width, (32 - value.leadingZeroBitCount + 3) / 4)
        for index in stride(from: digits - 1, through: 0, by: -1) {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt32(4 * index)) & 0xF
            append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10)
        }
    }
}

func hex(_ value: UInt32, width: Int) -> String {
    var bytes: [UInt8] = []
    var rest = value
    repeat {
        bytes.append(hexDigits[Int(rest & 0xF)])
        rest >>= 4
    } while rest != 0
    while bytes.count < width {
        bytes.append(UInt8(ascii: "0"))
    }
    return String(decoding: bytes.reversed(), as: UTF8.self)
}

private let hexDigits = Array("0123456789ABCDEF".utf8)
