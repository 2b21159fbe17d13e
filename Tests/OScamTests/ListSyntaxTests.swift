import Testing
import TestSupport
@testable import OScam

@Suite struct ListSyntaxTests {
    @Test(arguments: [
        ("0963", ["0963"]),
        ("0963,098C&FFF0:1830", ["0963", "098C&FFF0:1830"]),
        ("963, 5", ["0963", "05"]),
        ("", []),
    ])
    func caids(_ input: String, _ expected: [String]) throws {
        #expect(try ListSyntax.caids(input).map(\.text) == expected)
    }

    @Test(arguments: ["ZZZZ", "12345", "0963,", "0963&", "0963:XYZ", "0963&FFFFF"])
    func badCaids(_ input: String) {
        #expect(throws: ListSyntaxError.self) { try ListSyntax.caids(input) }
    }

    @Test func identsRoundTripInOScamNotation() throws {
        let text = "0963:000000,000001;098C:000000"
        #expect(try ListSyntax.idents(text).map(\.text).joined(separator: ";") == text)
        #expect(try ListSyntax.idents("500:30B00").map(\.text) == ["0500:030B00"])
        #expect(throws: ListSyntaxError.self) { try ListSyntax.idents("0963:1000000") }
        #expect(throws: ListSyntaxError.self) { try ListSyntax.idents("0963:00000G") }
    }

    @Test func groups() throws {
        #expect(try ListSyntax.groups("3,1,2,2") == [1, 2, 3])
        #expect(try ListSyntax.groups("") == [])
        for bad in ["0", "65", "1,x", "-1", "1,,2"] {
            #expect(throws: ListSyntaxError.self) { try ListSyntax.groups(bad) }
        }
    }

    @Test func ipRanges() throws {
        let ranges = try ListSyntax.ipRanges("127.0.0.1,192.168.0.0-192.168.255.255,::1")
        #expect(ranges.count == 3)
        #expect(ranges[0].isLoopbackOnly && !ranges[1].isLoopbackOnly && ranges[2].isLoopbackOnly)
        let inside = try #require(IPAddress("192.168.10.20"))
        let outside = try #require(IPAddress("192.169.0.1"))
        #expect(ranges[1].contains(inside) && !ranges[1].contains(outside))
        #expect(throws: ListSyntaxError.self) { try ListSyntax.ipRanges("10.0.0.9-10.0.0.1") }
        #expect(throws: ListSyntaxError.self) { try ListSyntax.ipRanges("localhost") }
        #expect(throws: ListSyntaxError.self) { try ListSyntax.ipRanges("127.0.0.1-::1") }
    }

    @Test func ports() throws {
        #expect(try ListSyntax.port("18888") == 18888)
        #expect(throws: ListSyntaxError.self) { try ListSyntax.port("99999") }
        #expect(throws: ListSyntaxError.self) { try ListSyntax.port("+8443") }
        #expect(try ListSyntax.portList("12000,12001") == [12000, 12001])
        #expect(throws: ListSyntaxError.self) { try ListSyntax.portList((0..<33).map { "\(1000 + $0)" }.joined(separator: ",")) }
    }

    @Test func camd35TcpPorts() throws {
        let ports = try ListSyntax.camd35Ports("30000@0100:FFFFFF;30001@0200:FFF000,FFFF00;30002")
        #expect(ports == [
            ListenerPort(port: 30000, caid: 0x0100, providers: [0xFFFFFF]),
            ListenerPort(port: 30001, caid: 0x0200, providers: [0xFFF000, 0xFFFF00]),
            ListenerPort(port: 30002),
        ])
    }

    @Test func newcamdPortsHideTheirKeys() throws {
        let value = "10000@0100:FFFFFF;20000{0102030405060708091011121314}@0963:000000"
        let ports = try ListSyntax.newcamdPorts(value)
        #expect(ports.map(\.port) == [10000, 20000])
        #expect(ListSyntax.newcamdPortKeys(value) == ["0102030405060708091011121314"])
        #expect(try ListSyntax.newcamdPorts("10000") == [ListenerPort(port: 10000)])
        // A bare port is only accepted in a value shorter than 6 characters, as in OScam.
        #expect(throws: ListSyntaxError.self) { try ListSyntax.newcamdPorts("10000;10001") }
        #expect(throws: ListSyntaxError.self) { try ListSyntax.newcamdPorts("10000{0102}@0963") }
    }

    @Test func errorsNeverQuoteTheValue() {
        do {
            _ = try ListSyntax.newcamdPorts("10000{SECRETSECRETSECRET}@0963")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("SECRET"))
        }
    }
}

/// The list parsers read every account's values as bytes, without an array of items; these are
/// the earlier implementations, kept as the oracle that the faster ones must match exactly, with
/// OScam's notation of each entry.
@Suite struct ListSyntaxOracleTests {
    static func items(_ text: String, _ separator: UInt8) -> [ArraySlice<UInt8>] {
        let whole = ListSyntax.trimBytes(Array(text.utf8)[...])
        return whole.isEmpty ? [] : whole.split(separator: separator, omittingEmptySubsequences: false)
            .map(ListSyntax.trimBytes)
    }

    static func caids(_ text: String) -> Result<[String], ListSyntaxError> {
        var result: [String] = []
        for (position, item) in items(text, UInt8(ascii: ",")).enumerated() {
            let fail = { (message: String) in ListSyntaxError(syntax: "caid", position: position + 1, message: message) }
            var rest = item
            var suffix = ""
            if let colon = rest.firstIndex(of: UInt8(ascii: ":")) {
                guard let value = ListSyntax.hexBytes(rest[(colon + 1)...], maxDigits: 4) else {
                    return .failure(fail("the value after ':' is not 1 to 4 hex digits"))
                }
                suffix = ":" + hex(value, width: 4)
                rest = rest[..<colon]
            }
            if let amp = rest.firstIndex(of: UInt8(ascii: "&")) {
                guard let value = ListSyntax.hexBytes(rest[(amp + 1)...], maxDigits: 4) else {
                    return .failure(fail("the mask after '&' is not 1 to 4 hex digits"))
                }
                suffix = "&" + hex(value, width: 4) + suffix
                rest = rest[..<amp]
            }
            guard let caid = ListSyntax.hexBytes(rest, maxDigits: 4) else {
                return .failure(fail("CAID is not 1 to 4 hex digits"))
            }
            result.append(hex(caid, width: caid < 0x100 ? 2 : 4) + suffix)
        }
        return .success(result)
    }

    static func idents(_ text: String) -> Result<[String], ListSyntaxError> {
        var result: [String] = []
        for (position, group) in items(text, UInt8(ascii: ";")).enumerated() {
            let fail = { (message: String) in ListSyntaxError(syntax: "ident", position: position + 1, message: message) }
            guard let colon = group.firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(fail("group is not CAID:PROVIDER[,PROVIDER...]"))
            }
            guard let caid = ListSyntax.hexBytes(group[..<colon], maxDigits: 4) else {
                return .failure(fail("CAID is not 1 to 4 hex digits"))
            }
            var providers: [String] = []
            for provider in group[(colon + 1)...].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                guard let value = ListSyntax.hexBytes(provider, maxDigits: 6) else {
                    return .failure(fail("provider is not 1 to 6 hex digits"))
                }
                providers.append(hex(value, width: 6))
            }
            result.append(hex(caid, width: 4) + ":" + providers.joined(separator: ","))
        }
        return .success(result)
    }

    static func groups(_ text: String) -> Result<[Int], ListSyntaxError> {
        var result: [Int] = []
        for (position, item) in items(text, UInt8(ascii: ",")).enumerated() {
            guard item.count <= 2, !item.isEmpty, item.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let value = Int(String(decoding: item, as: UTF8.self)), (1...64).contains(value) else {
                return .failure(ListSyntaxError(syntax: "group", position: position + 1,
                                                message: "group must be a number from 1 to 64"))
            }
            if !result.contains(value) {
                result.append(value)
            }
        }
        return .success(result.sorted())
    }

    static func result<T>(_ parse: () throws(ListSyntaxError) -> T) -> Result<T, ListSyntaxError> {
        do throws(ListSyntaxError) {
            return .success(try parse())
        } catch {
            return .failure(error)
        }
    }

    @Test func theByteParsersGiveTheEarlierResults() {
        var rng = SeededRandom(seed: 0x1157)
        let pieces = ["0", "9", "63", "098C", "FFFF", "fff0", "12345", "1830", "G", ",", ";", ":", "&", " ", "\t", "",
                      "000001", "1000000", "64", "65", "é", "\u{0}", "0x"]
        for _ in 0..<20_000 {
            let text = (0..<Int.random(in: 0..<7, using: &rng)).map { _ in pieces.randomElement(using: &rng) ?? "" }.joined()
            #expect(Self.result { () throws(ListSyntaxError) in try ListSyntax.caids(text).map(\.text) } == Self.caids(text),
                    "\(text.debugDescription)")
            #expect(Self.result { () throws(ListSyntaxError) in try ListSyntax.idents(text).map(\.text) } == Self.idents(text),
                    "\(text.debugDescription)")
            #expect(Self.result { () throws(ListSyntaxError) in try ListSyntax.groups(text) } == Self.groups(text),
                    "\(text.debugDescription)")
        }
    }

    @Test func asciiDatesAreReadAsTheDocumentReadsThem() {
        var rng = SeededRandom(seed: 0xDA7E)
        let pieces = ["2027", "1969", "1970", "9999", "0", "1", "01", "12", "13", "31", "32", "-", "/", "+", " ", "x", ""]
        for _ in 0..<20_000 {
            let text = (0..<Int.random(in: 0..<7, using: &rng)).map { _ in pieces.randomElement(using: &rng) ?? "" }.joined()
            #expect(ConfigDocument.normalisedDate(ascii: Array(text.utf8)[...]) == ConfigDocument.normalisedDate(text),
                    "\(text.debugDescription)")
        }
    }
}
