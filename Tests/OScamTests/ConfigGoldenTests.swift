import FoundationEssentials
import Testing
import TestSupport
@testable import OScam

/// Golden tests over hand-made OScam trees in the styles found in the wild: hand-written and
/// commented, OScam-rewritten with 30-column padding, TAB and `;` quirks, BOM, CRLF.
@Suite struct ConfigGoldenTests {
    static let root = testdataDirectory() + "/config"
    static let cases = listDirectory(root)

    @Test(arguments: cases)
    func viewAndRoundTrip(_ name: String) throws {
        let dir = Self.root + "/" + name
        let (file, bytes) = try #require(Self.input(in: dir))
        let document = ConfigDocument(bytes: bytes, file: file, path: file.rawValue)
        #expect(document.serialized() == bytes, "round trip must give the identical bytes")
        assertGolden(Self.render(document), path: dir + "/view.golden")
    }

    @Test(arguments: cases.filter { readBytes(root + "/" + $0 + "/edits") != nil })
    func edits(_ name: String) throws {
        let dir = Self.root + "/" + name
        let (file, bytes) = try #require(Self.input(in: dir))
        var document = ConfigDocument(bytes: bytes, file: file, path: file.rawValue)
        let script = String(decoding: try #require(readBytes(dir + "/edits")), as: UTF8.self)
        let edits = try Self.parseEdits(script)
        let changed = try document.apply(edits)
        #expect(!changed.isEmpty)
        let edited = document.serialized()
        assertGolden(edited, path: dir + "/edited.golden")
        // The edited bytes parse back to the same document, and applying again changes nothing.
        var reparsed = ConfigDocument(bytes: edited, file: file, path: file.rawValue)
        #expect(reparsed.serialized() == edited)
        #expect(try reparsed.apply(edits) == [])
        #expect(reparsed.serialized() == edited)
    }

    static func input(in dir: String) -> (OScamFile, [UInt8])? {
        for file in OScamFile.allCases {
            if let bytes = readBytes(dir + "/" + file.rawValue) {
                return (file, bytes)
            }
        }
        return nil
    }

    /// `upsert USER key=value… -key…`, `delete USER`, `set SECTION KEY VALUE`, `unset SECTION KEY`.
    static func parseEdits(_ script: String) throws -> [ConfigEdit] {
        try script.split(separator: "\n").map { line in
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "upsert":
                let set = words.dropFirst(2).filter { $0.contains("=") }.map { word in
                    let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                    return KeyValue(parts[0], parts.count > 1 ? parts[1] : "")
                }
                let unset = words.dropFirst(2).filter { $0.hasPrefix("-") }.map { String($0.dropFirst()) }
                return .upsertAccount(user: words[1], set: set, unset: unset)
            case "delete":
                return .deleteAccount(user: words[1])
            case "set":
                return .set(section: words[1], key: words[2], value: words.dropFirst(3).joined(separator: " "))
            case "unset":
                return .unset(section: words[1], key: words[2])
            default:
                throw ScriptError()
            }
        }
    }

    struct ScriptError: Error {}

    /// A readable dump of everything the model says about a file; secret values are shown only
    /// as rule counts.
    static func render(_ document: ConfigDocument) -> String {
        var out = "file: \(document.file.rawValue)\nlines: \(document.lineCount)\nproblems:\n"
        for problem in document.allProblems() {
            out += "  \(problem.severity.rawValue) \(problem)\n"
        }
        out += "sections:\n"
        for section in document.sections() {
            out += "  [\(section.name)] header \(section.headerLine.map(String.init) ?? "-")\n"
            let secretRules = Set(document.secretValues().map(\.value))
            for setting in section.settings {
                let shown = secretRules.contains(Secret(setting.value)) ? "<secret>" : setting.value
                out += "    \(setting.line): \(printable(setting.key, limit: 60)) = \(printable(shown, limit: 60))\n"
            }
        }
        switch document.file {
        case .user:
            out += "accounts:\n"
            for account in document.accounts().value {
                out += "  \(account.user) line=\(account.line) enabled=\(account.enabled) groups=\(account.groups)"
                out += " caids=\(account.caids.map(\.text)) idents=\(account.idents.map(\.text))"
                out += " expdate=\(account.expdate ?? "-")\n"
            }
        case .server:
            out += "readers:\n"
            for reader in document.readers().value {
                out += "  \(reader.label) line=\(reader.line) protocol=\(reader.protocolName) enabled=\(reader.enabled)"
                out += " groups=\(reader.groups) caids=\(reader.caids.map(\.text)) idents=\(reader.idents.map(\.text))"
                out += " device=\(reader.deviceKind.rawValue)\n"
            }
        case .conf:
            let webif = document.webif().value
            out += "webif: port=\(webif.port) tls=\(webif.tls) bind=\(webif.bindAddress ?? "-")"
            out += " auth=\(webif.authRequired) readonly=\(webif.readonly) allowed=\(webif.allowed.map(\.text))"
            out += " loopbackOnly=\(webif.loopbackOnly) allowsLoopback=\(webif.allowsLoopback)\n"
            out += "listeners:\n"
            for listener in document.listeners().value {
                let ports = listener.ports.map { port in
                    "\(port.port)" + (port.caid.map { "@" + hex(UInt32($0), width: 4) } ?? "")
                        + (port.providers.isEmpty ? "" : ":" + port.providers.map { hex($0, width: 6) }.joined(separator: ","))
                }
                out += "  \(listener.section) \(listener.transport.rawValue) \(ports)\n"
            }
        }
        var counts: [String: Int] = [:]
        for secret in document.secretValues() {
            counts[secret.rule, default: 0] += 1
        }
        out += "secrets:\n"
        for (rule, count) in counts.sorted(by: { $0.key < $1.key }) {
            out += "  \(rule) x\(count)\n"
        }
        return out
    }
}
