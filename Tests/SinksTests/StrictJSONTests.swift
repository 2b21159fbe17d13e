import Pipeline
import Sinks
import Testing
import TestSupport

@Suite struct StrictJSONTests {
    @Test func parsesWhatThePanelSends() throws {
        let value = try StrictJSON.parse(Array(
            #" {"commands": [{"id": "cmd_1", "n": -3, "x": 1.25, "ok": true, "z": null, "s": "a\u00e9\n\"\/"}]} "#.utf8))
        #expect(value == .object(["commands": .array([.object([
            "id": .string("cmd_1"), "n": .int(-3), "x": .fixed(Fixed(1.25)), "ok": .bool(true), "z": .null,
            "s": .string("aé\n\"/"),
        ])])]))
        #expect(try StrictJSON.parse(Array(#""\ud83d\ude00""#.utf8)) == .string("😀"))
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, "NaN", "Infinity", "-Infinity", "1e3", "01", "1.", ".5", "[1,]", "{\"a\":1,}", "{a:1}",
        "\"\u{1}\"", "\"abc", "[", "{}x", "tru", "\"\\x\"", #""\ud800""#, #""\udc00""#, "", "   ", "'a'",
        "99999999999999999999",
    ])
    func refusesWhatIsNotStrictJSON(_ text: String) {
        #expect(throws: StrictJSON.Error.self) { try StrictJSON.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        #expect(throws: StrictJSON.Error.self) { try StrictJSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: StrictJSON.Error.self) { try StrictJSON.parse(Array(deep.utf8)) }
    }

    @Test func roundTripsTheAgentsOwnEncoding() throws {
        let value = JSONValue.object(["k": .array([.string("\u{7f}\u{1f}ü\"\\"), .int(Int64.min), .fixed(Fixed(-0.05))])])
        #expect(try StrictJSON.parse(value.encoded()) == value)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SeededRandom(seed: 7)
        let alphabet = Array(#"{}[]",:-0123456789.eEtrufalsn\u "#.utf8) + [0xFF, 0x00, 0xC3]
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? 0 }
            _ = try? StrictJSON.parse(bytes)
        }
    }
}
