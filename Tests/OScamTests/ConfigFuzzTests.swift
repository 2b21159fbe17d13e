import FoundationEssentials
import Testing
import TestSupport
@testable import OScam

/// Thousands of generated and mutated files through parse → edit → write → parse: no crash, the
/// round trip exact, every edit visible in the re-parsed file, untouched comments kept in order.
@Suite struct ConfigFuzzTests {
    static let keys = ["user", "pwd", "group", "caid", "ident", "expdate", "disabled", "au", "nice", "port",
                       "httpport", "httpallowed", "clienttimeout", "Label", "PROTOCOL", "key", "x"]
    static let headers = ["[account]", "[ACCOUNT]", "[reader]", "[global]", "[webif]", "[newcamd]", "[x]",
                          "[]", "[account", " [global]", "\t[account]", "[Monitor]"]
    static let values = ["alice", "bob", "1", "0", "", "0963,098C&FFF0:1830", "a=b", "[x]", "  spaced  ",
                         "\ttabbed", "# not a comment", "ünïcödé", "18888", "+8443", "127.0.0.1"]

    static func randomLine(_ rng: inout SeededRandom) -> [UInt8] {
        let key = keys.randomElement(using: &rng) ?? "x"
        let value = values.randomElement(using: &rng) ?? ""
        switch Int.random(in: 0..<14, using: &rng) {
        case 0: return []
        case 1: return Array("   ".utf8)
        case 2: return Array("# comment \(Int.random(in: 0..<99, using: &rng))".utf8)
        case 3: return Array((headers.randomElement(using: &rng) ?? "[x]").utf8)
        case 4: return Array("\(key)=\(value)".utf8)
        case 5: return Array("\(key) = \(value)".utf8)
        case 6: return Array((key.padding(30) + "= " + value).utf8)
        case 7: return Array(" \(key) = \(value)".utf8)
        case 8: return Array("\t\(key) = \(value)".utf8)
        case 9: return Array(";\(key) = \(value)".utf8)
        case 10: return Array("\(key) =\t\(value)".utf8)
        case 11: return Array("no equals here".utf8)
        case 12: return (0..<Int.random(in: 0..<12, using: &rng)).map { _ in
            [0x3D, 0x5B, 0x5D, 0x23, 0x0D, 0x20, 0x09, 0xEF, 0xBB, 0xBF, 0xFF, 0x61, 0x00].randomElement(using: &rng) ?? 0
        }
        default: return Array("\(key) = \(value)   ".utf8)
        }
    }

    static func randomFile(_ rng: inout SeededRandom) -> [UInt8] {
        var out: [UInt8] = Int.random(in: 0..<20, using: &rng) == 0 ? [0xEF, 0xBB, 0xBF] : []
        let crlf = Int.random(in: 0..<4, using: &rng) == 0
        let count = Int.random(in: 0..<40, using: &rng)
        for index in 0..<count {
            out += randomLine(&rng)
            if Int.random(in: 0..<500, using: &rng) == 0 {
                out += [UInt8](repeating: 0x61, count: 16_400)
            }
            if index < count - 1 || Bool.random(using: &rng) {
                out += crlf ? [0x0D, 0x0A] : [0x0A]
            }
        }
        return out
    }

    static func mutate(_ input: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            let interesting: [UInt8] = [0x0A, 0x0D, 0x3D, 0x5B, 0x5D, 0x23, 0x20, 0x09, 0x3B, 0xEF, 0x00, 0xC3]
            let byte = interesting.randomElement(using: &rng) ?? 0
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes.insert(byte, at: position)
            case 1 where !bytes.isEmpty: bytes.remove(at: position)
            default: if !bytes.isEmpty { bytes[position] = byte }
            }
        }
        return bytes
    }

    static func randomEdits(_ file: OScamFile, _ rng: inout SeededRandom) -> [ConfigEdit] {
        let users = ["alice", "bob", "carol", "zoe", "new-user"]
        let sections = ["global", "webif", "newcamd", "monitor", "cccam"]
        let editKeys = ["pwd", "group", "caid", "nice", "clienttimeout", "httpallowed", "au", "expdate"]
        let editValues = ["s3cret", "1,2", "0963", "-1", "4500", "127.0.0.1", "", "2027-01-01", "a=b", "[x]"]
        return (0..<Int.random(in: 1...5, using: &rng)).map { _ in
            let user = users.randomElement(using: &rng) ?? "alice"
            let key = editKeys.randomElement(using: &rng) ?? "pwd"
            let value = editValues.randomElement(using: &rng) ?? ""
            switch (file, Int.random(in: 0..<3, using: &rng)) {
            case (.user, 0): return .deleteAccount(user: user)
            case (.user, 1): return .upsertAccount(user: user, set: [], unset: [key])
            case (.user, _): return .upsertAccount(user: user, set: [KeyValue(key, value)], unset: [])
            case (_, 0): return .unset(section: sections.randomElement(using: &rng) ?? "global", key: key)
            default: return .set(section: sections.randomElement(using: &rng) ?? "global", key: key, value: value)
            }
        }
    }

    static func exercise(_ bytes: [UInt8], _ file: OScamFile, _ rng: inout SeededRandom) {
        let edits = randomEdits(file, &rng)
        // The generated names and values are all valid, so only the file may be refused.
        let outcome = ConfigEditOracle.check(bytes, file: file, edits: edits, refusals: [.unsafeFile, .wouldNotParse])
        for violation in outcome.violations {
            Issue.record(Comment(rawValue: violation))
        }
    }

    @Test(arguments: OScamFile.allCases)
    func generatedFiles(_ file: OScamFile) {
        var rng = SeededRandom(seed: 0x05CA_0001 &+ UInt64(file.rawValue.count))
        for _ in 0..<1500 {
            Self.exercise(Self.randomFile(&rng), file, &rng)
        }
    }

    @Test func mutatedFixtures() {
        var rng = SeededRandom(seed: 0x05CA_0002)
        let root = testdataDirectory() + "/config"
        let inputs = listDirectory(root).compactMap { ConfigGoldenTests.input(in: root + "/" + $0) }
        #expect(inputs.count >= 8)
        for round in 0..<3000 {
            let (file, bytes) = inputs[round % inputs.count]
            Self.exercise(Self.mutate(bytes, &rng), file, &rng)
        }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
