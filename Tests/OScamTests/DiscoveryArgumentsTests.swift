import Testing

@testable import OScam

@Suite struct DiscoveryArgumentsTests {
    struct Case: Sendable, CustomStringConvertible {
        let argv: [String]
        let expected: OScamArguments
        var description: String { argv.joined(separator: " ") }
        init(_ argv: [String], _ expected: OScamArguments) {
            self.argv = argv
            self.expected = expected
        }
    }

    static let cases: [Case] = [
        Case([], OScamArguments()),
        Case(["oscam"], OScamArguments()),
        Case(
            ["/usr/local/bin/oscam", "-b", "-c", "/etc/oscam", "-t", "/tmp/.oscam", "-B", "/run/oscam/oscam.pid"],
            OScamArguments(
                configDir: "/etc/oscam", tempDir: "/tmp/.oscam", pidFile: "/run/oscam/oscam.pid", daemon: true)),
        Case(["oscam", "-c/etc/oscam", "-t/var/tmp"], OScamArguments(configDir: "/etc/oscam", tempDir: "/var/tmp")),
        Case(["oscam", "--config-dir=/srv/a", "--temp-dir", "/srv/t"],
             OScamArguments(configDir: "/srv/a", tempDir: "/srv/t")),
        Case(["oscam", "--config-dir", "/srv/a", "--pidfile=/run/p"],
             OScamArguments(configDir: "/srv/a", pidFile: "/run/p")),
        // Later options override earlier ones.
        Case(["oscam", "-c", "/a", "--config-dir=/b", "-c/c"], OScamArguments(configDir: "/c")),
        // Clustered flags; the option taking a value ends the cluster.
        Case(["oscam", "-bc", "/etc/oscam"], OScamArguments(configDir: "/etc/oscam", daemon: true)),
        Case(["oscam", "-bSsc/etc/oscam"], OScamArguments(configDir: "/etc/oscam", daemon: true)),
        Case(["oscam", "-cb"], OScamArguments(configDir: "b")),
        // A value may start with a dash.
        Case(["oscam", "-c", "-b"], OScamArguments(configDir: "-b")),
        // Options with values of their own do not swallow ours.
        Case(["oscam", "-d", "128", "-p", "64", "-w", "0", "-I", "x", "-g", "1", "-c", "/e"],
             OScamArguments(configDir: "/e")),
        Case(["oscam", "-d128", "-c", "/e"], OScamArguments(configDir: "/e")),
        // Restart mode, read with atoi.
        Case(["oscam", "-r", "0"], OScamArguments(restartMode: 0)),
        Case(["oscam", "-r2"], OScamArguments(restartMode: 2)),
        Case(["oscam", "--restart=1"], OScamArguments(restartMode: 1)),
        Case(["oscam", "-r", "x"], OScamArguments(restartMode: 0)),
        Case(["oscam", "-r", " 2abc"], OScamArguments(restartMode: 2)),
        Case(["oscam", "--daemon"], OScamArguments(daemon: true)),
        // Unambiguous prefixes of long options, as getopt_long accepts.
        Case(["oscam", "--config=/p", "--temp", "/t", "--dae"],
             OScamArguments(configDir: "/p", tempDir: "/t", daemon: true)),
        // Ambiguous or unknown long options are ignored; `--daemon=x` is an error and ignored too.
        Case(["oscam", "--c=/x", "--bogus", "--daemon=x"], OScamArguments()),
        // Non-options are skipped (GNU permutation); `--` ends the options.
        Case(["oscam", "junk", "-c", "/a", "more", "-b"], OScamArguments(configDir: "/a", daemon: true)),
        Case(["oscam", "-c", "/a", "--", "-c", "/b"], OScamArguments(configDir: "/a")),
        Case(["oscam", "-", "-c", "/a"], OScamArguments(configDir: "/a")),
        // Unknown short options (e.g. STAPI's -f) and `-u` are ignored.
        Case(["oscam", "-f", "-u", "-x", "-c", "/a"], OScamArguments(configDir: "/a")),
        // A value missing at the end is ignored.
        Case(["oscam", "-c"], OScamArguments()),
        Case(["oscam", "--config-dir"], OScamArguments()),
        // An interpreter in front: the script path is a non-option.
        Case(["python3", "/opt/standin/oscam", "-b", "-c", "/etc/oscam", "-B", "/run/p"],
             OScamArguments(configDir: "/etc/oscam", pidFile: "/run/p", daemon: true)),
        Case(["/usr/bin/python3", "-u", "/opt/oscam", "--config-dir=/etc/x"], OScamArguments(configDir: "/etc/x")),
        Case(["oscam", "-c", ""], OScamArguments(configDir: "")),
    ]

    @Test(arguments: cases)
    func parse(_ testCase: Case) {
        #expect(OScamArguments.parse(testCase.argv) == testCase.expected)
    }

    @Test func watchdogDependsOnRestartMode() {
        #expect(OScamArguments().hasWatchdog)
        #expect(OScamArguments(restartMode: 2).hasWatchdog)
        #expect(!OScamArguments(restartMode: 0).hasWatchdog)
    }

    @Test func atoiSaturates() {
        #expect(OScamArguments.atoi("99999999999999999999999") == Int(Int32.max))
        #expect(OScamArguments.atoi("-7x") == -7)
        #expect(OScamArguments.atoi("") == 0)
        #expect(OScamArguments.atoi("٣") == 0)
    }
}
