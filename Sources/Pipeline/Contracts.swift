/// What a collector needs from the host, so the runner can say why a collector was skipped and
/// tests can check that no collector reaches further than it declares.
public enum Capability: String, Sendable, Hashable, CaseIterable {
    /// Reads the proc table (`/proc` or a fixture root).
    case procfs
    /// Reads OScam's config and runtime files.
    case oscamFiles
    /// Calls OScam's WebIF on loopback.
    case webifNetwork
}

/// A source of one part of the snapshot.
///
/// `collect` runs once per cycle on a thread of its own, so it may block on file or network
/// I/O, but it must give up by `deadline`: the runner stops waiting then, records a timeout, and
/// skips the collector while the late call is still running. Failure is reported by throwing a
/// `CollectorError`: the runner turns it into a `collector_errors` entry and the rest of the
/// snapshot still ships. Failures that concern one instance go into the contribution's
/// `failures` instead, so the other instances keep their data.
public protocol Collector<Context>: Sendable {
    /// What every collector is handed: discovery results and the host's paths (defined by the
    /// module that implements the collectors, so this module stays free of OScam types).
    associatedtype Context: Sendable

    /// The name in the registry and in `/etc/myosicam/collectors.conf`.
    var name: String { get }
    var needs: Set<Capability> { get }

    func collect(_ context: Context, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution
}

/// A collector's failure, in one line that is safe to send and to log: it names the file,
/// endpoint or instance and never carries file content or a response body.
public struct CollectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String {
        message
    }
}

/// What one collector adds to a snapshot. Each field is filled by at most one collector.
public struct Contribution: Sendable, Equatable {
    public var host: HostInfo?
    public var resources: Resources?
    /// Instance id → the parts this collector knows of it.
    public var instances: [String: InstanceReport]
    /// Per-instance failures; the runner fills in the collector's name.
    public var failures: [CollectorFailure]

    public init(host: HostInfo? = nil, resources: Resources? = nil, instances: [String: InstanceReport] = [:],
                failures: [CollectorFailure] = []) {
        self.host = host
        self.resources = resources
        self.instances = instances
        self.failures = failures
    }
}

/// A typed transformation of the snapshot's JSON, applied after collection and before encoding.
public protocol Filter: Sendable {
    var name: String { get }
    /// Returns the filtered value and adds to `counts` how many values each of its rules
    /// changed. Must be deterministic: the same input gives the same output.
    func apply(_ value: JSONValue, counts: inout [String: Int]) -> JSONValue
}

/// Where encoded snapshot batches go.
public protocol Sink: Sendable {
    /// Accepts the encoded snapshots of one batch, oldest first. Returns when the batch was
    /// accepted (written, printed, or acknowledged by the panel); throws when it was not, in
    /// which case the caller keeps the batch.
    func send(_ snapshots: [EncodedSnapshot]) async throws
}

/// A snapshot's exact bytes and their SHA-256, which is what `--dry-run` prints, the sink sends
/// and the heartbeat reports.
public struct EncodedSnapshot: Sendable, Equatable {
    public let seq: Int64
    public let bytes: [UInt8]
    public let sha256: String

    public init(seq: Int64, bytes: [UInt8], sha256: String) {
        self.seq = seq
        self.bytes = bytes
        self.sha256 = sha256
    }
}

extension InstanceReport {
    /// Takes every part `other` has, leaving the parts it lacks.
    public mutating func merge(_ other: InstanceReport) {
        identity = other.identity ?? identity
        if let incoming = other.config {
            var merged = config ?? ConfigSummary()
            merged.merge(incoming)
            config = merged
        }
        files = other.files ?? files
        runtime = other.runtime ?? runtime
        webif = other.webif ?? webif
        accounts = other.accounts ?? accounts
        readers = other.readers ?? readers
    }
}
