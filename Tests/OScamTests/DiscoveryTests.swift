import Testing
import TestSupport

@testable import OScam

#if canImport(Glibc)
import Glibc
#endif

/// A fixture machine: a proc tree with an init process, a config dir with `oscam.conf`, a temp
/// dir and a run dir, all under one real temp directory.
struct DiscoveryMachine {
    let tree: DiscoveryTempDir
    let proc: ProcFixture
    /// The config dir as given on command lines (no trailing slash).
    let config: String
    let temp: String
    let run: String

    init() throws {
        tree = try DiscoveryTempDir()
        proc = try ProcFixture(in: tree)
        config = try tree.mkdir("etc/oscam")
        try tree.write("etc/oscam/oscam.conf", "[global]\nnice = -1\n")
        temp = try tree.mkdir("tmp/.oscam")
        run = try tree.mkdir("run")
        try proc.add(pid: 1, ppid: 0, comm: "systemd", argv: ["/sbin/init"], cgroup: "0::/init.scope")
    }

    /// The normalised config dir, as instances report it.
    var configDir: String { config + "/" }

    /// The standard OScam command line for this machine.
    func argv(binary: String = "/usr/local/bin/oscam", extra: [String] = []) -> [String] {
        [binary, "-b", "-c", config, "-t", temp, "-B", run + "/oscam.pid"] + extra
    }

    /// Adds a watchdog and its worker, both started from `argv()`.
    func addPair(watchdog: Int32 = 13241, worker: Int32 = 13242, argv: [String]? = nil) throws {
        let line = argv ?? self.argv()
        try proc.add(pid: watchdog, ppid: 1, argv: line, startTicks: 900, exe: "/usr/local/bin/oscam")
        try proc.add(pid: worker, ppid: watchdog, argv: line, startTicks: 1000, threads: 8, exe: "/usr/local/bin/oscam")
    }

    func writeVersionFile(
        pid: Int32, configDir: String? = nil, in dir: String? = nil, startTime: Int64 = 1_795_900_010
    ) throws {
        let directory = dir ?? temp
        try tree.write(
            String(directory.dropFirst(tree.path.count + 1)) + "/oscam.version",
            versionFileText(pid: pid, configDir: configDir ?? self.configDir, tempDir: directory, startTime: startTime))
    }

    func writePIDFile(_ pid: Int32, at path: String? = nil) throws {
        let full = path ?? run + "/oscam.pid"
        try tree.write(String(full.dropFirst(tree.path.count + 1)), "\(pid)\n")
    }

    func discovery(
        auto: Bool = true, systemdDirs: [String] = [], versionDirs: [String] = [], extraConfigDirs: [String] = [],
        defaultConfigDirs: [String] = [], pidfileSetting: @escaping @Sendable (String) -> String? = { _ in nil }
    ) -> Discovery {
        fixtureDiscovery(
            proc: proc, auto: auto, systemdDirs: systemdDirs, versionDirs: versionDirs,
            extraConfigDirs: extraConfigDirs, defaultConfigDirs: defaultConfigDirs, pidfileSetting: pidfileSetting)
    }
}

@Suite struct DiscoveryTests {
    @Test func oneInstanceFoundByProcessVersionFileAndUnit() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair()
        try machine.writeVersionFile(pid: 13241)
        try machine.writePIDFile(13242)
        let units = try machine.tree.mkdir("systemd")
        try machine.tree.write(
            "systemd/oscam.service", "[Service]\nExecStart=" + machine.argv().joined(separator: " ") + "\n")

        let result = machine.discovery(systemdDirs: [units]).discover()
        #expect(result.problems == [])
        #expect(result.instances.count == 1)
        let instance = try #require(result.instances.first)
        #expect(instance.provenance == [
            Provenance(source: .process, detail: "pid 13242"),
            Provenance(source: .versionFile, detail: machine.temp + "/oscam.version"),
            Provenance(source: .systemdUnit, detail: units + "/oscam.service"),
        ])
        #expect(instance.configDir == machine.configDir)
        #expect(instance.id == DiscoveredInstance.id(forConfigDir: machine.configDir))
        #expect(instance.name == "oscam")
        #expect(instance.unit == "oscam.service")
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.watchdogPID == 13241)
        #expect(instance.tempDir == machine.temp)
        #expect(instance.pidFile == machine.run + "/oscam.pid")
        #expect(instance.binary == "/usr/local/bin/oscam")
        #expect(instance.versionFile?.webifPort == 8888)
        #expect(instance.versionFilePath == machine.temp + "/oscam.version")
    }

    @Test func realFixtureCommandLinesMakeAWatchdogAndAWorker() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let fileSystem = RealFileSystem()
        for pid: Int32 in [13241, 13242] {
            let bytes = try fileSystem.readFile(discoveryTestdata("discovery/proc-\(pid)-cmdline.bin"))
            try machine.proc.add(
                pid: pid, ppid: pid == 13241 ? 1 : 13241, argv: LinuxProcTable.parseCmdline(bytes),
                exe: "/usr/local/bin/oscam", cwd: "/opt/oscam")
        }
        let result = machine.discovery().discover()
        let instance = try #require(result.instances.first)
        #expect(result.instances.count == 1)
        #expect(instance.configDir == "/etc/oscam/")
        #expect(instance.tempDir == "/tmp/.oscam")
        #expect(instance.pidFile == "/run/oscam/oscam.pid")
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.watchdogPID == 13241)
    }

    @Test func staleVersionFileWithDeadPIDIsStopped() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.writeVersionFile(pid: 4242)
        try machine.tree.write("tmp/.oscam/oscam.pid", "4243\n")

        let result = machine.discovery(versionDirs: [machine.temp]).discover()
        let instance = try #require(result.instances.first)
        #expect(instance.state == .stopped)
        #expect(instance.workerPID == nil)
        #expect(instance.watchdogPID == nil)
        #expect(instance.provenance == [Provenance(source: .versionFile, detail: machine.temp + "/oscam.version")])
        #expect(instance.pidFile == machine.temp + "/oscam.pid")
        #expect(instance.versionFile?.pid == 4242)
        #expect(result.problems.map(\.path) == [machine.temp + "/oscam.pid"])
    }

    @Test func reusedPIDIsStopped() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        // Both PIDs OScam left behind now belong to other programs.
        try machine.proc.add(pid: 4242, ppid: 1, argv: ["/bin/bash"])
        try machine.proc.add(pid: 4243, ppid: 1, comm: "nginx", argv: ["nginx: worker process"], exe: "/usr/sbin/nginx")
        try machine.writeVersionFile(pid: 4242)
        try machine.tree.write("tmp/.oscam/oscam.pid", "4243\n")

        let result = machine.discovery(versionDirs: [machine.temp]).discover()
        let instance = try #require(result.instances.first)
        #expect(instance.state == .stopped)
        #expect(instance.workerPID == nil)
        #expect(result.problems.contains { $0.path == machine.temp + "/oscam.pid" && $0.message.contains("stale") })
    }

    @Test func pidFileNamingAnotherInstancesOScamIsNotThisWorker() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let other = try machine.tree.mkdir("etc/other")
        try machine.proc.add(pid: 600, ppid: 1, argv: ["/usr/bin/oscam", "-r", "0", "-c", other, "-t", machine.temp])
        try machine.writeVersionFile(pid: 1)
        try machine.tree.write("tmp/.oscam/oscam.pid", "600\n")

        let result = machine.discovery(versionDirs: [machine.temp]).discover()
        #expect(result.instances.map(\.configDir) == [machine.configDir, other + "/"])
        #expect(result.instances.map(\.state) == [.stopped, .running])
        #expect(result.instances.last?.workerPID == 600)
    }

    @Test func restartModeZeroHasOnlyAWorker() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(pid: 700, ppid: 1, argv: machine.argv(extra: ["-r", "0"]))
        try machine.writeVersionFile(pid: 1)  // getppid() of a daemonised -r 0 worker
        let instance = try #require(machine.discovery().discover().instances.first)
        #expect(instance.state == .running)
        #expect(instance.workerPID == 700)
        #expect(instance.watchdogPID == nil)
        #expect(instance.provenance.first == Provenance(source: .process, detail: "pid 700"))
    }

    @Test func loneWatchdogBetweenWorkersIsStillRunning() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(pid: 800, ppid: 1, argv: machine.argv())
        try machine.writeVersionFile(pid: 800)
        let instance = try #require(machine.discovery().discover().instances.first)
        #expect(instance.state == .running)
        #expect(instance.watchdogPID == 800)
        #expect(instance.workerPID == nil)
    }

    @Test func pidFileTellsTheWorkerWhenSeveralChildrenExist() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair(watchdog: 900, worker: 901)
        // A second child that started later, e.g. a worker being replaced.
        try machine.proc.add(pid: 902, ppid: 900, argv: machine.argv(), startTicks: 5000)
        try machine.writePIDFile(901)
        let instance = try #require(machine.discovery().discover().instances.first)
        #expect(instance.workerPID == 901)
        #expect(instance.watchdogPID == 900)
    }

    @Test func runningProcessWithoutPIDFileIsRunning() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair()
        let result = machine.discovery().discover()
        let instance = try #require(result.instances.first)
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.watchdogPID == 13241)
        #expect(result.problems == [])
    }

    @Test func zombieOScamDoesNotCount() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(pid: 950, ppid: 1, comm: "oscam", argv: [], state: "Z")
        try machine.writeVersionFile(pid: 1)
        let instance = try #require(machine.discovery(versionDirs: [machine.temp]).discover().instances.first)
        #expect(instance.state == .stopped)
    }

    @Test func noConfigDirOptionUsesTheVersionFile() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        // Started without -c: OScam used its compiled-in dir, which only the version file tells.
        let line = ["/usr/bin/oscam", "-b", "-t", machine.temp]
        try machine.addPair(argv: line)
        try machine.writeVersionFile(pid: 13241)
        // OScam's own search would find this one, but the version file knows better.
        let fallback = try machine.tree.mkdir("usr/local/etc")
        try machine.tree.write("usr/local/etc/oscam.conf", "")

        let result = machine.discovery(defaultConfigDirs: [fallback]).discover()
        #expect(result.instances.map(\.configDir) == [machine.configDir, fallback + "/"])
        let instance = try #require(result.instances.first)
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.provenance.map(\.source) == [.process, .versionFile])
        #expect(result.instances.last?.state == .stopped)
    }

    @Test func noConfigDirOptionAndAForeignVersionFileFallsBackToOScamsSearch() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(pid: 300, ppid: 1, argv: ["/usr/bin/oscam", "-r", "0", "-t", machine.temp])
        // Written by some other tree (PID 77 is neither 300 nor its parent).
        try machine.writeVersionFile(pid: 77)
        let compiledIn = try machine.tree.mkdir("usr/local/etc")
        let tuxbox = try machine.tree.mkdir("var/tuxbox/config")
        try machine.tree.write("var/tuxbox/config/oscam.conf", "")

        let result = machine.discovery(auto: true, defaultConfigDirs: [compiledIn, tuxbox]).discover()
        let byDir = Dictionary(uniqueKeysWithValues: result.instances.map { ($0.configDir, $0) })
        #expect(byDir[tuxbox + "/"]?.workerPID == 300)
        #expect(byDir[tuxbox + "/"]?.provenance.map(\.source) == [.process, .defaultDir])
        #expect(byDir[machine.configDir]?.state == .stopped)
    }

    @Test func defaultDirsCountOnlyWithOScamConf() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let empty = try machine.tree.mkdir("usr/local/etc")
        let keys = try machine.tree.mkdir("var/keys")
        try machine.tree.write("var/keys/oscam.conf", "")
        let result = machine.discovery(defaultConfigDirs: [empty, keys, machine.tree.at("missing")]).discover()
        #expect(result.instances.map(\.configDir) == [keys + "/"])
        let instance = try #require(result.instances.first)
        #expect(instance.provenance == [Provenance(source: .defaultDir, detail: keys + "/")])
        #expect(instance.state == .stopped)
        #expect(instance.name == "keys")
        #expect(instance.tempDir == nil)
        #expect(instance.pidFile == nil)
        #expect(result.problems == [])
    }

    @Test func autoOffUsesOnlyConfiguredDirsButFillsInRuntime() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair()
        try machine.writeVersionFile(pid: 13241)
        let other = try machine.tree.mkdir("etc/other")
        try machine.proc.add(pid: 600, ppid: 1, argv: ["/usr/bin/oscam", "-r", "0", "-c", other, "-t", machine.temp])
        let keys = try machine.tree.mkdir("var/keys")
        try machine.tree.write("var/keys/oscam.conf", "")
        let units = try machine.tree.mkdir("systemd")
        try machine.tree.write("systemd/oscam-x.service", "[Service]\nExecStart=/usr/bin/oscam -c /srv/x\n")

        let result = machine.discovery(
            auto: false, systemdDirs: [units], versionDirs: [machine.temp], extraConfigDirs: [machine.config],
            defaultConfigDirs: [keys]
        ).discover()
        #expect(result.instances.map(\.configDir) == [machine.configDir])
        let instance = try #require(result.instances.first)
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.provenance.map(\.source) == [.process, .versionFile, .configured])
    }

    @Test func missingConfiguredDirIsListedWithAProblem() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let missing = machine.tree.at("nowhere/oscam")
        let result = machine.discovery(auto: false, extraConfigDirs: [missing]).discover()
        #expect(result.instances.map(\.configDir) == [missing + "/"])
        #expect(result.instances.first?.state == .stopped)
        #expect(result.instances.first?.provenance == [Provenance(source: .configured, detail: missing + "/")])
        #expect(result.problems == [
            DiscoveryProblem(path: missing + "/", message: "configured config dir does not exist"),
        ])
    }

    @Test func configDirsAreNormalisedIntoOneInstance() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        // Relative -c, resolved against the process's working directory.
        try machine.proc.add(
            pid: 500, ppid: 1, argv: ["./oscam", "-r", "0", "-c", "oscam//", "-t", "../tmp/.oscam"],
            cwd: machine.tree.at("etc"))
        let messy = machine.tree.path + "//etc/./oscam/../oscam"
        let result = machine.discovery(auto: true, extraConfigDirs: [messy]).discover()
        #expect(result.instances.map(\.configDir) == [machine.configDir])
        let instance = try #require(result.instances.first)
        #expect(instance.provenance.map(\.source) == [.process, .configured])
        #expect(instance.tempDir == machine.tree.path + "/tmp/.oscam")
        #expect(instance.binary == machine.tree.path + "/etc/oscam")
    }

    @Test func relativeConfigDirWithUnreadableCwdIsAProblem() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(pid: 510, ppid: 1, argv: ["oscam", "-c", "conf"], cwd: nil)
        let result = machine.discovery().discover()
        #expect(result.instances.isEmpty)
        #expect(result.problems.map(\.path) == [machine.proc.root + "/510"])
    }

    @Test func pidFileSettingFromTheConfig() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let line = ["/usr/local/bin/oscam", "-b", "-c", machine.config, "-t", machine.temp]
        try machine.addPair(argv: line)
        let custom = machine.run + "/custom.pid"
        try machine.writePIDFile(13242, at: custom)
        let expectedDir = machine.configDir
        let discovery = machine.discovery(pidfileSetting: { dir in dir == expectedDir ? custom : nil })
        let instance = try #require(discovery.discover().instances.first)
        #expect(instance.pidFile == custom)
        #expect(instance.workerPID == 13242)

        // Without the setting: <tempdir>/oscam.pid.
        let plain = try #require(machine.discovery().discover().instances.first)
        #expect(plain.pidFile == machine.temp + "/oscam.pid")
    }

    @Test func versionFileFromAnEarlierRunIsReported() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair()
        try machine.writePIDFile(13242)
        // The worker started at boot + 10 s; this file claims an hour earlier.
        try machine.writeVersionFile(pid: 13241, startTime: 1_795_900_010 - 3600)
        let result = machine.discovery().discover()
        #expect(result.instances.first?.state == .running)
        #expect(result.problems.map(\.path) == [machine.temp + "/oscam.version"])
        #expect(result.problems.first?.message.contains("-3600 s") == true)
    }

    @Test func interpreterStandInIsOScamButAnEditorIsNot() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.proc.add(
            pid: 400, ppid: 1, comm: "python3",
            argv: ["/usr/bin/python3", "-u", "/opt/standin/oscam", "-r", "0", "-c", machine.config, "-t", machine.temp],
            exe: "/usr/bin/python3.11")
        try machine.proc.add(pid: 401, ppid: 1, comm: "vim", argv: ["vim", "oscam.conf", "-c", "/etc/evil"])
        try machine.proc.add(pid: 402, ppid: 1, comm: "less", argv: ["less", "/etc/oscam/oscam.user"])
        let result = machine.discovery().discover()
        #expect(result.instances.map(\.configDir) == [machine.configDir])
        #expect(result.instances.first?.binary == "/opt/standin/oscam")
        #expect(result.instances.first?.workerPID == 400)
    }

    @Test func hiddenProcessesMakeTheStateUnknown() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.tree.write(
            "proc/self/mountinfo", "22 27 0:21 / \(machine.proc.root) rw,relatime - proc proc rw,hidepid=2\n")
        let result = machine.discovery(extraConfigDirs: [machine.config]).discover()
        #expect(result.instances.first?.state == .unknown)

        let unreadable = Discovery(
            options: DiscoveryOptions(
                procRoot: machine.tree.at("no-proc"), systemdDirs: [], versionDirs: [],
                extraConfigDirs: [machine.config], defaultConfigDirs: []))
        #expect(unreadable.discover().instances.first?.state == .unknown)
    }

    /// `/tmp/.oscam` can be created by any local user: a version file they plant must not make
    /// the agent report (and later read or edit) a tree of their choice.
    @Test func aVersionFileFromAnotherUserIsIgnored() throws {
        guard getuid() == 0 else {
            return  // other owners can only be arranged as root; CI runs as root
        }
        let root = try TestEnvironment.makeTempDir("planted")
        defer { TestEnvironment.removeTree(root) }
        let config = root + "/cfg/"
        let temp = root + "/tmp"
        mkdir(config, 0o755)
        mkdir(temp, 0o1777)
        mkdir(root + "/proc", 0o755)
        try TestEnvironment.write("[global]\n", to: config + "oscam.conf")
        try TestEnvironment.write("Version: 2.26.05-11961@5b6fa7ad\nPID: 4242\nConfigDir: \(config)\nWebifPort: 0\n",
                                  to: temp + "/oscam.version")
        func found() -> (dirs: [String], problems: [String]) {
            let result = Discovery(options: DiscoveryOptions(
                procRoot: root + "/proc", systemdDirs: [], versionDirs: [temp], extraConfigDirs: [],
                defaultConfigDirs: [])).discover()
            return (result.instances.map(\.configDir), result.problems.map(\.description))
        }
        #expect(found().dirs == [config], "root's version file is believed")
        chown(temp + "/oscam.version", 65534, 65534)
        let planted = found()
        #expect(planted.dirs.isEmpty)
        #expect(planted.problems.contains { $0.contains("ignored: owned by uid 65534") })
        chown(config, 65534, 65534)
        #expect(found().dirs == [config], "the owner of the config dir may write its version file")
    }

    @Test func cgroupUnitNamesTheInstanceOnlyWhenItIsOScams() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let second = try machine.tree.mkdir("srv/oscam")
        try machine.proc.add(
            pid: 610, ppid: 1, argv: ["/usr/bin/oscam", "-r", "0", "-c", machine.config, "-t", machine.temp],
            cgroup: "0::/system.slice/system-oscam.slice/oscam@sat.service")
        // Started from a cron job: the cgroup is cron's, which says nothing about OScam.
        try machine.proc.add(
            pid: 620, ppid: 1, argv: ["/usr/bin/oscam", "-r", "0", "-c", second, "-t", machine.temp],
            cgroup: "0::/system.slice/cron.service")
        let result = machine.discovery().discover()
        let byDir = Dictionary(uniqueKeysWithValues: result.instances.map { ($0.configDir, $0) })
        #expect(byDir[machine.configDir]?.unit == "oscam@sat.service")
        #expect(byDir[machine.configDir]?.name == "oscam@sat")
        #expect(byDir[second + "/"]?.unit == nil)
        #expect(byDir[second + "/"]?.name == "oscam")
    }

    @Test func namesAreUniqueAndIDsWellFormed() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let dirs = try ["a/oscam", "b/oscam", "c/oscam", "d/oscam-2"].map { try machine.tree.mkdir($0) }
        let result = machine.discovery(auto: false, extraConfigDirs: dirs).discover()
        let names = result.instances.map(\.name)
        #expect(Set(names).count == names.count)
        let byID = result.instances.sorted { $0.id < $1.id }
        #expect(byID.filter { $0.configDir != dirs[3] + "/" }.first?.name == "oscam")
        for instance in result.instances {
            #expect(instance.id.count == 20)
            #expect(instance.id.hasPrefix("osc_"))
            #expect(instance.id.dropFirst(4).allSatisfy { "0123456789abcdef".contains($0) })
        }
        #expect(result.instances.map(\.configDir) == dirs.map { $0 + "/" })
    }

    @Test func unreadableFilesAreProblemsAndAnUnreadableExeFallsBackToArgv() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.addPair()
        try machine.writeVersionFile(pid: 13241)
        try machine.writePIDFile(13242)
        // An unprivileged agent: OScam's temp dir is 0700 and /proc/<pid>/exe is not readable.
        let fileSystem = DenyingFileSystem(denied: [machine.temp + "/", machine.run + "/", "/exe"])
        let discovery = Discovery(
            options: DiscoveryOptions(
                procRoot: machine.proc.root, systemdDirs: [], versionDirs: [], extraConfigDirs: [],
                defaultConfigDirs: []),
            procTable: LinuxProcTable(root: machine.proc.root, fileSystem: fileSystem), fileSystem: fileSystem)
        let result = discovery.discover()
        let instance = try #require(result.instances.first)
        #expect(instance.state == .running)
        #expect(instance.workerPID == 13242)
        #expect(instance.watchdogPID == 13241)
        #expect(instance.binary == "/usr/local/bin/oscam")
        #expect(instance.versionFile == nil)
        #expect(result.problems == [
            DiscoveryProblem(path: machine.run + "/oscam.pid", message: "cannot read: permission denied"),
            DiscoveryProblem(path: machine.temp + "/oscam.version", message: "cannot read: permission denied"),
        ])
    }

    @Test func problemsNeverQuoteFileContents() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        try machine.tree.write("tmp/.oscam/oscam.version", "ConfigDir: s3cr3t-relative\nPID: s3cr3t\n")
        try machine.tree.write("tmp/.oscam/oscam.pid", "s3cr3t\n")
        let units = try machine.tree.mkdir("systemd")
        try machine.tree.write("systemd/oscam.service", "[Service]\nExecStart=/usr/bin/oscam -c 's3cr3t\n")
        let result = machine.discovery(
            systemdDirs: [units], versionDirs: [machine.temp], extraConfigDirs: [machine.config]
        ).discover()
        #expect(result.problems.count == 2)
        for problem in result.problems {
            #expect(!problem.description.contains("s3cr3t"))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aPlantedFIFODoesNotBlock() throws {
        let machine = try DiscoveryMachine()
        defer { machine.tree.remove() }
        let fifo = machine.temp + "/oscam.version"
        #expect(mkfifo(fifo, 0o600) == 0)
        let result = machine.discovery(versionDirs: [machine.temp]).discover()
        #expect(result.instances.isEmpty)
        #expect(result.problems == [DiscoveryProblem(path: fifo, message: "cannot read: not a regular file")])
    }

    @Test func idIsFNV1a64OfTheConfigDir() {
        // FNV-1a-64 test vectors: "" and "a".
        #expect(DiscoveredInstance.id(forConfigDir: "") == "osc_cbf29ce484222325")
        #expect(DiscoveredInstance.id(forConfigDir: "a") == "osc_af63dc4c8601ec8c")
        let id = DiscoveredInstance.id(forConfigDir: "/etc/oscam/")
        #expect(id == DiscoveredInstance.id(forConfigDir: "/etc/oscam/"))
        #expect(id != DiscoveredInstance.id(forConfigDir: "/etc/oscam"))
    }

    struct PathCase: Sendable, CustomStringConvertible {
        let path: String
        let base: String?
        let directory: String?
        var description: String { path }
    }

    @Test(arguments: [
        PathCase(path: "/etc/oscam", base: nil, directory: "/etc/oscam/"),
        PathCase(path: "/etc//oscam///", base: nil, directory: "/etc/oscam/"),
        PathCase(path: "/etc/./oscam/../oscam", base: nil, directory: "/etc/oscam/"),
        PathCase(path: "/../..", base: nil, directory: "/"),
        PathCase(path: "/", base: nil, directory: "/"),
        PathCase(path: "oscam", base: "/etc", directory: "/etc/oscam/"),
        PathCase(path: "../x", base: "/etc/oscam/", directory: "/etc/x/"),
        PathCase(path: "oscam", base: nil, directory: nil),
        PathCase(path: "oscam", base: "relative", directory: nil),
        PathCase(path: "", base: "/", directory: nil),
    ])
    func pathNormalisation(_ testCase: PathCase) {
        #expect(DiscoveryPath.directory(testCase.path, relativeTo: testCase.base) == testCase.directory)
    }
}
