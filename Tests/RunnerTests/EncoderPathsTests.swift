import Collectors
import OScam
import Pipeline
import Platform
import Testing
import TestSupport
@testable import Runner

/// The snapshot's fast path (written straight from the model, scrubbed while writing) must give
/// exactly the bytes and counts of the general path (JSON tree → filters → encoder).
@Suite struct EncoderPathsTests {
    @Test(arguments: WholePipelineTests.trees)
    func bothPathsAgreeOnEveryFixtureTree(_ dir: String) throws {
        let collection = Collection(config: try WholePipelineTests.config(for: [dir]), enabled: Registry.names,
                                    http: RefusingTransport())
        let outcome = collection.collect(seq: 3, now: 1_795_950_000)
        let files = CollectContext.loadFiles(for: outcome.discovery)
        let encoder = Collection.encoder(secrets: SecretInventory.from(files: files))
        let fast = encoder.encode(outcome.snapshot)
        let tree = encoder.encodeThroughTree(outcome.snapshot)
        #expect(fast.0 == tree.0)
        #expect(fast.counts == tree.counts)
    }

    @Test func bothPathsAgreeWithEveryOptionalFieldSet() {
        var snapshot = Snapshot(seq: 9, collectedAt: 1, agentVersion: "v\"1\n")
        snapshot.host = HostInfo(hostname: "h", osID: "debian", osVersion: "12", kernel: "k", arch: "x86_64", cpuCount: 2,
                                 bootTime: 5)
        snapshot.resources = Resources(cpuPercent: 1.25, ramTotalMB: 1024, ramUsedMB: 100.5, ramAvailableMB: 923.5,
                                       load1: 0.1, load5: 0.2, load15: 0.3)
        snapshot.truncated = Truncation(accounts: 10, readers: 2)
        snapshot.collectorErrors = [CollectorFailure(collector: "b", instance: nil, error: "x secretpass1"),
                                    CollectorFailure(collector: "a", instance: "i", error: "ü")]
        var report = InstanceReport(id: "osc_1")
        report.identity = InstanceIdentity(name: "n", configDir: "/etc/oscam/", tempDir: "/tmp/.oscam", pidFile: "/p",
                                           binary: "/b", unit: "oscam.service",
                                           discoveredBy: [.init(source: "process", detail: "pid 1")], version: "2.26")
        report.config = ConfigSummary(accountCount: 1, readerCount: 0,
                                      ports: [PortInfo(section: "newcamd", transport: "tcp", port: 1, caid: "0963",
                                                       providers: ["000000"]),
                                              PortInfo(section: "cccam", transport: "tcp", port: 2, caid: nil, providers: [])],
                                      global: ["nice": "-1", "clienttimeout": "secretpass1"],
                                      problems: [FileProblem(file: "oscam.user", line: 3, severity: "warning", message: "m")])
        report.files = ["oscam.user": FileFingerprint(sha256: String(repeating: "ab", count: 32), size: 1, mtime: 2),
                        "oscam.conf": FileFingerprint(sha256: String(repeating: "cd", count: 32), size: 3, mtime: 4)]
        report.runtime = RuntimeInfo(state: "running", pid: 2, watchdogPID: 1, uptimeSeconds: 3, cpuPercent: 0.05,
                                     rssMB: 9.1, threads: 8)
        report.webif = WebIfStatus(enabled: true, host: "127.0.0.1", port: 8888, tls: true, state: "ok", reachable: true,
                                   httpStatus: 200, latencyMS: 4, version: "v", startedAt: "s", readonly: false,
                                   posture: WebIfPosture(loopbackOnly: true, allowsLoopback: true, credentialsSet: true,
                                                         readonly: false, tls: true, bindsAll: false))
        report.accounts = [AccountInfo(user: "secretpass1", enabled: true, groups: [1, 2], caids: ["0963"],
                                       idents: ["0963:000000"], expdate: "2027-01-01")]
        report.readers = [ReaderInfo(label: "r", protocolName: "cccam", enabled: false, groups: [], caids: [], idents: [],
                                     deviceKind: "network")]
        snapshot.instances = [report, InstanceReport(id: "osc_0")]
        let encoder = SnapshotEncoder(filters: [RedactionFilter(secrets: [("rule", "secretpass1")])],
                                      sha256: { Crypto.sha256Hex($0) })
        let fast = encoder.encode(snapshot)
        let tree = encoder.encodeThroughTree(snapshot)
        #expect(String(decoding: fast.0.bytes, as: UTF8.self) == String(decoding: tree.0.bytes, as: UTF8.self))
        #expect(fast.counts == tree.counts && fast.counts["rule"] == 3)
        let plain = SnapshotEncoder(filters: [], sha256: { Crypto.sha256Hex($0) })
        #expect(plain.encode(snapshot).0.bytes == snapshot.json.encoded())
    }
}
