import FoundationEssentials
import Testing
import TestSupport
@testable import OScam

/// The collectors read oscam.user and oscam.server straight from their bytes
/// (`FileAnalysis(scanning:)`); the document model stays the reference. The two must agree on
/// every account, reader, secret and problem, for every fixture and for generated and mutated
/// files full of the quirks OScam's parser has.
@Suite struct FastReadingTests {
    /// Every OScam file the repository holds.
    static let fixtures: [String] = {
        let repo = TestEnvironment.packageRoot
        let configCases = repo + "/Tests/OScamTests/testdata/config"
        var dirs = listDirectory(configCases).map { configCases + "/" + $0 }
        dirs += ["/Tests/CollectorsTests/testdata/tree/oscam", "/Tests/CollectorsTests/testdata/tree/broken",
                 "/Tests/RunnerTests/testdata/peer-etc", "/config/example/oscam/main", "/config/example/oscam/backup"]
            .map { repo + $0 }
        return dirs.flatMap { dir in OScamFile.allCases.map { dir + "/" + $0.rawValue } }
            .filter { readBytes($0) != nil }
    }()

    /// The fast reading against the document's typed views, field by field and as a whole.
    static func expectAgreement(_ bytes: [UInt8], _ file: OScamFile, sourceLocation: SourceLocation = #_sourceLocation) {
        let document = ConfigDocument(bytes: bytes, file: file, path: file.rawValue)
        let scanned = FileAnalysis(scanning: bytes, file: file, path: file.rawValue)
        #expect(scanned == document.analyze(), sourceLocation: sourceLocation)
        #expect(scanned.problems == document.allProblems(), sourceLocation: sourceLocation)
        #expect(scanned.secrets == document.secretValues(), sourceLocation: sourceLocation)
        switch file {
        case .user:
            #expect(scanned.accounts == document.accounts().value.map(AccountSummary.init), sourceLocation: sourceLocation)
        case .server:
            #expect(scanned.readers == document.readers().value, sourceLocation: sourceLocation)
        case .conf:
            #expect(scanned.webif == document.webif().value, sourceLocation: sourceLocation)
        }
    }

    /// Whether the byte path read the file itself rather than handing it to the document model.
    static func tookBytePath(_ bytes: [UInt8], _ file: OScamFile) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var scan = RecordScan(source: bytes, bytes: buffer, file: file, path: file.rawValue)
            return scan.run() != nil
        }
    }

    @Test(arguments: fixtures)
    func everyFixture(_ path: String) throws {
        let bytes = try #require(readBytes(path))
        let file = try #require(OScamFile(rawValue: String(path.split(separator: "/").last ?? "")))
        Self.expectAgreement(bytes, file)
        if file != .conf {
            #expect(Self.tookBytePath(bytes, file), "a fixture without overlong lines must be read by the byte path")
        }
    }

    @Test(arguments: [OScamFile.user, .server])
    func generatedFiles(_ file: OScamFile) {
        var rng = SeededRandom(seed: 0xFA57_0001 &+ UInt64(file.rawValue.count))
        for _ in 0..<1500 {
            Self.expectAgreement(ConfigFuzzTests.randomFile(&rng), file)
        }
    }

    @Test(arguments: [OScamFile.user, .server])
    func mutatedFixtures(_ file: OScamFile) {
        var rng = SeededRandom(seed: 0xFA57_0002)
        let inputs = Self.fixtures.compactMap(readBytes)
        for round in 0..<2000 {
            Self.expectAgreement(ConfigFuzzTests.mutate(inputs[round % inputs.count], &rng), file)
        }
    }

    // MARK: - Account files with every quirk the byte path must get right

    /// Values the byte path parses once per distinct text and shares, and names that only
    /// compare equal as Swift strings (NFC and NFD, the Kelvin sign, the Greek question mark).
    static let users = ["alice", "bob", "Jos\u{E9}", "Jose\u{301}", "\u{212A}elvin", "Kelvin", "a b", "x;y", "",
                        "0123456789ABCDEF0123", "caf\u{E9}"]
    static let keys = ["user", "USER", "User ", "pwd", "group", "caid", "ident", "expdate", "disabled", "hostname",
                       "description", "mykey", "secrettoken", "au", "\tuser", ";user", "\u{37E}user", ";\u{301}x",
                       "", "us\u{37E}er", "k\u{212A}ey", "label"]
    static let values = ["1", "0", "", "+1", "-0", "x", " 2", "1,2", "64", "65", "0963,098C&FFF0:1830", "XYZ",
                         "0963:000000,000001;098C:000000", "0963:", "zz:00", "2027-01-28", "2027/1/2", "2027-+1-28",
                         "2027-13-01", "1969-01-01", "2027-\u{E9}-01", "hunter22", "\u{FC}ber-secret", "\tvalue",
                         "2027-1-1", "+202-1-1", "2027--01", "2027-01-", "-2027-01-01", "2027-01-01-01", "2027/12/31",
                         "2027-00-10", "2027-01-32", "1970-1-1", "9999-99-99", "2027-\u{661}-01", "20 7-01-01",
                         "0963:", "0963:,", " 0963 : 000001 ", "a,", ",", " ", "0963,", "1,,2", "00063", "0963&",
                         "0963:0:FFFF", "FFFF&FFFF:FFFF,0"]

    static func accountsFile(_ rng: inout SeededRandom) -> [UInt8] {
        var lines: [String] = Bool.random(using: &rng) ? [] : ["\u{FEFF}# bom", "user = before any header"]
        for _ in 0..<Int.random(in: 0..<40, using: &rng) {
            lines.append(["[account]", "[ACCOUNT]", " [account]", "[reader]", "[global]", "[account] "]
                .randomElement(using: &rng) ?? "[account]")
            lines.append("user = " + (users.randomElement(using: &rng) ?? ""))
            for _ in 0..<Int.random(in: 0..<8, using: &rng) {
                let key = keys.randomElement(using: &rng) ?? "x"
                let value = key.lowercased().hasPrefix("user") ? users.randomElement(using: &rng) ?? ""
                    : values.randomElement(using: &rng) ?? ""
                lines.append([key + " = " + value, key + "=" + value, key + " =\t" + value, " " + key + " = " + value,
                              key.padding(30) + "= " + value + " \r"].randomElement(using: &rng) ?? "")
            }
            if Int.random(in: 0..<10, using: &rng) == 0 {
                lines.append(["# comment", "no equals here", "", "   ", "[]"].randomElement(using: &rng) ?? "")
            }
        }
        var bytes = Array(lines.joined(separator: Bool.random(using: &rng) ? "\n" : "\r\n").utf8)
        if Int.random(in: 0..<8, using: &rng) == 0, !bytes.isEmpty {
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = 0xFF
        }
        return bytes
    }

    @Test func accountFilesWithEveryQuirk() {
        var rng = SeededRandom(seed: 0xFA57_0003)
        for _ in 0..<500 {
            let bytes = Self.accountsFile(&rng)
            Self.expectAgreement(bytes, .user)
            Self.expectAgreement(bytes, .server)
            #expect(Self.tookBytePath(bytes, .user))
        }
    }

    @Test func anOverlongLineGoesThroughTheDocumentModel() {
        let bytes = Array("[account]\nuser = a\ndescription = \(String(repeating: "x", count: 16_400))\n".utf8)
        #expect(!Self.tookBytePath(bytes, .user))
        Self.expectAgreement(bytes, .user)
    }

    @Test func repeatedValuesAreParsedOnceAndShared() throws {
        let record = "[account]\nuser = u%d\ncaid = 0963,098C&FFF0:1830\nident = 0963:000000,000001\ngroup = 1,2\n"
        let text = (0..<3).map { record.replacing("%d", with: String($0)) }.joined()
        let accounts = try #require(FileAnalysis(scanning: Array(text.utf8), file: .user, path: "oscam.user").accounts)
        #expect(accounts.map(\.user) == ["u0", "u1", "u2"])
        #expect(accounts.allSatisfy { $0.caids == ["0963", "098C&FFF0:1830"] && $0.idents == ["0963:000000,000001"] })
        #expect(accounts.allSatisfy { $0.groups == [1, 2] })
    }
}
