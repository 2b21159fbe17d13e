import FoundationEssentials
import Testing

@testable import OScam

#if canImport(Glibc)
import Glibc
#endif

/// Golden tests: `testdata/version/<case>/oscam.version` parses into `expected.txt`.
/// `UPDATE_GOLDEN=1 swift test --filter VersionFile` rewrites the expectations and fails the run.
@Suite struct VersionFileGoldenTests {
    static let cases = [
        "current", "after-restart", "svn-era", "svn-2024", "very-old-uxstarttime", "old-lowercase-crlf", "build-info",
        "placeholder-commit", "garbage", "empty",
    ]

    @Test(arguments: cases)
    func golden(_ name: String) throws {
        let fileSystem = RealFileSystem()
        let input = try fileSystem.readText(discoveryTestdata("version/\(name)/oscam.version"))
        let rendered = Self.render(OScamVersionFile.parse(input))
        let expectedPath = discoveryTestdata("version/\(name)/expected.txt")
        if getenv("UPDATE_GOLDEN") != nil {
            _ = FileManager.default.createFile(atPath: expectedPath, contents: Data(rendered.utf8))
            Issue.record("UPDATE_GOLDEN: rewrote \(expectedPath); run again without it")
            return
        }
        let expected = try fileSystem.readText(expectedPath)
        #expect(rendered == expected)
    }

    /// One `key: value` line per field, features sorted; `-` for absent.
    static func render(_ file: OScamVersionFile) -> String {
        func show<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "-" }
        var lines = [
            "unixStartTime: \(show(file.unixStartTime))",
            "startTime: \(show(file.startTime))",
            "buildDate: \(show(file.buildDate))",
            "version: \(show(file.version))",
            "versionNumber: \(show(file.versionNumber))",
            "revision: \(show(file.revision))",
            "commit: \(show(file.commit))",
            "isPlaceholderCommit: \(file.isPlaceholderCommit)",
            "compiler: \(show(file.compiler))",
            "boxType: \(show(file.boxType))",
            "pid: \(show(file.pid))",
            "tempDir: \(show(file.tempDir))",
            "configDir: \(show(file.configDir))",
            "webifPort: \(show(file.webifPort))",
        ]
        for name in file.features.keys.sorted() {
            lines.append("feature \(name): \(file.features[name] == true ? "yes" : "no")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

@Suite struct VersionFileParseTests {
    @Test func realFixtureFields() throws {
        let text = try RealFileSystem().readText(discoveryTestdata("version/current/oscam.version"))
        let file = OScamVersionFile.parse(text)
        #expect(file.unixStartTime == 1_795_945_629)
        #expect(file.versionNumber == "2.26.05-11961")
        #expect(file.revision == 11961)
        #expect(file.commit == "5b6fa7ad")
        #expect(!file.isPlaceholderCommit)
        #expect(file.pid == 13241)
        #expect(file.tempDir == "/tmp/.oscam")
        #expect(file.configDir == "/etc/oscam/")
        #expect(file.webifPort == 18888)
        #expect(file.boxType == "generic (generic)")
        #expect(file.features["Web interface support"] == true)
        #expect(file.features["SSL support"] == false)
        #expect(file.features["cardreader_stinger"] == false)
        #expect(file.features["Reader support"] == true)
        #expect(file.features.count > 60)
    }

    struct VersionCase: Sendable, CustomStringConvertible {
        let raw: String
        let number: String?
        let revision: Int?
        let commit: String?
        var description: String { raw }
    }

    @Test(arguments: [
        VersionCase(raw: "2.26.05-11961@5b6fa7ad", number: "2.26.05-11961", revision: 11961, commit: "5b6fa7ad"),
        VersionCase(raw: "2.26.05-11960@a2b4c6d8", number: "2.26.05-11960", revision: 11960, commit: "a2b4c6d8"),
        VersionCase(raw: "oscam-1.20_svn-r11700", number: "1.20_svn-r11700", revision: 11700, commit: nil),
        VersionCase(
            raw: "oscam-1.20-unstable_svn-r11400", number: "1.20-unstable_svn-r11400", revision: 11400, commit: nil),
        VersionCase(raw: "oscam-1.30-r11772@abcd1234", number: "1.30-r11772", revision: 11772, commit: "abcd1234"),
        VersionCase(raw: "1.00  Rev. 4641", number: "1.00-r4641", revision: 4641, commit: nil),
        VersionCase(
            raw: "1.00-unstable_svn  Rev. 4641", number: "1.00-unstable_svn-r4641", revision: 4641, commit: nil),
        VersionCase(raw: "0.99.4  Rev. ", number: "0.99.4", revision: nil, commit: nil),
        VersionCase(
            raw: "2.24.01-11884-802@1234abcd", number: "2.24.01-11884-802", revision: 11884, commit: "1234abcd"),
        VersionCase(raw: "2.26.05-11961@not-hex!", number: "2.26.05-11961", revision: 11961, commit: nil),
        VersionCase(raw: "@", number: nil, revision: nil, commit: nil),
        VersionCase(raw: "", number: nil, revision: nil, commit: nil),
        VersionCase(raw: "oscam-", number: nil, revision: nil, commit: nil),
    ])
    func versionStrings(_ testCase: VersionCase) {
        let parsed = OScamVersionFile.parseVersion(testCase.raw)
        #expect(parsed.number == testCase.number)
        #expect(parsed.revision == testCase.revision)
        #expect(parsed.commit == testCase.commit)
    }

    @Test func placeholderCommitIsKept() {
        let file = OScamVersionFile.parse("Version:        2.26.05-11960@a2b4c6d8\n")
        #expect(file.commit == "a2b4c6d8")
        #expect(file.isPlaceholderCommit)
    }

    @Test func keysAreCaseInsensitiveAndSplitAtFirstColon() {
        let file = OScamVersionFile.parse("""
            UNIX STARTTIME: 42
            configdir: /srv/oscam
            GBox tmp_dir:   not defined using: /tmp/.oscam
            Starttime:      29.11.2026 09:51:57
            """)
        #expect(file.unixStartTime == 42)
        #expect(file.configDir == "/srv/oscam/")
        #expect(file.startTime == "29.11.2026 09:51:57")
    }

    @Test func headerKeysAfterTheBlankLineAreFeatures() {
        let file = OScamVersionFile.parse("PID: 5\n\nPID: yes\nWebifPort: no\n")
        #expect(file.pid == 5)
        #expect(file.webifPort == nil)
        #expect(file.features == ["PID": true, "WebifPort": false])
    }

    @Test(arguments: ["", "\n\n\n", ":", "::::\n:\n", "\u{0}\u{1}\u{2}", "PID:\nWebifPort:\nUnix Starttime:\n",
                      "PID: 99999999999\nWebifPort: -1\n"])
    func hostileInputNeverCrashes(_ text: String) {
        let file = OScamVersionFile.parse(text)
        #expect(file.pid == nil)
        #expect(file.configDir == nil)
    }

    @Test func hugeLinesNeverCrash() {
        let long = String(repeating: "x", count: 100_000)
        let file = OScamVersionFile.parse(long + "\nPID: 3\n\n" + long + "  yes\n" + long + ":\n")
        #expect(file.pid == 3)
        #expect(file.features == [long: true])
    }
}
