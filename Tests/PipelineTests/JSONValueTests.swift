import Pipeline
import Testing

@Suite struct JSONValueTests {
    // MARK: - Layout

    @Test func objectsAreCompactWithSortedKeys() {
        let value = JSONValue.object([
            "b": .int(1), "a": .array([.bool(true), .bool(false), .null]), "c": .object(["y": .string("z")]),
        ])
        #expect(value.encodedText == #"{"a":[true,false,null],"b":1,"c":{"y":"z"}}"#)
    }

    @Test func keysAreSortedByTheirUTF8BytesNotByStringOrdering() {
        // "e" + COMBINING ACUTE sorts after "f" under `String.<` (which compares the NFC form
        // "é") but before it by bytes (0x65 < 0x66); U+FF61 sorts after U+10000 in UTF-16 order
        // but before it in UTF-8 order. Upper case sorts before lower case, "_" between them.
        let keys = ["f", "e\u{301}", "\u{10000}", "\u{FF61}", "z", "Z", "_", "~", "é1", "A", "a", "ab", ""]
        let value = JSONValue.object(Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, .int(Int64($0))) }))
        let expected = [
            #""":12"#, #""A":9"#, #""Z":5"#, #""_":6"#, #""a":10"#, #""ab":11"#, "\"e\u{301}\":1", #""f":0"#,
            #""z":4"#, #""~":7"#, "\"é1\":8", "\"\u{FF61}\":3", "\"\u{10000}\":2",
        ]
        #expect(value.encodedText == "{" + expected.joined(separator: ",") + "}")
    }

    @Test func nestedEmptyContainers() {
        let value = JSONValue.array([.array([]), .object([:]), .array([.object([:]), .array([.array([])])]),
                                     .object(["": .object([:])])])
        #expect(value.encodedText == #"[[],{},[{},[[]]],{"":{}}]"#)
        #expect(String(decoding: JSONValue.object([:]).pretty(), as: UTF8.self) == "{}\n")
        #expect(String(decoding: JSONValue.array([]).pretty(), as: UTF8.self) == "[]\n")
    }

    @Test(arguments: [
        (JSONValue.null, "null"), (.bool(true), "true"), (.bool(false), "false"), (.int(0), "0"), (.int(-1), "-1"),
        (.int(Int64.max), "9223372036854775807"), (.int(Int64.min), "-9223372036854775808"),
    ])
    func scalars(_ value: JSONValue, _ expected: String) {
        #expect(value.encodedText == expected)
        #expect(String(decoding: value.pretty(), as: UTF8.self) == expected + "\n")
    }

    // MARK: - Strings

    @Test(arguments: [
        ("", #""""#),
        ("plain", #""plain""#),
        ("a\"b", #""a\"b""#),
        ("a\\b", #""a\\b""#),
        ("\\\"", #""\\\"""#),
        ("line\nbreak", #""line\nbreak""#),
        ("\r", #""\r""#),
        ("\t", #""\t""#),
        ("\u{0}", #""\u0000""#),
        ("\u{8}", #""\u0008""#),
        ("\u{C}", #""\u000c""#),
        ("\u{1B}[31m", #""\u001b[31m""#),
        ("\u{1F}", #""\u001f""#),
        ("\u{7F}", #""\u007f""#),
        ("/", #""/""#),
        ("<script>", #""<script>""#),
        ("é€𝄞😀", "\"é€𝄞😀\""),
        ("e\u{301}", "\"e\u{301}\""),
        ("\u{2028}\u{2029}", "\"\u{2028}\u{2029}\""),
        ("\u{80}\u{9F}", "\"\u{80}\u{9F}\""),
    ])
    func stringEscaping(_ input: String, _ expected: String) throws {
        let bytes = JSONValue.string(input).encoded()
        #expect(bytes == Array(expected.utf8))
        // Foundation reads it back to the very same bytes.
        #expect(try ParsedJSON.parse(bytes) == .string(Array(input.utf8)))
        // No raw control character or DEL survives in the output.
        #expect(!bytes.contains { $0 < 0x20 || $0 == 0x7F })
    }

    @Test func everyControlCharacterIsEscaped() throws {
        let controls = String(String.UnicodeScalarView((0x00...0x1F).compactMap(Unicode.Scalar.init) + ["\u{7F}"]))
        let bytes = JSONValue.object([controls: .string(controls)]).encoded()
        #expect(!bytes.contains { $0 < 0x20 || $0 == 0x7F })
        #expect(try ParsedJSON.parse(bytes) == .object([Array(controls.utf8): .string(Array(controls.utf8))]))
    }

    // MARK: - Numbers

    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (9.1, "9.1"), (9.10, "9.1"), (0.05, "0.05"), (0.07, "0.07"), (0.7, "0.7"),
        (-0.5, "-0.5"), (-1.1, "-1.1"), (1.5, "1.5"), (0.1 + 0.2, "0.3"), (100.01, "100.01"),
        // `rounded()` is half away from zero, applied to the binary product `value * 100`:
        // 12.345 * 100 is exactly 1234.5 in binary, 1.005 * 100 is 100.49999999999999.
        (12.345, "12.35"), (2.675, "2.68"), (0.125, "0.13"), (-0.125, "-0.13"), (-0.005, "-0.01"), (1.005, "1"),
        (99.999, "100"), (-0.001, "0"), (0.004, "0"), (0.005, "0.01"),
        (1e12, "1000000000000"), (-1e12, "-1000000000000"),
        (Double.nan, "0"), (Double.infinity, "0"), (-Double.infinity, "0"),
    ])
    func fixedFormatting(_ value: Double, _ expected: String) {
        #expect(Fixed(value).description == expected)
        #expect(JSONValue.fixed(Fixed(value)).encodedText == expected)
    }

    @Test(arguments: [
        (Int64(0), "0"), (1, "0.01"), (10, "0.1"), (11, "0.11"), (100, "1"), (-5, "-0.05"), (-50, "-0.5"),
        (-100, "-1"), (-101, "-1.01"), (123_456, "1234.56"),
        (Int64.max, "92233720368547758.07"), (Int64.min, "-92233720368547758.08"),
    ])
    func fixedFromHundredths(_ hundredths: Int64, _ expected: String) throws {
        let bytes = JSONValue.fixed(Fixed(hundredths: hundredths)).encoded()
        #expect(bytes.text == expected)
        _ = try ParsedJSON.parse(bytes)
    }

    @Test
    func fixedDoesNotTrapOnHugeValues() {
        // Fixed(1e17) computes Int64(1e19): a runtime trap that would take the agent down for one
        // absurd measurement. Any finite, non-trapping result is acceptable here.
        for value in [1e17, -1e17, 1e300, Double.greatestFiniteMagnitude] {
            #expect(!Fixed(value).description.isEmpty)
        }
    }

    // MARK: - pretty() against encoded()

    @Test func prettyLayout() {
        let value = JSONValue.object(["a": .array([.int(1), .int(2)]), "b": .object([:]), "c": .object(["d": .null])])
        let expected = """
            {
              "a": [
                1,
                2
              ],
              "b": {},
              "c": {
                "d": null
              }
            }

            """
        #expect(String(decoding: value.pretty(), as: UTF8.self) == expected)
    }

    @Test func prettyDiffersButParsesToTheSameValue() throws {
        let value = JSONValue.object([
            "list": .array([.string("x y"), .fixed(Fixed(9.1)), .int(-3)]), "nested": .object(["k": .bool(true)]),
            "text": .string("with \"quotes\"\nand a newline"),
        ])
        let compact = value.encoded()
        let pretty = value.pretty()
        #expect(compact != pretty)
        #expect(!compact.contains(0x0A))
        #expect(pretty.last == 0x0A)
        #expect(try ParsedJSON.parse(compact) == ParsedJSON.parse(pretty))
        #expect(try ParsedJSON.parse(compact) == ParsedJSON(expected: value))
    }

    // MARK: - Determinism and validity

    @Test func equalValuesBuiltDifferentlyGiveTheSameBytes() {
        var forward: [String: JSONValue] = [:]
        for index in 0..<500 {
            forward["key\(index)"] = .int(Int64(index))
        }
        var backward: [String: JSONValue] = [:]
        backward.reserveCapacity(4096)
        for index in (0..<500).reversed() {
            backward["key\(index)"] = .int(Int64(index))
        }
        #expect(JSONValue.object(forward).encoded() == JSONValue.object(backward).encoded())
        #expect(JSONValue.object(forward).encoded() == JSONValue.object(forward).encoded())
    }

    @Test(arguments: [UInt64(1), 2, 3, 42, 0xC0FFEE])
    func randomValuesEncodeToValidJSON(seed: UInt64) throws {
        var random = RandomJSON(seed: seed)
        for _ in 0..<200 {
            let value = random.value()
            let compact = value.encoded()
            #expect(compact == value.encoded())
            #expect(!compact.contains { $0 < 0x20 || $0 == 0x7F })
            let parsed = try ParsedJSON.parse(compact)
            #expect(parsed == ParsedJSON(expected: value), "\(compact.text)")
            #expect(try ParsedJSON.parse(value.pretty()) == parsed)
        }
    }

    // MARK: - Building objects

    @Test func membersDropsNilValues() {
        let value = JSONValue.members([("a", .int(1)), ("b", nil), ("c", JSONValue.string(nil)), ("d", .null)])
        #expect(value == .object(["a": .int(1), "d": .null]))
        #expect(JSONValue.strings(["x", "y"]) == .array([.string("x"), .string("y")]))
        #expect(JSONValue.int(Int32?.none) == nil)
        #expect(JSONValue.fixed(9.1) == .fixed(Fixed(hundredths: 910)))
    }
}
