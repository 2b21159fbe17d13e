import Collectors
import OScam
import Pipeline
import Platform
import TestSupport

/// The fixture tree under testdata/tree: a fake proc root, os-release and OScam config dirs.
enum Fixture {
    static let root = testdataDirectory() + "/tree"
    static let now: Int64 = 1_795_950_000

    static func instance(_ dir: String, running: Bool = true) -> DiscoveredInstance {
        let configDir = root + "/" + dir + "/"
        return DiscoveredInstance(
            id: id(dir), name: dir, configDir: configDir, tempDir: "/tmp/.oscam",
            pidFile: "/tmp/.oscam/oscam.pid", binary: "/usr/local/bin/oscam", unit: "oscam.service",
            provenance: [Provenance(source: .process, detail: "pid 4242"), Provenance(source: .configured, detail: configDir)],
            state: running ? .running : .stopped, workerPID: running ? 4242 : nil, watchdogPID: running ? 4241 : nil,
            versionFile: nil, versionFilePath: nil)
    }

    /// Ids hash the absolute config dir in production; here they hash a fixed path instead, so
    /// that the encoder's id order is the same in every checkout.
    static func id(_ dir: String) -> String {
        DiscoveredInstance.id(forConfigDir: "/fixture/" + dir + "/")
    }

    static func context(_ instances: [DiscoveredInstance], http: any HTTPTransport = RefusingTransport(),
                        procRoot: String = root + "/proc") -> CollectContext {
        let discovery = DiscoveryResult(instances: instances)
        return CollectContext(
            discovery: discovery, files: CollectContext.loadFiles(for: discovery),
            procTable: LinuxProcTable(root: procRoot), procRoot: procRoot, osReleasePath: root + "/etc/os-release",
            http: http, now: now, webifTimeout: 2)
    }

    /// A contribution as stable text: JSON with the fixture root replaced and volatile file
    /// times removed.
    static func render(_ contribution: Contribution) -> String {
        var snapshot = Snapshot(seq: 1, collectedAt: now, agentVersion: "test")
        snapshot.host = contribution.host
        snapshot.resources = contribution.resources
        snapshot.instances = contribution.instances.values.sorted { $0.id < $1.id }.map { report in
            var report = report
            if let files = report.files {
                report.files = files.mapValues { FileFingerprint(sha256: $0.sha256, size: $0.size, mtime: 0) }
            }
            return report
        }
        snapshot.collectorErrors = contribution.failures
        var text = String(decoding: snapshot.json.pretty(), as: UTF8.self)
        for dir in ["oscam", "broken"] {
            text = text.replacingAll(id(dir), with: "$ID_" + dir)
        }
        return text.replacingAll(root, with: "$TREE")
    }

    /// Every secret value written into the fixture's OScam files, read with the project's own
    /// parser, plus values the fixture hides in places no rule names (a card number in a
    /// description).
    static func secrets(in dir: String) -> [String] {
        var values: [String] = []
        for file in OScamFile.allCases {
            guard let bytes = readBytes(root + "/" + dir + "/" + file.rawValue) else {
                continue
            }
            values += ConfigDocument(bytes: bytes, file: file, path: file.rawValue).secretValues().map { $0.value.reveal() }
        }
        return values
    }
}

/// A transport for collectors that must not reach the network in a test.
struct RefusingTransport: HTTPTransport {
    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        throw HTTPError(kind: .refused, message: "Failed to connect to 127.0.0.1: Connection refused")
    }
}

/// Answers every request with one canned response and remembers the requests.
final class CannedTransport: HTTPTransport, @unchecked Sendable {
    let status: Int
    let body: [UInt8]
    private(set) var urls: [String] = []
    private(set) var digestUsers: [String] = []

    init(status: Int, body: String) {
        self.status = status
        self.body = Array(body.utf8)
    }

    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        urls.append(request.url)
        digestUsers.append(request.digest?.user ?? "")
        return HTTPResponse(status: status, headers: [], body: body, seconds: 0.012)
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else {
            return self
        }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
