#if canImport(Glibc)
import Glibc
#endif
import Collectors
import FoundationEssentials
import OScam
import Pipeline
import Testing
import TestSupport
@testable import Runner

/// Every registered collector must survive an empty tree, an unreadable one and garbage: no
/// crash, and each error a single line that names what it could not use.
@Suite struct ConformanceTests {
    enum Tree: String, CaseIterable {
        case empty, unreadable, garbage
    }

    static func build(_ tree: Tree) throws -> (configDir: String, procRoot: String) {
        let root = try makeTempDirectory()
        let config = root + "/etc/"
        let proc = root + "/proc"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: proc + "/4242", withIntermediateDirectories: true)
        switch tree {
        case .empty:
            break
        case .unreadable:
            // The agent's tests run as root, for whom modes do not matter: a directory where a
            // file should be cannot be read by anyone.
            for name in ["oscam.conf", "oscam.user", "oscam.server"] {
                try FileManager.default.createDirectory(atPath: config + name, withIntermediateDirectories: true)
            }
            for name in ["stat", "meminfo", "loadavg", "4242/stat"] {
                try FileManager.default.createDirectory(atPath: proc + "/" + name, withIntermediateDirectories: true)
            }
        case .garbage:
            var rng = SeededRandom(seed: 42)
            for path in ["oscam.conf", "oscam.user", "oscam.server"].map({ config + $0 })
                + ["stat", "meminfo", "loadavg", "4242/stat", "4242/cmdline"].map({ proc + "/" + $0 }) {
                let bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try Data(bytes).write(to: URL(fileURLWithPath: path))
            }
        }
        return (config, proc)
    }

    @Test(arguments: Registry.names, Tree.allCases)
    func survives(_ name: String, _ tree: Tree) throws {
        let (configDir, procRoot) = try Self.build(tree)
        let instance = DiscoveredInstance(
            id: DiscoveredInstance.id(forConfigDir: configDir), name: "t", configDir: configDir, tempDir: nil,
            pidFile: nil, binary: nil, unit: nil, provenance: [Provenance(source: .configured, detail: configDir)],
            state: .running, workerPID: 4242, watchdogPID: nil, versionFile: nil, versionFilePath: nil)
        let discovery = DiscoveryResult(instances: [instance])
        let context = CollectContext(
            discovery: discovery, files: CollectContext.loadFiles(for: discovery), procTable: LinuxProcTable(root: procRoot),
            procRoot: procRoot, osReleasePath: procRoot + "/os-release", http: RefusingTransport(), now: 1_795_950_000,
            webifTimeout: 1)
        let collector = try #require(Registry.all.first { $0.name == name }).make()
        let cycle = CollectionCycle(collectors: [collector], timeout: .seconds(5))
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: [instance.id],
                                            base: Snapshot(seq: 1, collectedAt: 0, agentVersion: "t"))
        #expect(timings.count == 1 && timings[0].outcome != "timeout")
        var perInstance: [String: Int] = [:]
        for failure in snapshot.collectorErrors {
            #expect(!failure.error.contains("\n"), "an error is one line")
            #expect(failure.error.contains("/"), "an error names the file or endpoint: \(failure.error)")
            perInstance["\(failure.collector)|\(failure.instance ?? "-")|\(failure.error)", default: 0] += 1
        }
        #expect(perInstance.values.allSatisfy { $0 == 1 }, "no error is reported twice")
        // The payload still encodes.
        _ = snapshot.json.encoded()
    }
}
