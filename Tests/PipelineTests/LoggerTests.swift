import Pipeline
import TestSupport
import Testing

@Suite struct LoggerTests {
    /// The single line one event produces, or nil when it was filtered out.
    func line(_ message: String, _ fields: [(String, String)] = [], level: Logger.Level = .info) -> String? {
        let output = MemoryLogOutput()
        Logger(level: .debug, output: output).log(level, message, fields)
        #expect(output.lines.count == 1)
        return output.lines.first
    }

    // MARK: - Format

    @Test func lineFormat() {
        #expect(line("collector failed", [("collector.name", "webif"), ("instance.id", "osc_1"), ("elapsed_ms", "12")])
                == #"level=info msg="collector failed" collector.name=webif instance.id=osc_1 elapsed_ms=12"#)
        #expect(line("started") == "level=info msg=started")
        #expect(line("x", level: .warning) == "level=warning msg=x")
        #expect(line("x", level: .error) == "level=error msg=x")
        #expect(line("x", level: .debug) == "level=debug msg=x")
    }

    @Test func fieldsKeepTheirOrderAndDuplicates() {
        #expect(line("m", [("b", "1"), ("a", "2"), ("b", "3")]) == "level=info msg=m b=1 a=2 b=3")
    }

    @Test(arguments: [
        ("plain", "plain"),
        ("/etc/oscam/oscam.conf", "/etc/oscam/oscam.conf"),
        ("é€😀", "é€😀"),
        ("", #""""#),
        ("two words", #""two words""#),
        ("a=b", #""a=b""#),
        (#"say "hi""#, #""say \"hi\"""#),
        (#"back\slash"#, #""back\\slash""#),
        ("line1\nline2", #""line1\nline2""#),
        ("cr\r", #""cr\r""#),
        ("tab\there", #""tab\there""#),
        ("\u{0}", #""\x00""#),
        ("\u{1B}[31mred", #""\x1b[31mred""#),
        ("\u{1F}", #""\x1f""#),
        ("\u{7F}", #""\x7f""#),
        ("naïve café", #""naïve café""#),
    ])
    func valueQuoting(_ value: String, _ expected: String) {
        #expect(line("m", [("k", value)]) == "level=info msg=m k=\(expected)")
        #expect(line(value) == "level=info msg=\(expected)")
    }

    @Test func aHostileValueCannotForgeALine() throws {
        let hostile = "x\" level=error msg=\"forged\nlevel=error msg=forged\r\n"
        let text = try #require(line("m", [("file.name", hostile)]))
        #expect(text == #"level=info msg=m file.name="x\" level=error msg=\"forged\nlevel=error msg=forged\r\n""#)
        #expect(!text.contains("\n"))
        #expect(!text.contains("\r"))
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func randomValuesNeverBreakALine(seed: UInt64) throws {
        var random = RandomJSON(seed: seed)
        for _ in 0..<300 {
            let value = random.string(maxLength: 20)
            let text = try #require(line(random.string(maxLength: 20), [("k", value)]))
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(text.debugDescription)")
            // Bytes, not characters: a leading combining mark joins "=" into one character.
            #expect(text.utf8.starts(with: "level=info msg=".utf8))
        }
    }

    // MARK: - Levels

    @Test(arguments: Logger.Level.allCases)
    func levelFiltering(threshold: Logger.Level) {
        let output = MemoryLogOutput()
        let logger = Logger(level: threshold, output: output)
        logger.debug("d")
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        let expected = Logger.Level.allCases.filter { $0 >= threshold }
            .map { "level=\($0.name) msg=\($0.name.prefix(1))" }
        #expect(output.lines == expected)
        #expect(logger.level == threshold)
    }

    @Test func defaultLevelIsInfo() {
        #expect(Logger().level == .info)
        #expect(Logger.Level.debug < .info && Logger.Level.info < .warning && Logger.Level.warning < .error)
    }

    @Test(arguments: [
        ("debug", Logger.Level.debug), ("info", .info), ("warning", .warning), ("warn", .warning), ("error", .error),
        ("INFO", nil), ("Warn", nil), ("", nil), ("fatal", nil), (" info", nil), ("err", nil),
    ])
    func levelFromName(_ name: String, _ expected: Logger.Level?) {
        #expect(Logger.Level(name: name) == expected)
    }

    @Test(arguments: Logger.Level.allCases)
    func levelNameRoundTrips(_ level: Logger.Level) {
        #expect(Logger.Level(name: level.name) == level)
    }

    @Test func memoryOutputIsSafeFromManyThreads() async {
        let output = MemoryLogOutput()
        let logger = Logger(level: .info, output: output)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<100 {
                        logger.info("m", [("task", "\(task)"), ("index", "\(index)")])
                    }
                }
            }
        }
        #expect(output.lines.count == 800)
    }
}
