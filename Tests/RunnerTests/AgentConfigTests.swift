import Testing
import TestSupport
@testable import Runner

@Suite struct AgentConfigTests {
    @Test func relativePathsResolveAgainstTheFilesDirectory() {
        let text = """
            # comment
            [panel]
            url = https://panel.example.com/   # trailing comment
            ca_file = ca.pem
            [agent]
            state_dir = ../state
            log_level = debug
            [discovery]
            auto = no
            config_dirs = oscam/a, /etc/oscam
            systemd_dirs =
            """
        let (config, problems) = AgentConfig.parse(text, path: "/etc/myosicam/agent.conf")
        #expect(problems.isEmpty)
        #expect(config.panelURL == "https://panel.example.com")
        #expect(config.caFile == "/etc/myosicam/ca.pem")
        #expect(config.stateDir == "/etc/state")
        #expect(config.configDirs == ["/etc/myosicam/oscam/a", "/etc/oscam"])
        #expect(config.systemdDirs.isEmpty && !config.autoDiscovery && config.logLevel == "debug")
    }

    @Test func serviceProgramsMustBeAbsoluteAndPlain() {
        let good = AgentConfig.parse("[service]\nsudo = /usr/local/bin/sudo\nsystemctl = /bin/systemctl\n", path: "a.conf")
        #expect(good.problems.isEmpty && good.config.sudo == "/usr/local/bin/sudo" && good.config.systemctl == "/bin/systemctl")
        #expect(AgentConfig().sudo == "/usr/bin/sudo" && AgentConfig().systemctl == "/usr/bin/systemctl")
        for bad in ["systemctl", "/usr/bin/systemctl --user", "/usr/../bin/sh", "./systemctl", ""] {
            let parsed = AgentConfig.parse("[service]\nsystemctl = \(bad)\n", path: "a.conf")
            #expect(parsed.problems.map(\.line) == [2], "accepted \(bad)")
        }
    }

    @Test func theQuietPollDelayIsSecondsWithinADay() {
        #expect(AgentConfig.parse("", path: "/a.conf").config.commandPollIdleAfter == 600)
        let set = AgentConfig.parse("[panel]\ncommand_poll_idle_after = 0\n", path: "/a.conf")
        #expect(set.problems.isEmpty && set.config.commandPollIdleAfter == 0)
        for bad in ["-1", "86401", "10m", ""] {
            let parsed = AgentConfig.parse("[panel]\ncommand_poll_idle_after = \(bad)\n", path: "/a.conf")
            #expect(parsed.problems.map(\.line) == [2], "accepted \(bad)")
        }
    }

    @Test func everyProblemNamesItsLineOnce() {
        let text = """
            [panel]
            url = http://plain.example.com
            colour = blue
            [paint]
            foo = 1
            bar = 2
            [agent]
            log_level = loud
            log_level = info
            orphan
            """
        let (_, problems) = AgentConfig.parse(text, path: "/x/agent.conf")
        #expect(problems.map(\.line) == [2, 3, 4, 8, 9, 10])
        #expect(problems.allSatisfy { $0.description.hasPrefix("/x/agent.conf:") })
    }

    @Test func unknownCollectorNamesTheirLine() {
        let (names, problems) = Registry.enabled(fileText: "# keep\nhost\n\nwebif # why\nbogus\n", path: "/c.conf")
        #expect(names == ["host", "webif"])
        #expect(problems.map(\.description) == [
            "/c.conf:5: unknown collector 'bogus'; known: host, resources, instances, accounts, readers, webif, runtime",
        ])
        #expect(Registry.enabled(fileText: nil, path: "/c.conf").names == Registry.names)
    }

    @Test(arguments: [["inspect", "--pretty"], ["check-config", "--json"], ["--dry-run", "--agent-only"],
                      ["--dry-run", "inspect"], ["--bogus"], []])
    func misusedFlagsAreUsageErrors(_ arguments: [String]) {
        let capture = Capture()
        #expect(Agent.main(arguments: arguments, output: capture.output) == Exit.usage)
    }
}
