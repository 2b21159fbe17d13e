import Testing
import TestSupport

@testable import OScam

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ProcTableParserTests {
    static let realStat =
        "11434 (cat) R 11432 11432 3948 0 -1 4194304 97 0 0 0 5 6 0 0 20 0 1 0 90132 3133440 362 "
        + "18446744073709551615 94433949212672 94433949232553 140723115671328 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
        + "94433949248560 94433949250176 94434027626496 140723115674317 140723115674337 140723115674337 "
        + "140723115675627 0\n"

    @Test func parsesARealStatLine() throws {
        let stat = try #require(LinuxProcTable.parseStat(Self.realStat))
        #expect(stat == ProcStat(
            pid: 11434, comm: "cat", state: "R", ppid: 11432, utimeTicks: 5, stimeTicks: 6, threads: 1,
            startTicks: 90132, rssPages: 362))
    }

    struct CommCase: Sendable, CustomStringConvertible {
        let comm: String
        var description: String { comm }
    }

    @Test(arguments: ["oscam", "my oscam", ") (", "a) S 1 (b", "((()))", "x)", ")", "", "tab\tand\nnewline"]
        .map(CommCase.init))
    func commWithSpacesAndParentheses(_ testCase: CommCase) throws {
        let line = ProcFixture.statLine(pid: 42, comm: testCase.comm, state: "S", ppid: 7, threads: 8, startTicks: 99)
        let stat = try #require(LinuxProcTable.parseStat(line))
        #expect(stat.comm == testCase.comm)
        #expect(stat.pid == 42)
        #expect(stat.ppid == 7)
        #expect(stat.state == "S")
        #expect(stat.threads == 8)
        #expect(stat.startTicks == 99)
        #expect(stat.rssPages == 2048)
    }

    @Test(arguments: [
        "", "garbage", "42", "42 (oscam", "42 oscam) S 1", "(oscam) S 1 2 3", "x (oscam) S 1 1 1",
        "42 (oscam) S 1 1 1 0 -1", // truncated
        "42 (oscam) SS 1 1 1 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 1 0 1000 1 2",
        "42 (oscam) S x 1 1 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 1 0 1000 1 2",
        "42 (oscam) S 1 1 1 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 1 0 -5 1 2",
        "99999999999 (oscam) S 1 1 1 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 1 0 1000 1 2",
        ") 42 (", "\u{0}\u{0}\u{0}",
    ])
    func hostileStatIsRejected(_ text: String) {
        #expect(LinuxProcTable.parseStat(text) == nil)
    }

    @Test func statTruncatedAtEveryLengthNeverCrashes() {
        let line = Self.realStat
        for length in 0...line.count {
            let prefix = String(line.prefix(length))
            // Whatever a cut-off file yields, it is never a crash nor a different process.
            if let parsed = LinuxProcTable.parseStat(prefix) {
                #expect(parsed.pid == 11434)
                #expect(parsed.comm == "cat")
            }
        }
    }

    struct CmdlineCase: Sendable, CustomStringConvertible {
        let bytes: [UInt8]
        let argv: [String]
        var description: String { argv.description }
    }

    @Test(arguments: [
        CmdlineCase(bytes: [], argv: []),
        CmdlineCase(bytes: Array("oscam\0".utf8), argv: ["oscam"]),
        CmdlineCase(bytes: Array("oscam\0-c\0/etc/oscam\0".utf8), argv: ["oscam", "-c", "/etc/oscam"]),
        CmdlineCase(bytes: Array("oscam\0-c\0/etc/oscam".utf8), argv: ["oscam", "-c", "/etc/oscam"]),
        CmdlineCase(bytes: Array("oscam\0\0x\0".utf8), argv: ["oscam", "", "x"]),
        CmdlineCase(bytes: [0], argv: [""]),
        CmdlineCase(bytes: [0x6f, 0xff, 0xfe, 0], argv: ["o\u{FFFD}\u{FFFD}"]),
        CmdlineCase(bytes: Array("nginx: worker process".utf8), argv: ["nginx: worker process"]),
    ])
    func cmdline(_ testCase: CmdlineCase) {
        #expect(LinuxProcTable.parseCmdline(testCase.bytes) == testCase.argv)
    }

    @Test func realFixtureCmdlines() throws {
        for pid in [13241, 13242] {
            let bytes = try RealFileSystem().readFile(discoveryTestdata("discovery/proc-\(pid)-cmdline.bin"))
            #expect(LinuxProcTable.parseCmdline(bytes) == [
                "/usr/local/bin/oscam", "-b", "-c", "/etc/oscam", "-t", "/tmp/.oscam", "-B", "/run/oscam/oscam.pid",
            ])
        }
    }

    struct CgroupCase: Sendable, CustomStringConvertible {
        let text: String
        let unit: String?
        var description: String { text }
    }

    @Test(arguments: [
        CgroupCase(text: "0::/system.slice/oscam.service\n", unit: "oscam.service"),
        CgroupCase(text: "0::/system.slice/system-oscam.slice/oscam@main.service\n", unit: "oscam@main.service"),
        CgroupCase(text: "0::/system.slice/oscam.service/worker\n", unit: "oscam.service"),
        CgroupCase(
            text: "12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/oscam.service\n",
            unit: "oscam.service"),
        CgroupCase(text: "1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n", unit: "b.service"),
        CgroupCase(text: "0::/user.slice/user-1000.slice/session-3.scope\n", unit: nil),
        CgroupCase(text: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope\n", unit: nil),
        CgroupCase(
            text: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/oscam.service\n", unit: "oscam.service"),
        CgroupCase(text: "0::/\n", unit: nil),
        CgroupCase(text: "9:name=systemd:/\n8:pids:/\n0::/\n", unit: nil),
        CgroupCase(text: "0::/docker/0123abcd\n", unit: nil),
        CgroupCase(text: "0::/system.slice/.service\n", unit: nil),
        CgroupCase(text: "", unit: nil),
        CgroupCase(text: "garbage", unit: nil),
        CgroupCase(text: "0::/weird:path/oscam.service\n", unit: "oscam.service"),
        CgroupCase(text: "\u{0}:\u{0}:\u{0}", unit: nil),
    ])
    func cgroup(_ testCase: CgroupCase) {
        #expect(LinuxProcTable.parseCgroup(testCase.text) == testCase.unit)
    }

    @Test func bootTime() {
        #expect(LinuxProcTable.parseBootTime("cpu 1 2\nbtime 1795950302\nprocesses 3\n") == 1_795_950_302)
        #expect(LinuxProcTable.parseBootTime("cpu 1 2\n") == nil)
        #expect(LinuxProcTable.parseBootTime("btime x\n") == nil)
        #expect(LinuxProcTable.parseBootTime("") == nil)
    }

    @Test func hidepidDetection() {
        let visible = "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        let hidden = "22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw,hidepid=invisible\n"
        let off = "22 27 0:21 / /proc rw,relatime - proc proc rw,hidepid=0\n"
        let other = "30 27 0:21 / /mnt/proc rw - proc proc rw,hidepid=2\n"
        #expect(!LinuxProcTable.parseHidesProcesses(mountinfo: visible, mountPoint: "/proc"))
        #expect(LinuxProcTable.parseHidesProcesses(mountinfo: hidden, mountPoint: "/proc"))
        #expect(!LinuxProcTable.parseHidesProcesses(mountinfo: off, mountPoint: "/proc"))
        #expect(!LinuxProcTable.parseHidesProcesses(mountinfo: visible + other, mountPoint: "/proc"))
        #expect(LinuxProcTable.parseHidesProcesses(mountinfo: visible + other, mountPoint: "/mnt/proc"))
        #expect(!LinuxProcTable.parseHidesProcesses(mountinfo: hidden + visible, mountPoint: "/proc"))
        #expect(!LinuxProcTable.parseHidesProcesses(mountinfo: "garbage\n- - -\n", mountPoint: "/proc"))
    }
}

/// `process` parses `stat` and `cgroup` from their bytes, without `Character` processing when
/// they are ASCII; the result must be the `String` parsers' for any input.
@Suite struct ProcByteParserTests {
    static let statPieces = ["42", " ", "(", ")", "oscam", "a) S 1 (b", "S", "R", "Z", "SS", "1", "-1", "+7",
                             "99999999999", "18446744073709551615", "18446744073709551616", "\t", "\r\n", "\n",
                             "é", "\u{301}", "x", "0", "-0"]
    static let cgroupPieces = ["0", "::", ":", "/", "system.slice", "oscam.service", ".service", "x.scope",
                               "user.slice", "name=systemd", ",", "12", "pids", "\n", "\r\n", "\r", "é", "\u{301}"]

    static func random(_ pieces: [String], _ count: Int, _ rng: inout SeededRandom) -> String {
        (0..<count).map { _ in pieces.randomElement(using: &rng) ?? "" }.joined()
    }

    @Test func statBytesAgreeWithTheStringParser() {
        var rng = SeededRandom(seed: 0x57A7)
        var texts = [ProcTableParserTests.realStat, "", "\u{0}\u{0}"]
        for comm in ["oscam", "my oscam", ") (", "a) S 1 (b", "((()))", "x)", ")", "", "tab\tand\nnewline", "é(\u{301}"] {
            texts.append(ProcFixture.statLine(pid: 42, comm: comm, state: "S", ppid: 7, threads: 8, startTicks: 99))
        }
        for _ in 0..<3000 {
            var fields = [Self.random(Self.statPieces, 3, &rng), "(" + Self.random(Self.statPieces, 2, &rng) + ")"]
            fields += (0..<Int.random(in: 18..<26, using: &rng)).map { _ in Self.random(Self.statPieces, 1, &rng) }
            texts.append(fields.joined(separator: Bool.random(using: &rng) ? " " : "  "))
        }
        for text in texts {
            #expect(LinuxProcTable.parseStat(bytes: Array(text.utf8)) == LinuxProcTable.parseStat(text), "\(text.debugDescription)")
        }
    }

    @Test func cgroupBytesAgreeWithTheStringParser() {
        var rng = SeededRandom(seed: 0xC6)
        for _ in 0..<5000 {
            let text = Self.random(Self.cgroupPieces, Int.random(in: 0..<14, using: &rng), &rng)
            #expect(LinuxProcTable.parseCgroup(bytes: Array(text.utf8)) == LinuxProcTable.parseCgroup(text),
                    "\(text.debugDescription)")
        }
    }
}

@Suite struct ProcTableFixtureTests {
    @Test func readsAFixtureTree() throws {
        let tree = try DiscoveryTempDir()
        defer { tree.remove() }
        let proc = try ProcFixture(in: tree, bootTime: 1_700_000_000)
        let watchdog = try proc.add(
            pid: 13241, ppid: 1, argv: ["/usr/local/bin/oscam", "-b", "-c", "/etc/oscam"], startTicks: 500,
            exe: "/usr/local/bin/oscam", cwd: "/opt/oscam")
        let worker = try proc.add(
            pid: 13242, ppid: 13241, argv: ["/usr/local/bin/oscam", "-b", "-c", "/etc/oscam"], startTicks: 600,
            threads: 8, exe: nil, cwd: nil, cgroup: nil)
        try tree.mkdir("proc/self")
        try tree.write("proc/not-a-pid/stat", "junk")

        let table = LinuxProcTable(root: proc.root)
        #expect(table.pids() == [13241, 13242])
        #expect(table.process(13241) == watchdog)
        #expect(table.process(13242) == worker)
        #expect(table.process(13242)?.exe == nil)
        #expect(table.process(99) == nil)
        #expect(table.bootTime() == 1_700_000_000)
        #expect(table.startTime(of: watchdog) == 1_700_000_000 + 500 / table.clockTicksPerSecond())
        #expect(!table.hidesOtherUsersProcesses())
    }

    @Test func vanishedOrBrokenProcessesAreSkippedNotErrors() throws {
        let tree = try DiscoveryTempDir()
        defer { tree.remove() }
        let proc = try ProcFixture(in: tree)
        try tree.mkdir("proc/500")  // listed, but gone before its files could be read
        try tree.write("proc/501/stat", "501 (osc")  // truncated
        try tree.write("proc/502/stat", "")
        try tree.mkdir("proc/503/stat")  // a directory where a file should be
        try proc.add(pid: 504, ppid: 1, argv: [])  // a kernel thread: no command line
        let table = LinuxProcTable(root: proc.root)
        #expect(table.pids() == [500, 501, 502, 503, 504])
        for pid: Int32 in [500, 501, 502, 503] { #expect(table.process(pid) == nil) }
        #expect(table.process(504)?.argv == [])
    }

    @Test func oscamProcessReadsOnlyOScamProcessesWhole() throws {
        let tree = try DiscoveryTempDir()
        defer { tree.remove() }
        let proc = try ProcFixture(in: tree)
        let oscam = try proc.add(pid: 700, ppid: 1, argv: ["/usr/bin/oscam", "-b"], exe: "/usr/bin/oscam", cwd: "/srv")
        let renamed = try proc.add(pid: 701, ppid: 1, argv: ["softcam"], exe: "/opt/oscam-emu/oscam-emu", cwd: "/opt")
        try proc.add(pid: 702, ppid: 1, argv: ["/usr/sbin/sshd", "-D"], exe: "/usr/sbin/sshd", cwd: "/")
        try proc.add(pid: 703, ppid: 1, argv: [])
        let table = LinuxProcTable(root: proc.root)
        #expect(table.oscamProcess(700) == oscam)
        #expect(table.oscamProcess(701) == renamed)
        #expect(table.oscamProcess(701)?.cwd == "/opt")
        #expect(table.oscamProcess(702) == nil)
        #expect(table.oscamProcess(703) == nil)
        #expect(table.process(702)?.cwd == "/")
    }

    @Test func missingRootIsEmptyNotAnError() {
        let table = LinuxProcTable(root: "/nonexistent/proc-root")
        #expect(table.pids().isEmpty)
        #expect(table.bootTime() == nil)
        #expect(table.process(1) == nil)
    }

    @Test func realProcSeesThisProcess() throws {
        let table = LinuxProcTable()
        let me = getpid()
        let process = try #require(table.process(me))
        #expect(process.pid == me)
        #expect(!process.argv.isEmpty)
        #expect(process.exe != nil)
        #expect(table.bootTime() != nil)
        #expect(table.pids().contains(me))
    }
}
