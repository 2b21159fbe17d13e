import Collectors
import OScam
import Pipeline
import Platform

/// The start-up self-test of both walls against leaks. A synthetic OScam tree full of marked
/// secrets goes through the real collectors and encoder:
/// 1. without any filter, no marker may appear (the typed model has no place for secrets);
/// 2. with the agent's filters, every marker injected into the payload's strings must be gone
///    (the redaction filter works).
/// If either fails the agent refuses to send anything.
enum Canary {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `collectors` must be fresh instances: some remember the previous cycle.
    static func check(collectors: [any Collector<CollectContext>],
                      encoder makeEncoder: (SecretInventory) -> SnapshotEncoder) -> Failure? {
        let marker = "Canary" + randomLetters(12)
        let secret = { (name: String) in marker + name }
        let conf = """
            [global]
            pidfile = /nonexistent/oscam.pid
            [newcamd]
            port = 10000{\(hexKey(marker))}@0963:000000
            key = \(secret("newcamdkey"))
            [cccam]
            port = 12000
            nodeid = \(secret("nodeid"))
            [webif]
            httpport = 1
            httpuser = \(secret("httpuser"))
            httppwd = \(secret("httppwd"))
            httpallowed = 127.0.0.1
            """
        let user = """
            [account]
            user = canary
            pwd = \(secret("pwd"))
            hostname = \(secret("hostname"))
            description = \(secret("description"))
            """
        let server = """
            [reader]
            label = canary
            protocol = newcamd
            device = \(secret("device")),1
            user = \(secret("readeruser"))
            password = \(secret("password"))
            key = \(secret("readerkey"))
            rsakey = \(secret("rsakey"))
            boxkey = \(secret("boxkey"))
            """
        let configDir = "/nonexistent/myosicam-canary/"
        let instance = DiscoveredInstance.canary(configDir: configDir)
        var files: [OScamFile: LoadedFile] = [:]
        for (file, text) in [(OScamFile.conf, conf), (.user, user), (.server, server)] {
            let bytes = Array(text.utf8)
            let document = ConfigDocument(bytes: bytes, file: file, path: configDir + file.rawValue)
            files[file] = LoadedFile(file: file, path: configDir + file.rawValue, result: .success(LoadedDocument(
                document: document,
                fingerprint: FileFingerprint(sha256: Crypto.sha256Hex(bytes), size: Int64(bytes.count), mtime: 0))))
        }
        let context = CollectContext(
            discovery: DiscoveryResult(instances: [instance]), files: [instance.id: files],
            procTable: EmptyProcTable(), procRoot: "/nonexistent", osReleasePath: "/nonexistent",
            http: LeakyWebIf(body: "{\"oscam\":{\"version\":\"\(secret("webif"))\"},\"client\":[\"\(secret("ip"))\"]}"),
            now: 0)
        let cycle = CollectionCycle(collectors: collectors, timeout: .seconds(5))
        let (snapshot, _) = cycle.run(context: context, instanceIDs: [instance.id], base: Snapshot(seq: 0, collectedAt: 0,
                                                                                                 agentVersion: "canary"))
        // The WebIF "version" is the one field that legitimately echoes a response; the stub puts
        // a marker there, so it is exempt from wall 1 and must be caught by wall 2.
        var unfiltered = snapshot
        for index in unfiltered.instances.indices {
            unfiltered.instances[index].webif?.version = nil
        }
        let plain = String(decoding: unfiltered.json.encoded(), as: UTF8.self)
        if plain.contains(marker) {
            return Failure(description: "a collector put a secret from the OScam files into the payload")
        }
        var secrets = SecretInventory.from(files: [instance.id: files])
        secrets.anywhere.append(("canary:webif", secret("webif")))
        var leaky = snapshot
        // Passwords and keys embedded in a longer string; login names as whole values.
        leaky.collectorErrors.append(CollectorFailure(
            collector: "canary", instance: instance.id,
            error: "leak " + secrets.anywhere.map(\.value).joined(separator: " ")))
        for (index, login) in secrets.wholeValue.enumerated() {
            leaky.collectorErrors.append(CollectorFailure(collector: "canary", instance: "\(index)", error: login.value))
        }
        let (encoded, _) = makeEncoder(secrets).encode(leaky)
        if String(decoding: encoded.bytes, as: UTF8.self).contains(marker) {
            return Failure(description: "the redaction filter let a known secret through")
        }
        return nil
    }

    private static func randomLetters(_ count: Int) -> String {
        let bytes = Crypto.randomBytes(count) ?? Array(repeating: 7, count: count)
        return String(bytes.map { Character(Unicode.Scalar(UInt8(ascii: "a") + $0 % 26)) })
    }

    /// A 28-hex-digit DES key derived from the marker, so the port's `{key}` is valid.
    private static func hexKey(_ marker: String) -> String {
        String(Crypto.sha256Hex(Array(marker.utf8)).prefix(28))
    }
}

/// A proc table with no processes, for the canary.
struct EmptyProcTable: ProcTable {
    func pids() -> [Int32] { [] }
    func process(_ pid: Int32) -> ProcProcess? { nil }
    func bootTime() -> Int64? { nil }
}

/// A WebIF that answers 200 with a body full of markers, to prove nothing but the allowed
/// header fields is taken from it.
struct LeakyWebIf: HTTPTransport {
    let body: String

    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [], body: Array(body.utf8), seconds: 0)
    }
}

extension DiscoveredInstance {
    static func canary(configDir: String) -> DiscoveredInstance {
        DiscoveredInstance(
            id: DiscoveredInstance.id(forConfigDir: configDir), name: "canary", configDir: configDir, tempDir: nil,
            pidFile: nil, binary: nil, unit: nil, provenance: [Provenance(source: .configured, detail: configDir)],
            state: .stopped, workerPID: nil, watchdogPID: nil, versionFile: nil, versionFilePath: nil)
    }
}
