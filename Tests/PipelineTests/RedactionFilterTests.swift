#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import TestSupport
import Testing

/// CPU seconds used by the calling thread.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

@Suite struct RedactionFilterTests {
    static let redacted = RedactionFilter.replacement

    /// Scrubs one string held under `key`; returns the result and the counts.
    func scrub(_ text: String, _ secrets: [(rule: String, value: String)], key: String = "message")
        -> (String, [String: Int]) {
        var counts: [String: Int] = [:]
        let filter = RedactionFilter(secrets: secrets)
        let result = filter.apply(.object([key: .string(text)]), counts: &counts)
        guard case .object(let members) = result, case .string(let scrubbed)? = members[key] else {
            Issue.record("the filter changed the shape of the value: \(result)")
            return ("", counts)
        }
        return (scrubbed, counts)
    }

    static let pwd = (rule: "oscam.user:pwd", value: "hunter22")

    // MARK: - Secrets inside strings

    @Test(arguments: [
        ("hunter22", "<redacted>", 1),
        ("hunter22 at the start", "<redacted> at the start", 1),
        ("in the hunter22 middle", "in the <redacted> middle", 1),
        ("at the end: hunter22", "at the end: <redacted>", 1),
        ("hunter22hunter22", "<redacted><redacted>", 2),
        ("x hunter22 y hunter22 z hunter22", "x <redacted> y <redacted> z <redacted>", 3),
        ("user=hunter22;pwd=hunter22", "user=<redacted>;pwd=<redacted>", 2),
        ("hunter2", "hunter2", 0),
        ("Hunter22", "Hunter22", 0),
        ("hunter 22", "hunter 22", 0),
        ("", "", 0),
    ])
    func secretIsReplacedWherever(_ text: String, _ expected: String, _ count: Int) {
        let (result, counts) = scrub(text, [Self.pwd])
        #expect(result == expected)
        #expect(counts == (count == 0 ? [:] : [Self.pwd.rule: count]))
    }

    @Test func countsArePerRuleAndExact() {
        let secrets = [(rule: "oscam.user:pwd", value: "alpha123"), (rule: "oscam.server:password", value: "bravo456"),
                       (rule: "oscam.conf:httppwd", value: "charlie7")]
        var counts: [String: Int] = [:]
        let filter = RedactionFilter(secrets: secrets)
        let value = JSONValue.object([
            "a": .string("alpha123 and bravo456"), "b": .array([.string("alpha123"), .string("xalpha123x")]),
            "c": .object(["d": .string("bravo456")]), "e": .string("nothing here"),
        ])
        let result = filter.apply(value, counts: &counts)
        #expect(counts == ["oscam.user:pwd": 3, "oscam.server:password": 2])
        #expect(result == .object([
            "a": .string("<redacted> and <redacted>"), "b": .array([.string("<redacted>"), .string("x<redacted>x")]),
            "c": .object(["d": .string("<redacted>")]), "e": .string("nothing here"),
        ]))
        // Counts add up over calls, as the contract says ("adds to counts").
        _ = filter.apply(.string("charlie7"), counts: &counts)
        #expect(counts == ["oscam.user:pwd": 3, "oscam.server:password": 2, "oscam.conf:httppwd": 1])
    }

    @Test func theSameValueUnderTwoRulesIsCountedOnce() {
        let secrets = [(rule: "first", value: "shared1"), (rule: "second", value: "shared1")]
        let (result, counts) = scrub("a shared1 b", secrets)
        #expect(result == "a <redacted> b")
        #expect(counts.values.reduce(0, +) == 1)
    }

    @Test func emptySecretsAreIgnored() {
        let filter = RedactionFilter(secrets: [(rule: "empty", value: ""), (rule: "short", value: "ab"), Self.pwd])
        #expect(filter.secretCount == 2)
        let (result, counts) = scrub("", [(rule: "empty", value: "")])
        #expect(result == "")
        #expect(counts.isEmpty)
    }

    // MARK: - Secrets that overlap or contain each other

    @Test func longerSecretWinsOverItsPrefixAtTheSamePosition() {
        let secrets = [(rule: "short", value: "hunter"), (rule: "long", value: "hunter22")]
        #expect(scrub("pw=hunter22;", secrets) == ("pw=<redacted>;", ["long": 1]))
        // Order of declaration does not matter.
        #expect(scrub("pw=hunter22;", secrets.reversed()) == ("pw=<redacted>;", ["long": 1]))
        #expect(scrub("hunter hunter22 hunter", secrets)
                == ("<redacted> <redacted> <redacted>", ["short": 2, "long": 1]))
    }

    @Test func longerSecretWinsOverItsSuffix() {
        let secrets = [(rule: "suffix", value: "ter22"), (rule: "long", value: "hunter22")]
        #expect(scrub("[hunter22]", secrets) == ("[<redacted>]", ["long": 1]))
    }

    @Test func overlappingSecretsNeverLeaveAWholeSecret() {
        let cases: [(String, [(rule: String, value: String)])] = [
            ("aaaaaa", [(rule: "a", value: "aaaa")]),
            ("abcdefghi", [(rule: "x", value: "abcdef"), (rule: "y", value: "defghi")]),
            ("abcdefghijkl", [(rule: "x", value: "abcdefgh"), (rule: "y", value: "ghijkl")]),
            ("xxabcdefgh", [(rule: "x", value: "xxabcd"), (rule: "y", value: "cdefgh")]),
        ]
        for (text, secrets) in cases {
            let (result, counts) = scrub(text, secrets)
            for secret in secrets {
                #expect(!result.contains(secret.value), "\(text) -> \(result)")
            }
            #expect(!counts.isEmpty)
            #expect(result.contains(Self.redacted))
        }
    }

    @Test
    func overlappingSecretsAreRemovedEntirely() {
        // Different lengths: the longer is replaced first, then the shorter no longer matches and
        // its tail stays. Same length: the right-most match wins and the left one's head stays.
        let differentLengths = [(rule: "x", value: "abcdefgh"), (rule: "y", value: "ghijkl")]
        #expect(scrub("abcdefghijkl", differentLengths).0 == Self.redacted)
        let sameLength = [(rule: "x", value: "abcdef"), (rule: "y", value: "defghi")]
        #expect(scrub("abcdefghi", sameLength).0 == Self.redacted)
        #expect(scrub("aaaaaa", [(rule: "a", value: "aaaa")]).0 == Self.redacted)
    }

    @Test
    func replacementTextIsNotScrubbedAgain() {
        // "hunter222" is replaced first; then the 6-byte secret "dacted" matches inside the
        // replacement itself: the result is "<re<redacted>>" and "dacted" is counted although the
        // input never contained it.
        let secrets = [(rule: "long", value: "hunter222"), (rule: "odd", value: "dacted")]
        let (result, counts) = scrub("x hunter222 y", secrets)
        #expect(result == "x <redacted> y")
        #expect(counts == ["long": 1])
    }

    // MARK: - Bytes, not characters

    @Test(arguments: [
        ("пароль", "логин: пароль!", "логин: <redacted>!"),
        ("ab€", "xab€y", "x<redacted>y"),
        ("🔑🔑", "key 🔑🔑 🔑", "key <redacted> 🔑"),
        ("e\u{301}t\u{e9}", "caf e\u{301}t\u{e9}!", "caf <redacted>!"),
    ])
    func multiByteSecrets(_ secret: String, _ text: String, _ expected: String) {
        let (result, counts) = scrub(text, [(rule: "r", value: secret)])
        #expect(result == expected)
        #expect(Array(result.utf8) == Array(expected.utf8))
        #expect(counts == ["r": 1])
    }

    @Test func secretsWithJSONSpecialCharacters() {
        let secret = #"p"a\ss"#
        let filter = RedactionFilter(secrets: [(rule: "r", value: secret), (rule: "nl", value: "line\nbreak")])
        var counts: [String: Int] = [:]
        let result = filter.apply(.object(["m": .string("before \(secret) after, line\nbreak")]), counts: &counts)
        #expect(result == .object(["m": .string("before <redacted> after, <redacted>")]))
        #expect(counts == ["r": 1, "nl": 1])
        let encoded = result.encoded()
        #expect(!encoded.containsBytes(Array(#"p\"a\\ss"#.utf8)))
        #expect(!encoded.containsBytes(Array(secret.utf8)))
    }

    // MARK: - Short secrets

    @Test(arguments: [
        ("abc", "<redacted>", 1),
        ("abcd", "abcd", 0),
        ("xabc", "xabc", 0),
        ("abc ", "abc ", 0),
        (" abc", " abc", 0),
        ("ABC", "ABC", 0),
    ])
    func shortSecretOnlyAsTheWholeString(_ text: String, _ expected: String, _ count: Int) {
        let (result, counts) = scrub(text, [(rule: "short", value: "abc")])
        #expect(result == expected)
        #expect(counts == (count == 0 ? [:] : ["short": count]))
    }

    @Test func lengthThresholdIsInBytes() {
        // "€" is one character but three bytes: short. "é€" is two characters, five bytes: long.
        #expect(scrub("x€x", [(rule: "r", value: "€")]) == ("x€x", [:]))
        #expect(scrub("€", [(rule: "r", value: "€")]) == (Self.redacted, ["r": 1]))
        #expect(scrub("xé€x", [(rule: "r", value: "é€")]) == ("x<redacted>x", ["r": 1]))
        #expect(scrub("abcd abcd", [(rule: "r", value: "abcd")]) == ("<redacted> <redacted>", ["r": 2]))
        #expect(RedactionFilter.minimumSubstringLength == 4)
    }

    @Test func shortSecretAsAnArrayElement() {
        var counts: [String: Int] = [:]
        let result = RedactionFilter(secrets: [(rule: "r", value: "ab")]).apply(
            .array([.string("ab"), .string("abc"), .array([.string("ab")])]), counts: &counts)
        #expect(result == .array([.string(Self.redacted), .string("abc"), .array([.string(Self.redacted)])]))
        #expect(counts == ["r": 2])
    }

    // MARK: - What is left alone

    @Test func keysAreNotAltered() {
        var counts: [String: Int] = [:]
        let filter = RedactionFilter(secrets: [Self.pwd, (rule: "short", value: "ab")])
        let result = filter.apply(.object(["hunter22": .string("hunter22"), "ab": .object(["ab": .int(1)]),
                                           "0123456789abcdef0123": .bool(true)]), counts: &counts)
        #expect(result == .object(["hunter22": .string(Self.redacted), "ab": .object(["ab": .int(1)]),
                                   "0123456789abcdef0123": .bool(true)]))
        #expect(counts == [Self.pwd.rule: 1])
    }

    @Test func nonStringsAreUntouched() {
        var counts: [String: Int] = [:]
        let filter = RedactionFilter(secrets: [(rule: "n", value: "1234"), (rule: "b", value: "true"),
                                               (rule: "f", value: "9.1"), (rule: "z", value: "null")])
        let value = JSONValue.object(["i": .int(1234), "big": .int(12_345_678_901_234_567), "t": .bool(true),
                                      "f": .fixed(Fixed(9.1)), "n": .null, "hex": .int(1_234_567_890_123_456_789)])
        #expect(filter.apply(value, counts: &counts) == value)
        #expect(counts.isEmpty)
    }

    // MARK: - Card-data patterns

    static let hex16 = "0123456789abcdef"

    @Test(arguments: [
        (hex16, "<redacted>", 1),
        ("0123456789ABCDEF", "<redacted>", 1),
        ("0123456789abcde", "0123456789abcde", 0),
        ("key " + hex16 + hex16, "key <redacted>", 1),
        ("k=" + hex16 + "; v=" + hex16 + ".", "k=<redacted>; v=<redacted>.", 2),
        ("x-" + hex16, "x-<redacted>", 1),
        ("(" + hex16 + ")", "(<redacted>)", 1),
        ("é" + hex16 + "é", "é<redacted>é", 1),
        // Not inside a longer word.
        ("g" + hex16, "g" + hex16, 0),
        (hex16 + "g", hex16 + "g", 0),
        ("_" + hex16, "_" + hex16, 0),
        (hex16 + "_", hex16 + "_", 0),
        ("Z" + hex16 + "Z", "Z" + hex16 + "Z", 0),
        // Instance ids are `osc_` + 16 hex digits and must survive.
        ("osc_" + hex16, "osc_" + hex16, 0),
        // A UUID has no run of 16.
        ("550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000", 0),
    ])
    func longHexRunsAreCardData(_ text: String, _ expected: String, _ count: Int) {
        expectPattern("pattern:hex16", text, expected, count)
    }

    @Test(arguments: [
        ("3B 9F 21 0E 49 52 44 45 54 4F", "<redacted>", 1),
        ("ATR: 3B 9F 21 0E 49 52 44 45 54 4F (card)", "ATR: <redacted> (card)", 1),
        ("atr=3b 9f 21 0e 49 52 44 45", "atr=<redacted>", 1),
        ("3F 77 18 00 00 C2 7A 44 02 68 90 00", "<redacted>", 1),
        ("3B:9F:21:0E:49:52:44:45:54:4F", "<redacted>", 1),
        ("atr 3f:77:18:00:00:c2:7a:44:02:68:90:00.", "atr <redacted>.", 1),
        // Seven bytes are not enough.
        ("3B 9F 21 0E 49 52 44", "3B 9F 21 0E 49 52 44", 0),
        ("3B:9F:21:0E:49:52:44", "3B:9F:21:0E:49:52:44", 0),
    ])
    func atrsAreCardData(_ text: String, _ expected: String, _ count: Int) {
        expectPattern("pattern:atr", text, expected, count)
    }

    @Test(arguments: [
        // A key or serial written as separated bytes, whatever its first byte.
        ("3C 9F 21 0E 49 52 44 45 54 4F", "<redacted>", 1),
        ("key 01 23 45 67 89 AB CD EF here", "key <redacted> here", 1),
        ("serial=01:23:45:67:89:ab:cd:ef", "serial=<redacted>", 1),
        ("two: 01 23 45 67 89 AB CD EF, 11:22:33:44:55:66:77:88", "two: <redacted>, <redacted>", 2),
        // A MAC address, a short list, mixed separators, groups of other widths, a word before.
        ("mac 00:11:22:33:44:55", "mac 00:11:22:33:44:55", 0),
        ("01 23 45 67 89 AB CD", "01 23 45 67 89 AB CD", 0),
        ("01 23 45 67:89 AB CD EF", "01 23 45 67:89 AB CD EF", 0),
        ("fe80:0000:0000:0000:0202:b3ff:fe1e:8329", "fe80:0000:0000:0000:0202:b3ff:fe1e:8329", 0),
        ("0963:000000,000001;098C:000000", "0963:000000,000001;098C:000000", 0),
        ("x01 23 45 67 89 AB CD EF", "x01 23 45 67 89 AB CD EF", 0),
    ])
    func separatedHexBytesAreCardData(_ text: String, _ expected: String, _ count: Int) {
        expectPattern("pattern:hexbytes", text, expected, count)
    }

    /// `text` scrubbed with no secrets gives `expected`, with `count` matches of `rule` only.
    private func expectPattern(_ rule: String, _ text: String, _ expected: String, _ count: Int) {
        let (result, counts) = scrub(text, [])
        #expect(result == expected)
        #expect(counts == (count == 0 ? [:] : [rule: count]))
    }

    @Test
    func hexWithA0xPrefixIsCardData() {
        // "x" counts as a word byte, so the run is taken to be inside a longer word.
        #expect(scrub("key 0x" + Self.hex16, []) == ("key 0x<redacted>", ["pattern:hex16": 1]))
    }

    @Test func sha256KeyIsExemptFromTheHexRuleOnly() {
        let digest = String(repeating: "0123456789abcdef", count: 4)
        var counts: [String: Int] = [:]
        let filter = RedactionFilter(secrets: [Self.pwd])
        let value = JSONValue.object([
            "files": .object(["oscam.user": .object(["sha256": .string(digest), "size": .int(1)])]),
            "sha256": .array([.string(digest), .string("hunter22 " + digest)]),
            "base_sha256": .string(digest),
            "other": .string(digest),
        ])
        let result = filter.apply(value, counts: &counts)
        #expect(result == .object([
            "files": .object(["oscam.user": .object(["sha256": .string(digest), "size": .int(1)])]),
            "sha256": .array([.string(digest), .string("<redacted> " + digest)]),
            "base_sha256": .string(Self.redacted),
            "other": .string(Self.redacted),
        ]))
        #expect(counts == [Self.pwd.rule: 1, "pattern:hex16": 2])
    }

    @Test func secretsAndPatternsInOneString() {
        let (result, counts) = scrub("pwd hunter22 key \(Self.hex16) atr 3B 9F 21 0E 49 52 44 45 54 4F", [Self.pwd])
        #expect(result == "pwd <redacted> key <redacted> atr <redacted>")
        #expect(counts == [Self.pwd.rule: 1, "pattern:hex16": 1, "pattern:atr": 1])
    }

    // MARK: - Properties

    /// Secrets and filler come from an alphabet without "<" and ">", so no secret can be spelled
    /// by the replacement text itself.
    static let alphabet: [Unicode.Scalar] = Array("abcdefxyzABC0189 _-=:;,.\"\\\n\té€😀".unicodeScalars)

    @Test(arguments: [UInt64(7), 8, 9, 10])
    func noSecretSurvives(seed: UInt64) {
        var random = RandomJSON(seed: seed)
        for round in 0..<300 {
            var secrets: [(rule: String, value: String)] = []
            for index in 0..<random.int(in: 1...5) {
                var secret = ""
                while secret.utf8.count < RedactionFilter.minimumSubstringLength {
                    secret = random.string(maxLength: 10, from: Self.alphabet)
                }
                secrets.append((rule: "rule\(index)", value: secret))
            }
            var text = ""
            for _ in 0..<random.int(in: 1...6) {
                text += random.string(maxLength: 8, from: Self.alphabet)
                text += secrets[random.int(in: 0...(secrets.count - 1))].value
            }
            text += random.string(maxLength: 8, from: Self.alphabet)

            var counts: [String: Int] = [:]
            let result = RedactionFilter(secrets: secrets).apply(.array([.string(text)]), counts: &counts)
            let bytes = result.encoded()
            guard case .array(let items) = result, case .string(let scrubbed)? = items.first else {
                Issue.record("shape changed")
                return
            }
            // Look only outside the replacement markers: a 4-byte secret such as "edac" is
            // spelled by "<redacted>" itself.
            let outside = Array(scrubbed.utf8).segments(separatedBy: Array(RedactionFilter.replacement.utf8))
            for secret in secrets {
                #expect(!outside.contains { $0.containsBytes(Array(secret.value.utf8)) },
                        "round \(round): secret \(secret.value.debugDescription) in \(scrubbed.debugDescription)")
            }
            #expect(counts.values.reduce(0, +) >= 1)
            #expect(!bytes.isEmpty)
        }
    }

    /// What the filter must find, the slow way: every secret at every position (a value listed
    /// twice counts for its first rule), overlaps merged, one count per secret not inside a
    /// longer one. The alphabet has no hex digits, so card patterns stay out of it.
    static func naiveScrub(_ text: String, _ secrets: [(rule: String, value: String)]) -> (String, [String: Int]) {
        var distinct: [(rule: String, bytes: [UInt8])] = []
        for (rule, value) in secrets where value.utf8.count >= RedactionFilter.minimumSubstringLength
            && !distinct.contains(where: { $0.bytes == Array(value.utf8) }) {
            distinct.append((rule, Array(value.utf8)))
        }
        if let whole = secrets.first(where: { !$0.value.isEmpty && $0.value == text
                                              && $0.value.utf8.count < RedactionFilter.minimumSubstringLength }) {
            return (RedactionFilter.replacement, [whole.rule: 1])
        }
        let bytes = Array(text.utf8)
        var matches: [(start: Int, end: Int, rule: String)] = []
        for start in bytes.indices {
            for secret in distinct where bytes[start...].starts(with: secret.bytes) {
                matches.append((start, start + secret.bytes.count, secret.rule))
            }
        }
        matches.sort { ($0.start, -$0.end) < ($1.start, -$1.end) }
        var counts: [String: Int] = [:]
        var output: [UInt8] = []
        var copied = 0
        var index = 0
        while index < matches.count {
            var end = matches[index].end
            output += bytes[copied..<matches[index].start] + Array(RedactionFilter.replacement.utf8)
            counts[matches[index].rule, default: 0] += 1
            index += 1
            while index < matches.count, matches[index].start < end {
                if matches[index].end > end {
                    counts[matches[index].rule, default: 0] += 1
                    end = matches[index].end
                }
                index += 1
            }
            copied = end
        }
        output += bytes[copied...]
        return (matches.isEmpty ? text : String(decoding: output, as: UTF8.self), counts)
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func agreesWithANaiveSearch(seed: UInt64) {
        var random = RandomJSON(seed: seed)
        let letters = Array("ghijklmnopqrstuvwxyz GHIJ_-=:;,.ü😀".unicodeScalars)
        for _ in 0..<400 {
            var secrets: [(rule: String, value: String)] = []
            for index in 0..<random.int(in: 1...12) {
                let value = index > 0 && random.int(in: 0...3) == 0
                    ? String(secrets[random.int(in: 0...(index - 1))].value.dropLast())
                    : random.string(maxLength: 9, from: letters)
                secrets.append((rule: "rule\(random.int(in: 0...3))", value: value))
            }
            var text = ""
            for _ in 0..<random.int(in: 0...5) {
                text += random.string(maxLength: 6, from: letters)
                text += secrets[random.int(in: 0...(secrets.count - 1))].value
            }
            var counts: [String: Int] = [:]
            let result = RedactionFilter(secrets: secrets).scrub(text, key: nil, counts: &counts)
            let (expected, expectedCounts) = Self.naiveScrub(text, secrets)
            #expect(result == expected, "\(text.debugDescription) with \(secrets.map(\.value))")
            #expect(counts == expectedCounts, "\(text.debugDescription) with \(secrets.map(\.value))")
        }
    }

    @Test func isDeterministic() {
        var random = RandomJSON(seed: 99)
        let secrets = (0..<50).map { (rule: "r\($0)", value: random.string(maxLength: 12) + "abcd") }
        let filter = RedactionFilter(secrets: secrets)
        for _ in 0..<100 {
            let value = random.value()
            var first: [String: Int] = [:]
            var second: [String: Int] = [:]
            #expect(filter.apply(value, counts: &first) == filter.apply(value, counts: &second))
            #expect(first == second)
        }
    }

    @Test func manySecretsAndManyStringsAreFast() {
        var random = RandomJSON(seed: 2024)
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".unicodeScalars)
        var secrets: [(rule: String, value: String)] = []
        for index in 0..<20_000 {
            var secret = ""
            while secret.utf8.count < 4 {
                secret = random.string(maxLength: 24, from: letters)
            }
            secrets.append((rule: "oscam.user:pwd#\(index % 7)", value: secret))
        }
        let strings = (0..<20_000).map { index in
            let embedded = index % 100 == 0 ? secrets[index].value : ""
            return JSONValue.string(random.string(maxLength: 30, from: letters) + embedded)
        }
        // CPU time of this thread, not wall time: other tests run in parallel on a small machine.
        let start = threadCPUSeconds()
        let filter = RedactionFilter(secrets: secrets)
        var counts: [String: Int] = [:]
        let result = filter.apply(.array(strings), counts: &counts)
        let elapsed = threadCPUSeconds() - start
        #expect(elapsed < 2, "took \(elapsed) s of CPU")
        #expect(counts.values.reduce(0, +) >= 200)
        guard case .array(let items) = result else {
            Issue.record("shape changed")
            return
        }
        #expect(items.count == strings.count)
    }
}
