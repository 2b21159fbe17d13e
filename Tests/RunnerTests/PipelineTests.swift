#if canImport(Glibc)
import Glibc
#endif
import Collectors
import FoundationEssentials
import OScam
import Pipeline
import Platform
import Synchronization
import Testing
import TestSupport
@testable import Runner

/// The whole pipeline in-process over every fixture tree: nothing secret in the payload or the
/// logs, the canary, and the conformance of every registered collector on hostile trees.
@Suite struct WholePipelineTests {
    static let repoRoot = TestEnvironment.packageRoot

    /// Every OScam config dir the repository holds, each with at least one secret.
    static let trees: [String] = {
        var dirs: [String] = []
        let configCases = repoRoot + "/Tests/OScamTests/testdata/config"
        dirs += listDirectory(configCases).map { configCases + "/" + $0 }
        dirs += ["/Tests/CollectorsTests/testdata/tree/oscam", "/Tests/RunnerTests/testdata/peer-etc",
                 "/config/example/oscam/main", "/config/example/oscam/backup"].map { repoRoot + $0 }
        return dirs
    }()

    static func secrets(in dir: String) -> [FoundSecret] {
        OScamFile.allCases.flatMap { file -> [FoundSecret] in
            guard let bytes = readBytes(dir + "/" + file.rawValue) else {
                return []
            }
            return ConfigDocument(bytes: bytes, file: file, path: file.rawValue).secretValues()
        }
    }

    /// Writes an agent.conf for `dir` into a fresh temp dir and returns its path.
    static func agentConf(for dirs: [String], collectors: [String]? = nil) throws -> String {
        let temp = try makeTempDirectory()
        var text = "[agent]\nstate_dir = \(temp)/state\ncollectors_file = \(temp)/collectors.conf\n"
        text += "[discovery]\nauto = no\nconfig_dirs = \(dirs.joined(separator: ", "))\nproc_root = \(temp)/proc\n"
        text += "systemd_dirs =\nversion_dirs =\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: temp + "/agent.conf"))
        if let collectors {
            try Data(collectors.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: temp + "/collectors.conf"))
        }
        try FileManager.default.createDirectory(atPath: temp + "/proc", withIntermediateDirectories: true)
        return temp + "/agent.conf"
    }


    @Test(arguments: trees)
    func noSecretInThePayloadOrTheLogs(_ dir: String) throws {
        let secrets = Self.secrets(in: dir)
        let capture = Capture()
        let status = Agent.main(arguments: ["--dry-run", "--config", try Self.agentConf(for: [dir])], output: capture.output)
        #expect(status == 0)
        let payload = capture.stdout
        #expect(payload.hasPrefix("{\"agent\":"))
        let logs = capture.log.lines.joined(separator: "\n")
        for found in secrets {
            let secret = found.value.reveal()
            // Passwords and keys must not appear anywhere; login names (which also occur in paths,
            // like a reader user `peer` in a dir named `peer-etc`) not as a whole value.
            let anywhere = !found.isLoginName && secret.count >= RedactionFilter.minimumSubstringLength
            let leaked = anywhere ? payload.contains(secret) : payload.contains("\"\(jsonEscaped(secret))\"")
            #expect(!leaked, "secret of rule \(found.rule) from \(dir) reached the payload")
            if anywhere {
                #expect(!logs.contains(secret), "secret of rule \(found.rule) from \(dir) reached the logs")
            }
        }
    }

    @Test func theFixtureTreesHoldSecretsOfEveryFile() {
        let rules = Set(Self.trees.flatMap { Self.secrets(in: $0).map(\.rule) })
        for rule in ["oscam.user:pwd", "oscam.user:hostname", "oscam.conf:webif.httppwd", "oscam.conf:newcamd.port_key",
                     "oscam.conf:newcamd.key", "oscam.server:password", "oscam.server:rsakey", "oscam.server:atr"] {
            #expect(rules.contains(rule), "no fixture tree exercises \(rule)")
        }
    }

    @Test func theCanaryPassesWithTheRealFiltersAndFailsWithout() {
        #expect(Canary.check(collectors: Registry.all.map { $0.make() }, encoder: Collection.encoder) == nil)
        let unfiltered = Canary.check(collectors: Registry.all.map { $0.make() }) { _ in
            SnapshotEncoder(filters: [], sha256: { Crypto.sha256Hex($0) })
        }
        #expect(unfiltered?.description == "the redaction filter let a known secret through")
    }

    @Test func theCanaryCatchesACollectorThatLeaks() {
        let failure = Canary.check(collectors: Registry.all.map { $0.make() } + [LeakyCollector()],
                                   encoder: Collection.encoder)
        #expect(failure?.description == "a collector put a secret from the OScam files into the payload")
    }

    @Test func disabledCollectorsLeaveTheirSectionsAbsent() throws {
        let dir = Self.repoRoot + "/config/example/oscam/main"
        let capture = Capture()
        let conf = try Self.agentConf(for: [dir], collectors: ["instances"])
        #expect(Agent.main(arguments: ["--dry-run", "--config", conf], output: capture.output) == 0)
        let payload = capture.stdout
        for key in ["\"accounts\"", "\"readers\"", "\"runtime\"", "\"webif\"", "\"host\"", "\"resources\"",
                    "\"account_count\"", "\"reader_count\""] {
            #expect(!payload.contains(key), "\(key) must be absent when its collector is disabled")
        }
        #expect(payload.contains("\"ports\""))
    }

    @Test func theSameTreeGivesTheSameBytesApartFromVolatileFields() throws {
        let collection = Collection(config: try Self.config(for: [Self.repoRoot + "/config/example/oscam/main"]),
                                    enabled: ["instances", "accounts", "readers"], http: RefusingTransport())
        let first = collection.collect(seq: 7, now: 1_795_950_000)
        let second = collection.collect(seq: 7, now: 1_795_950_000)
        #expect(first.encoded == second.encoded)
        #expect(first.encoded.sha256 == Crypto.sha256Hex(first.encoded.bytes))
    }

    static func config(for dirs: [String]) throws -> AgentConfig {
        let path = try agentConf(for: dirs)
        let text = String(decoding: try #require(readBytes(path)), as: UTF8.self)
        return AgentConfig.parse(text, path: path).config
    }
}

/// A collector that copies a password into the payload, to prove the canary notices.
struct LeakyCollector: Collector {
    let name = "leaky"
    let needs: Set<Capability> = [.oscamFiles]

    func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        var contribution = Contribution()
        for instance in context.discovery.instances {
            let password = context.analysis(.user, of: instance.id)?.secrets.first { $0.rule == "oscam.user:pwd" }?
                .value.reveal() ?? ""
            var report = InstanceReport(id: instance.id)
            report.accounts = [AccountInfo(user: password, enabled: true, groups: [], caids: [], idents: [], expdate: nil)]
            contribution.instances[instance.id] = report
        }
        return contribution
    }
}

/// Keeps what a command wrote to stdout and stderr.
final class Capture: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    let log = MemoryLogOutput()

    var output: Output {
        Output(writeOut: { bytes in self.bytes.withLock { $0 += bytes } }, writeError: { self.log.write($0) },
               stdoutIsTerminal: false, logOutput: log)
    }

    var stdout: String {
        String(decoding: bytes.withLock { $0 }, as: UTF8.self)
    }
}

struct RefusingTransport: HTTPTransport {
    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        throw HTTPError(kind: .refused, message: "Connection refused")
    }
}

func jsonEscaped(_ text: String) -> String {
    let encoded = String(decoding: JSONValue.string(text).encoded(), as: UTF8.self)
    return String(encoded.dropFirst().dropLast())
}

func makeTempDirectory() throws -> String {
    try TestEnvironment.makeTempDir()
}

struct TempError: Error {}
