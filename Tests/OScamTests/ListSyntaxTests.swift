import Testing
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
