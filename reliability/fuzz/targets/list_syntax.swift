@testable import OScam

// OScam's list syntaxes (Sources/OScam/Config/ListSyntax.swift): every parser on the same text.
// What a parser accepts must be within OScam's ranges and survive a round trip through the
// agent's own notation; what it refuses must name a position in the list and never quote the
// value (a newcamd port carries a DES key).

/// Every message a list parser may give; anything else would be text taken from the value.
let knownMessages: Set<String> = [
    "the value after ':' is not 1 to 4 hex digits", "the mask after '&' is not 1 to 4 hex digits",
    "CAID is not 1 to 4 hex digits", "group is not CAID:PROVIDER[,PROVIDER...]", "provider is not 1 to 6 hex digits", "group must be a number from 1 to 64",
    "not an IP address or IP-IP range", "port must be a number from 0 to 65535", "more than 32 ports",
    "unexpected '{' in the port", "the DES key in braces must be 28 hex digits", "CAID after '@' is not 1 to 4 hex digits",
    "newcamd ports need @CAID",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzListSyntax(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzerBytes(data, size), as: UTF8.self)
    // On bytes: the parsers split on bytes or on whole characters, never finer.
    let items = 1 + text.utf8.filter { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: ";") }.count

    /// Runs `parser` on the text and `accepted` on what it returns; a refusal must name an entry
    /// inside the list and be one of the fixed messages.
    func check<Parsed>(_ parser: (String) throws(ListSyntaxError) -> Parsed, _ accepted: (Parsed) -> Void) {
        do {
            accepted(try parser(text))
        } catch {
            require(knownMessages.contains(error.message), "unknown message, perhaps quoting the value: \(error.message)")
            require((1...items).contains(error.position), "\(error.syntax): position \(error.position) of \(items) items")
        }
    }

    check(ListSyntax.caids) { caids in
        let again = try? ListSyntax.caids(caids.map(\.text).joined(separator: ","))
        require(again == caids, "caid list does not survive OScam's notation: \(caids.map(\.text))")
    }
    check(ListSyntax.idents) { idents in
        require(idents.allSatisfy { $0.providers.allSatisfy { $0 <= 0xFFFFFF } }, "provider beyond 6 hex digits")
        let again = try? ListSyntax.idents(idents.map(\.text).joined(separator: ";"))
        require(again == idents, "ident list does not survive OScam's notation: \(idents.map(\.text))")
    }
    check(ListSyntax.groups) { groups in
        require(groups.allSatisfy { (1...64).contains($0) }, "group out of range: \(groups)")
        require(groups == Array(Set(groups)).sorted(), "groups must be sorted and unique: \(groups)")
        require((try? ListSyntax.groups(groups.map(String.init).joined(separator: ","))) == groups, "groups round trip")
    }
    check(ListSyntax.ipRanges) { ranges in
        for range in ranges {
            require(range.lower.family == range.upper.family, "a range across address families")
            require(range.contains(range.lower) && range.contains(range.upper), "a range must contain its bounds")
            require(range.lower.bytes.count == (range.lower.family == .v4 ? 4 : 16), "address of the wrong size")
        }
        let again = try? ListSyntax.ipRanges(ranges.map(\.text).joined(separator: ","))
        require(again == ranges, "ip ranges round trip")
    }
    check(ListSyntax.port) { port in
        require((0...65535).contains(port), "port out of range: \(port)")
        require((try? ListSyntax.port(String(port))) == port, "port round trip")
    }
    check({ (text: String) throws(ListSyntaxError) in try ListSyntax.portList(text) }) { ports in
        require(ports.count <= 32 && ports.allSatisfy { (0...65535).contains($0) }, "port list out of range: \(ports)")
    }
    check(ListSyntax.camd35Ports, checkListeners)
    check(ListSyntax.newcamdPorts) { ports in
        checkListeners(ports)
        require(ports.count == 1 || ports.allSatisfy { $0.caid != nil }, "newcamd ports need @CAID")
    }

    for key in ListSyntax.newcamdPortKeys(text) {
        require(!key.isEmpty && text.contains("{" + key + "}"), "a DES key must be the text between braces")
    }
    return 0
}

func checkListeners(_ ports: [ListenerPort]) {
    for port in ports {
        require((0...65535).contains(port.port), "listener port out of range: \(port.port)")
        require(port.providers.allSatisfy { $0 <= 0xFFFFFF }, "provider beyond 6 hex digits")
        require(port.caid != nil || port.providers.isEmpty, "providers without a CAID")
    }
}
