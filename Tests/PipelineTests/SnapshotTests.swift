import Pipeline
import Testing

/// Sample model values shared by the snapshot, cycle and encoder tests.
enum Samples {
    static let host = HostInfo(hostname: "box1", osID: "debian", osVersion: "12", kernel: "6.1.0-18-amd64",
                               arch: "x86_64", cpuCount: 4, bootTime: 1_700_000_000)
    static let resources = Resources(cpuPercent: 12.5, ramTotalMB: 2048, ramUsedMB: 1024.25, ramAvailableMB: 1000.1,
                                     load1: 0.05, load5: 0.1, load15: 1)
    static let identity = InstanceIdentity(
        name: "oscam", configDir: "/etc/oscam", tempDir: "/tmp/.oscam", pidFile: nil, binary: "/usr/bin/oscam",
        unit: nil, discoveredBy: [.init(source: "process", detail: "pid 1234")], version: "1.20")
    static let runtime = RuntimeInfo(state: "running", pid: 1234, uptimeSeconds: 60, rssMB: 9.1)

    static func snapshot(seq: Int64 = 7) -> Snapshot {
        Snapshot(seq: seq, collectedAt: 1_700_000_000, agentVersion: "0.1.0")
    }
}

@Suite struct SnapshotTests {
    // MARK: - Absent and present sections

    @Test func minimalSnapshotHasOnlyTheAlwaysPresentMembers() {
        #expect(Samples.snapshot().json.encodedText == """
            {"agent":{"version":"0.1.0"},"collected_at":1700000000,"collector_errors":[],"instances":[],\
            "redaction":{},"schema":1,"seq":7}
            """)
    }

    @Test func optionalSectionsAppearOnlyWhenSet() throws {
        var snapshot = Samples.snapshot()
        snapshot.host = Samples.host
        snapshot.resources = Samples.resources
        snapshot.truncated = Truncation(accounts: 5000, readers: 12)
        snapshot.redaction = ["oscam.user:pwd": 2]
        guard case .object(let members) = snapshot.json else {
            Issue.record("a snapshot is an object")
            return
        }
        #expect(Set(members.keys) == ["schema", "seq", "collected_at", "agent", "host", "resources", "instances",
                                      "collector_errors", "redaction", "truncated"])
        #expect(members["host"]?.encodedText == """
            {"arch":"x86_64","boot_time":1700000000,"cpu_count":4,"hostname":"box1","kernel":"6.1.0-18-amd64",\
            "os_id":"debian","os_version":"12"}
            """)
        #expect(members["resources"]?.encodedText == """
            {"cpu_percent":12.5,"load_1":0.05,"load_15":1,"load_5":0.1,"ram_available_mb":1000.1,\
            "ram_total_mb":2048,"ram_used_mb":1024.25}
            """)
        #expect(members["truncated"]?.encodedText == #"{"accounts_total":5000,"readers_total":12}"#)
        #expect(members["redaction"]?.encodedText == #"{"oscam.user:pwd":2}"#)
    }

    @Test func hostWithoutBootTimeOmitsTheKey() {
        var host = Samples.host
        host.bootTime = nil
        guard case .object(let members) = host.json else {
            Issue.record("host is an object")
            return
        }
        #expect(members["boot_time"] == nil)
        #expect(members.count == 6)
    }

    @Test func instanceWithOnlyAnIDHasOnlyTheID() {
        #expect(InstanceReport(id: "osc_1").json == .object(["id": .string("osc_1")]))
        var snapshot = Samples.snapshot()
        snapshot.instances = [InstanceReport(id: "osc_1")]
        #expect(snapshot.json.encodedText.contains(#""instances":[{"id":"osc_1"}]"#))
    }

    @Test func identityIsFlattenedIntoTheInstance() {
        var report = InstanceReport(id: "osc_1")
        report.identity = Samples.identity
        report.runtime = Samples.runtime
        report.files = ["oscam.user": FileFingerprint(sha256: String(repeating: "ab", count: 32), size: 10, mtime: 5)]
        report.accounts = []
        #expect(report.json.encodedText == """
            {"accounts":[],"binary":"/usr/bin/oscam","config_dir":"/etc/oscam",\
            "discovered_by":[{"detail":"pid 1234","source":"process"}],\
            "files":{"oscam.user":{"mtime":5,"sha256":"\(String(repeating: "ab", count: 32))","size":10}},\
            "id":"osc_1","name":"oscam","runtime":{"pid":1234,"rss_mb":9.1,"state":"running","uptime_s":60},\
            "temp_dir":"/tmp/.oscam","version":"1.20"}
            """)
    }

    @Test func partsWithOptionalFieldsOmitThem() {
        #expect(RuntimeInfo(state: "stopped").json == .object(["state": .string("stopped")]))
        #expect(PortInfo(section: "newcamd", transport: "tcp", port: 10000, caid: nil, providers: []).json.encodedText
                == #"{"port":10000,"section":"newcamd","transport":"tcp"}"#)
        #expect(PortInfo(section: "newcamd", transport: "tcp", port: 1, caid: "0963", providers: ["000000"])
                    .json.encodedText
                == #"{"caid":"0963","port":1,"providers":["000000"],"section":"newcamd","transport":"tcp"}"#)
        #expect(ConfigSummary().json == .object([:]))
        #expect(AccountInfo(user: "u", enabled: true, groups: [], caids: [], idents: [], expdate: nil).json.encodedText
                == #"{"caid":[],"enabled":true,"group":[],"ident":[],"user":"u"}"#)
        let posture = WebIfPosture(loopbackOnly: true, allowsLoopback: true, credentialsSet: false, readonly: false,
                                   tls: false, bindsAll: true)
        let webif = WebIfStatus(enabled: true, host: nil, port: 8888, tls: false, state: "ok", reachable: true,
                                httpStatus: 200, latencyMS: nil, version: nil, startedAt: nil, readonly: nil,
                                posture: posture)
        #expect(webif.json.encodedText == """
            {"enabled":true,"http_status":200,"port":8888,"posture":{"allows_loopback":true,"binds_all":true,\
            "credentials_set":false,"loopback_only":true,"readonly":false,"tls":false},"reachable":true,\
            "state":"ok","tls":false}
            """)
    }

    // MARK: - Ordering

    @Test func instancesAndCollectorErrorsAreSorted() throws {
        var snapshot = Samples.snapshot()
        snapshot.instances = [InstanceReport(id: "osc_c"), InstanceReport(id: "osc_a"), InstanceReport(id: "osc_b")]
        snapshot.collectorErrors = [
            CollectorFailure(collector: "webif", instance: "osc_b", error: "refused"),
            CollectorFailure(collector: "accounts", instance: nil, error: "z"),
            CollectorFailure(collector: "webif", instance: "osc_a", error: "timeout"),
            CollectorFailure(collector: "accounts", instance: nil, error: "a"),
            CollectorFailure(collector: "webif", instance: nil, error: "x"),
        ]
        let text = snapshot.json.encodedText
        #expect(text.contains(#""instances":[{"id":"osc_a"},{"id":"osc_b"},{"id":"osc_c"}]"#))
        #expect(text.contains("""
            "collector_errors":[{"collector":"accounts","error":"a"},{"collector":"accounts","error":"z"},\
            {"collector":"webif","error":"x"},{"collector":"webif","error":"timeout","instance":"osc_a"},\
            {"collector":"webif","error":"refused","instance":"osc_b"}]
            """))
        // The model's own order is left alone; only the JSON is sorted.
        #expect(snapshot.instances.map(\.id) == ["osc_c", "osc_a", "osc_b"])
    }

    // MARK: - Merging

    @Test func instanceMergeTakesEveryPartTheOtherHas() {
        var base = InstanceReport(id: "osc_1")
        base.identity = Samples.identity
        base.runtime = Samples.runtime
        base.config = ConfigSummary(ports: [PortInfo(section: "cccam", transport: "tcp", port: 12000, caid: nil,
                                                     providers: [])])

        var incoming = InstanceReport(id: "ignored")
        incoming.runtime = RuntimeInfo(state: "stopped")
        incoming.accounts = [AccountInfo(user: "u", enabled: true, groups: [1], caids: [], idents: [], expdate: nil)]
        incoming.config = ConfigSummary(accountCount: 1)

        var merged = base
        merged.merge(incoming)
        #expect(merged.id == "osc_1")
        #expect(merged.identity == Samples.identity)
        #expect(merged.runtime == RuntimeInfo(state: "stopped"))
        #expect(merged.accounts == incoming.accounts)
        #expect(merged.readers == nil)
        #expect(merged.webif == nil)
        #expect(merged.files == nil)
        // Config parts are merged, not replaced.
        #expect(merged.config?.ports == base.config?.ports)
        #expect(merged.config?.accountCount == 1)

        // Merging an empty report changes nothing.
        var unchanged = merged
        unchanged.merge(InstanceReport(id: "osc_1"))
        #expect(unchanged == merged)
    }

    @Test func instanceMergeCreatesConfigWhenAbsent() {
        var report = InstanceReport(id: "osc_1")
        var incoming = InstanceReport(id: "osc_1")
        incoming.config = ConfigSummary(readerCount: 3)
        report.merge(incoming)
        #expect(report.config == ConfigSummary(readerCount: 3))
    }

    @Test func configMergeKeepsWhatTheOtherLacks() {
        let problem = FileProblem(file: "oscam.user", line: 3, severity: "warning", message: "m")
        var summary = ConfigSummary(accountCount: 2, readerCount: 1, ports: [], global: ["nice": "-1"],
                                    problems: [problem])
        summary.merge(ConfigSummary(readerCount: 4, global: [:]))
        #expect(summary.accountCount == 2)
        #expect(summary.readerCount == 4)
        #expect(summary.ports == [])
        // An empty collection is a value, not "absent": it replaces.
        #expect(summary.global == [:])
        #expect(summary.problems?.count == 1)
        summary.merge(ConfigSummary())
        #expect(summary.readerCount == 4)
    }

    @Test func collectorFailureOrdering() {
        let nilInstance = CollectorFailure(collector: "a", instance: nil, error: "e")
        let named = CollectorFailure(collector: "a", instance: "osc_1", error: "a")
        #expect(nilInstance < named)
        #expect(CollectorFailure(collector: "a", instance: "z", error: "z")
                < CollectorFailure(collector: "b", instance: nil, error: "a"))
        #expect(!(nilInstance < nilInstance))
    }
}

/// `Snapshot.changeView`: what decides whether a snapshot is sent.
@Suite struct SnapshotChangeViewTests {
    static func collected(cpu: Double, load: Double, uptime: Int64, latency: Int, pid: Int32 = 1234,
                          users: [String] = ["alice"], sha: String = "aa") -> Snapshot {
        var snapshot = Samples.snapshot(seq: Int64(uptime))
        snapshot.resources = Resources(cpuPercent: cpu, ramTotalMB: 2048, ramUsedMB: 1000 + load, ramAvailableMB: 900 - load,
                                       load1: load, load5: load, load15: load)
        var report = InstanceReport(id: "osc_00000000000000aa")
        report.runtime = RuntimeInfo(state: "running", pid: pid, uptimeSeconds: uptime, cpuPercent: cpu, rssMB: 9 + cpu,
                                     threads: Int(uptime % 7))
        report.webif = WebIfStatus(enabled: true, host: nil, port: 8888, tls: false, state: "ok", reachable: true,
                                   httpStatus: 200, latencyMS: latency, version: "1.20", startedAt: nil, readonly: false,
                                   posture: WebIfPosture(loopbackOnly: true, allowsLoopback: true, credentialsSet: true,
                                                         readonly: false, tls: false, bindsAll: true))
        report.files = ["oscam.user": FileFingerprint(sha256: String(repeating: sha, count: 32), size: 10, mtime: 5)]
        report.accounts = users.map { AccountInfo(user: $0, enabled: true, groups: [1], caids: [], idents: [], expdate: nil) }
        snapshot.instances = [report]
        return snapshot
    }

    @Test func theMovingFiguresDoNotMakeAChange() {
        let first = Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3)
        let later = Self.collected(cpu: 7.25, load: 2.5, uptime: 360, latency: 11)
        #expect(first != later)
        #expect(first.changeView == later.changeView)
    }

    @Test func everythingElseDoes() {
        let first = Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3)
        // A restarted OScam (new worker), a changed file, a new account with its file.
        #expect(first.changeView != Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3, pid: 99).changeView)
        #expect(first.changeView != Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3, sha: "bb").changeView)
        var down = first
        down.instances[0].webif?.reachable = false
        down.instances[0].webif?.state = "refused"
        #expect(first.changeView != down.changeView)
        var failing = first
        failing.collectorErrors = [CollectorFailure(collector: "webif", instance: nil, error: "timeout")]
        #expect(first.changeView != failing.changeView)
    }

    @Test func accountsCountWhenNoFingerprintStandsForThem() {
        var first = Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3)
        var second = Self.collected(cpu: 1.5, load: 0.1, uptime: 60, latency: 3, users: ["alice", "bob"])
        #expect(first.changeView == second.changeView, "the fingerprint stands for the list")
        first.instances[0].files = nil
        second.instances[0].files = nil
        #expect(first.changeView != second.changeView)
    }
}
