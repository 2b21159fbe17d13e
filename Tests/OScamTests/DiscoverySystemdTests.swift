import Testing

@testable import OScam

@Suite struct DiscoverySystemdParserTests {
    @Test func directivesWithContinuationAndComments() {
        let text = """
            # a comment \\
            [Unit]
            Description=OScam \\
              softcam
            [Service]
            ExecStart=/usr/bin/oscam \\
                -c /etc/oscam \\
            # comment lines inside a continuation are skipped
            ; so are these
                -t /tmp/x
            Environment=A=1
            novalue
            =orphan
            [Install]
            WantedBy=multi-user.target
            """
        #expect(SystemdDirective.parse(text) == [
            SystemdDirective(section: "Unit", key: "Description", value: "OScam  softcam"),
            SystemdDirective(section: "Service", key: "ExecStart", value: "/usr/bin/oscam  -c /etc/oscam  -t /tmp/x"),
            SystemdDirective(section: "Service", key: "Environment", value: "A=1"),
            SystemdDirective(section: "Install", key: "WantedBy", value: "multi-user.target"),
        ])
    }

    @Test func continuationAtEndOfFileStillCounts() {
        #expect(SystemdDirective.parse("[Service]\nExecStart=/usr/bin/oscam \\\n  -c /e \\") == [
            SystemdDirective(section: "Service", key: "ExecStart", value: "/usr/bin/oscam  -c /e"),
        ])
    }

    @Test func emptyExecStartResetsAndTheLastOneWins() {
        var settings = SystemdServiceSettings()
        settings.apply("[Service]\nExecStart=/usr/bin/oscam -c /a\nExecStart=/usr/bin/oscam -c /b\n")
        #expect(settings.effectiveExecStart == "/usr/bin/oscam -c /b")
        settings.apply("[Service]\nExecStart=\n")
        #expect(settings.effectiveExecStart == nil)
        settings.apply("[Service]\nExecStart=/usr/local/bin/oscam -c /c\n[Unit]\nExecStart=/not/service\n")
        #expect(settings.execStart == ["/usr/local/bin/oscam -c /c"])
    }

    struct WordsCase: Sendable, CustomStringConvertible {
        let line: String
        let words: [String]?
        var description: String { line }
    }

    @Test(arguments: [
        WordsCase(line: "", words: []),
        WordsCase(line: "  a   b\tc ", words: ["a", "b", "c"]),
        WordsCase(line: "\"/opt/my oscam/oscam\" -c '/srv/a b'", words: ["/opt/my oscam/oscam", "-c", "/srv/a b"]),
        WordsCase(line: "--config-dir=\"/srv/a b\"x", words: ["--config-dir=/srv/a bx"]),
        WordsCase(line: #"a\ b c\"d \x41\s\t \101 \\"#, words: ["a b", "c\"d", "A \t", "A", "\\"]),
        WordsCase(line: "'' \"\"", words: ["", ""]),
        WordsCase(line: "\"unterminated", words: nil),
        WordsCase(line: "'x", words: nil),
        WordsCase(line: "trailing\\", words: ["trailing"]),
        WordsCase(line: #"\xZZ \777"#, words: ["xZZ", "777"]),
    ])
    func splitWords(_ testCase: WordsCase) {
        #expect(SystemdExecCommand.splitWords(testCase.line) == testCase.words)
    }

    struct CommandCase: Sendable, CustomStringConvertible {
        let value: String
        let unit: String
        let environment: [String: String]
        let command: SystemdExecCommand?
        var description: String { value }
    }

    @Test(arguments: [
        CommandCase(value: "/usr/bin/oscam -b -c /etc/oscam", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(
                        path: "/usr/bin/oscam", argv: ["/usr/bin/oscam", "-b", "-c", "/etc/oscam"])),
        CommandCase(value: "-/usr/bin/oscam -c /e", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(path: "/usr/bin/oscam", argv: ["/usr/bin/oscam", "-c", "/e"])),
        CommandCase(value: "+!!:/usr/bin/oscam", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(path: "/usr/bin/oscam", argv: ["/usr/bin/oscam"])),
        CommandCase(value: "@/usr/bin/oscam oscam-main -c /x", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(path: "/usr/bin/oscam", argv: ["oscam-main", "-c", "/x"])),
        CommandCase(value: "-@\"/opt/o s/oscam\" name", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(path: "/opt/o s/oscam", argv: ["name"])),
        CommandCase(value: "/usr/bin/oscam -c /etc/oscam/%i -t /tmp/.oscam-%I", unit: "oscam@sat\\x2d1.service",
                    environment: [:],
                    command: SystemdExecCommand(
                        path: "/usr/bin/oscam",
                        argv: ["/usr/bin/oscam", "-c", "/etc/oscam/sat\\x2d1", "-t", "/tmp/.oscam-sat-1"])),
        CommandCase(value: "/usr/bin/oscam -c %f -I %p-%N %% %Q", unit: "oscam@etc-oscam.service", environment: [:],
                    command: SystemdExecCommand(
                        path: "/usr/bin/oscam",
                        argv: ["/usr/bin/oscam", "-c", "/etc/oscam", "-I", "oscam-oscam@etc-oscam", "%", "%Q"])),
        CommandCase(value: "/usr/bin/oscam $OPTS -B ${RUN}/oscam.pid $MISSING", unit: "oscam.service",
                    environment: ["OPTS": "-c /etc/o  -t /tmp/t", "RUN": "/run/oscam"],
                    command: SystemdExecCommand(
                        path: "/usr/bin/oscam",
                        argv: ["/usr/bin/oscam", "-c", "/etc/o", "-t", "/tmp/t", "-B", "/run/oscam/oscam.pid"])),
        CommandCase(value: "/usr/bin/oscam ${UNCLOSED", unit: "oscam.service", environment: [:],
                    command: SystemdExecCommand(path: "/usr/bin/oscam", argv: ["/usr/bin/oscam", "${UNCLOSED"])),
        CommandCase(value: "", unit: "oscam.service", environment: [:], command: nil),
        CommandCase(value: "-@", unit: "oscam.service", environment: [:], command: nil),
        CommandCase(value: "/usr/bin/oscam \"-c /x", unit: "oscam.service", environment: [:], command: nil),
    ])
    func execCommand(_ testCase: CommandCase) {
        let command = SystemdExecCommand.parse(
            testCase.value, specifiers: SystemdSpecifiers(unitName: testCase.unit), environment: testCase.environment)
        #expect(command == testCase.command)
    }

    @Test func environmentFile() {
        let parsed = SystemdServiceSettings.parseEnvironmentFile("""
            # comment
            OSCAM_OPTS="-c /etc/oscam-env -t /tmp/e"
            export RUN=/run/x
            ; other comment
            SINGLE='a b'
            =bad
            broken
            """)
        #expect(parsed == ["OSCAM_OPTS": "-c /etc/oscam-env -t /tmp/e", "RUN": "/run/x", "SINGLE": "a b"])
    }

    @Test func specifierUnescaping() {
        #expect(SystemdSpecifiers.unescape("sat\\x2d1\\x2fx") == "sat-1/x")
        #expect(SystemdSpecifiers.unescape("bad\\x2") == "bad\\x2")
        #expect(SystemdSpecifiers.unescapePath("etc-oscam\\x2dmain") == "etc/oscam-main")
        let plain = SystemdSpecifiers(unitName: "oscam.service")
        #expect(plain.prefix == "oscam")
        #expect(plain.instance == "")
        #expect(plain.expand("%n|%N|%p|%i|%t|%") == "oscam.service|oscam|oscam||/run|%")
    }
}

@Suite struct DiscoverySystemdScanTests {
    /// `etc` and `lib` unit dirs under a temp tree, `etc` first.
    struct Dirs {
        let tree: DiscoveryTempDir
        var etc: String { tree.at("etc/systemd/system") }
        var lib: String { tree.at("lib/systemd/system") }
        var all: [String] { [etc, lib] }

        init() throws {
            tree = try DiscoveryTempDir()
            try tree.mkdir("etc/systemd/system")
            try tree.mkdir("lib/systemd/system")
        }

        func scan() -> SystemdScanResult { SystemdUnitScanner(directories: all).scan() }
    }

    @Test func plainUnitAndNonOScamUnitsIgnored() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        try dirs.tree.write("lib/systemd/system/oscam.service", """
            [Unit]
            Description=OScam
            [Service]
            Type=simple
            ExecStart=/usr/local/bin/oscam -b -r 2 -c /etc/oscam -B /run/oscam.pid
            [Install]
            WantedBy=multi-user.target
            """)
        try dirs.tree.write("lib/systemd/system/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D\n")
        try dirs.tree.write("lib/systemd/system/nothing.service", "[Unit]\nDescription=no exec\n")
        try dirs.tree.write("lib/systemd/system/broken.service", "[Service]\nExecStart=/usr/bin/oscam \"-c\n")
        try dirs.tree.mkdir("lib/systemd/system/weird.service")
        try dirs.tree.symlink(
            "etc/systemd/system/multi-user.target.wants/oscam.service", to: dirs.lib + "/oscam.service")

        let result = dirs.scan()
        #expect(result.units.map(\.name) == ["oscam.service"])
        let unit = try #require(result.units.first)
        #expect(unit.fragmentPath == dirs.lib + "/oscam.service")
        #expect(unit.isEnabled)
        #expect(unit.command.path == "/usr/local/bin/oscam")
        #expect(unit.arguments == OScamArguments(
            configDir: "/etc/oscam", pidFile: "/run/oscam.pid", restartMode: 2, daemon: true))
        #expect(result.problems == [
            DiscoveryProblem(
                path: dirs.lib + "/broken.service", message: "ExecStart of broken.service could not be parsed"),
        ])
    }

    @Test func quotedContinuedAndWorkingDirectory() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        try dirs.tree.write("etc/systemd/system/my-softcam.service", """
            [Service]
            WorkingDirectory=-/srv/oscam
            ExecStart=-"/opt/my oscam/oscam" \\
                --config-dir "conf dir" \\
                -t '/var/tmp/o s'
            """)
        let unit = try #require(dirs.scan().units.first)
        #expect(unit.name == "my-softcam.service")
        #expect(unit.command.path == "/opt/my oscam/oscam")
        #expect(unit.arguments.configDir == "conf dir")
        #expect(unit.arguments.tempDir == "/var/tmp/o s")
        #expect(unit.workingDirectory == "/srv/oscam")
        #expect(unit.isEnabled == false)
    }

    @Test func etcOverridesLibAndDropInsOverrideExecStart() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        try dirs.tree.write("lib/systemd/system/oscam.service", "[Service]\nExecStart=/usr/bin/oscam -c /lib-conf\n")
        try dirs.tree.write("etc/systemd/system/oscam.service", "[Service]\nExecStart=/usr/bin/oscam -c /etc-conf\n")
        #expect(dirs.scan().units.first?.arguments.configDir == "/etc-conf")

        // A drop-in resets ExecStart and sets a new one; a same-named drop-in in /lib is hidden by /etc's.
        try dirs.tree.write(
            "lib/systemd/system/oscam.service.d/10-override.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/oscam -c /lib-dropin\n")
        try dirs.tree.write(
            "etc/systemd/system/oscam.service.d/10-override.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/oscam -c /etc-dropin\n")
        try dirs.tree.write("lib/systemd/system/oscam.service.d/20-env.conf", "[Service]\nEnvironment=X=1\n")
        try dirs.tree.write(
            "etc/systemd/system/oscam.service.d/ignored.txt", "[Service]\nExecStart=/usr/bin/oscam -c /no\n")
        let unit = try #require(dirs.scan().units.first)
        #expect(unit.fragmentPath == dirs.etc + "/oscam.service")
        #expect(unit.arguments.configDir == "/etc-dropin")
        #expect(unit.dropInPaths == [
            dirs.etc + "/oscam.service.d/10-override.conf", dirs.lib + "/oscam.service.d/20-env.conf",
        ])

        // A drop-in that only resets ExecStart leaves nothing to run.
        try dirs.tree.write("etc/systemd/system/oscam.service.d/30-reset.conf", "[Service]\nExecStart=\n")
        #expect(dirs.scan().units.isEmpty)
    }

    @Test func templateWithEnabledInstances() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        let template = try dirs.tree.write("lib/systemd/system/oscam@.service", """
            [Service]
            ExecStart=/usr/bin/oscam -b -c /etc/oscam/%i -t /tmp/.oscam-%i
            """)
        try dirs.tree.symlink("etc/systemd/system/multi-user.target.wants/oscam@main.service", to: template)
        try dirs.tree.symlink("etc/systemd/system/multi-user.target.wants/oscam@backup.service", to: template)
        try dirs.tree.write("etc/systemd/system/oscam@backup.service.d/dir.conf", """
            [Service]
            ExecStart=
            ExecStart=/usr/bin/oscam -b -c /srv/%I
            """)
        try dirs.tree.symlink("etc/systemd/system/multi-user.target.wants/other@x.service", to: "/lib/other@.service")

        let result = dirs.scan()
        #expect(result.templates.map(\.name) == ["oscam@.service"])
        #expect(result.units.map(\.name) == ["oscam@backup.service", "oscam@main.service"])
        let backup = try #require(result.units.first)
        let main = try #require(result.units.last)
        #expect(main.fragmentPath == template)
        #expect(main.isEnabled)
        #expect(main.arguments.configDir == "/etc/oscam/main")
        #expect(main.arguments.tempDir == "/tmp/.oscam-main")
        #expect(main.provenanceDetail == "\(template) (oscam@main.service)")
        #expect(backup.arguments.configDir == "/srv/backup")
        #expect(backup.dropInPaths == [dirs.etc + "/oscam@backup.service.d/dir.conf"])
    }

    @Test func templateWithoutInstancesIsOnlyRecorded() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        try dirs.tree.write("lib/systemd/system/oscam@.service", "[Service]\nExecStart=/usr/bin/oscam -c /etc/%i\n")
        let result = dirs.scan()
        #expect(result.units.isEmpty)
        #expect(result.templates.first?.command.argv == ["/usr/bin/oscam", "-c", "/etc/"])
    }

    @Test func maskedAndAliasedUnitsAreSkipped() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        try dirs.tree.write("lib/systemd/system/oscam.service", "[Service]\nExecStart=/usr/bin/oscam -c /a\n")
        try dirs.tree.write("lib/systemd/system/oscam-b.service", "[Service]\nExecStart=/usr/bin/oscam -c /b\n")
        try dirs.tree.symlink("etc/systemd/system/oscam.service", to: "/dev/null")
        try dirs.tree.symlink("etc/systemd/system/softcam.service", to: dirs.lib + "/oscam-b.service")
        #expect(dirs.scan().units.map(\.name) == ["oscam-b.service"])
    }

    @Test func environmentFileFeedsExecStart() throws {
        let dirs = try Dirs()
        defer { dirs.tree.remove() }
        let envFile = try dirs.tree.write("default/oscam", "OSCAM_OPTS=\"-c /etc/oscam-env -t /tmp/e\"\n")
        try dirs.tree.write("lib/systemd/system/oscam.service", """
            [Service]
            EnvironmentFile=-\(envFile)
            EnvironmentFile=-/nonexistent/optional
            EnvironmentFile=/nonexistent/required
            Environment="PIDDIR=/run/oscam"
            ExecStart=/usr/bin/oscam $OSCAM_OPTS -B ${PIDDIR}/oscam.pid
            """)
        let result = dirs.scan()
        let unit = try #require(result.units.first)
        #expect(unit.arguments == OScamArguments(
            configDir: "/etc/oscam-env", tempDir: "/tmp/e", pidFile: "/run/oscam/oscam.pid"))
        #expect(result.problems == [DiscoveryProblem(path: "/nonexistent/required", message: "cannot read: not found")])
    }

    @Test func missingDirectoriesAreFine() {
        let result = SystemdUnitScanner(directories: ["/nonexistent/a", "/nonexistent/b"]).scan()
        #expect(result == SystemdScanResult())
    }
}
