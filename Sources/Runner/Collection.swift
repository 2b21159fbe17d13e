#if canImport(Glibc)
import Glibc
#endif
import Collectors
import OScam
import Pipeline
import Platform

/// One agent's way of collecting: discovery from its config, the enabled collectors (kept
/// across cycles, since some remember the previous cycle), the redaction filter built from the
/// files of this cycle, and the shared encoder.
final class Collection: Sendable {
    let config: AgentConfig
    let enabled: [String]
    let cycle: CollectionCycle<CollectContext>
    let http: any HTTPTransport
    let extraSecrets: [(rule: String, value: String)]
    /// Unchanged files are not read again from one cycle to the next.
    let fileCache = FileCache()

    init(config: AgentConfig, enabled: [String], http: any HTTPTransport = CurlTransport(),
         extraSecrets: [(rule: String, value: String)] = [], timeout: Duration = .seconds(10)) {
        self.config = config
        self.enabled = enabled
        self.http = http
        self.extraSecrets = extraSecrets
        cycle = CollectionCycle(collectors: Registry.all.filter { enabled.contains($0.name) }.map { $0.make() },
                                timeout: timeout)
    }

    var discoveryOptions: DiscoveryOptions {
        Self.discoveryOptions(config)
    }

    static func discoveryOptions(_ config: AgentConfig) -> DiscoveryOptions {
        DiscoveryOptions(
            auto: config.autoDiscovery, procRoot: config.procRoot, systemdDirs: config.systemdDirs,
            versionDirs: config.versionDirs, extraConfigDirs: config.configDirs,
            defaultConfigDirs: config.autoDiscovery ? DiscoveryOptions.standardDefaultConfigDirs : [])
    }

    func discover() -> DiscoveryResult {
        Self.discover(config)
    }

    static func discover(_ config: AgentConfig) -> DiscoveryResult {
        Discovery(options: discoveryOptions(config), pidfileSetting: pidfileSetting).discover()
    }

    /// `[global] pidfile` of the oscam.conf in `configDir`, for discovery's pid-file choice.
    @Sendable static func pidfileSetting(_ configDir: String) -> String? {
        let path = DiscoveryPath.join(configDir, OScamFile.conf.rawValue)
        guard let bytes = try? RealFileSystem().readFile(path, limit: 16 << 20) else {
            return nil
        }
        let value = ConfigDocument(bytes: bytes, file: .conf, path: path).value("pidfile", inSection: "global")
        return value?.isEmpty == false ? value : nil
    }

    struct Outcome {
        let discovery: DiscoveryResult
        /// As collected, before any cut to fit the size limit (`encoded` is the fitted one).
        let snapshot: Snapshot
        let encoded: EncodedSnapshot
        let redactionCounts: [String: Int]
        let timings: [CollectorTiming]
        /// The encoder built from this cycle's files, to encode the snapshot again (with its
        /// final seq) exactly the same way.
        let encoder: SnapshotEncoder
    }

    /// A collection before encoding: the snapshot and the encoder built from its files.
    struct Gathered {
        let discovery: DiscoveryResult
        let snapshot: Snapshot
        let timings: [CollectorTiming]
        let encoder: SnapshotEncoder

        /// The SHA-256 of the snapshot's `changeView`: equal for two collections between which
        /// nothing but the moving figures changed. Cheap: the view has no account lists.
        var changeHash: String {
            encoder.encode(snapshot.changeView).0.sha256
        }
    }

    /// Discovery, file loading, collectors; the encoder with this cycle's secrets.
    func gather(seq: Int64, now: Int64) -> Gathered {
        let discovery = discover()
        // Instances found, not yet read: where a test stops or restarts OScam "mid-collection".
        PausePoint.reach("collect:discovered")
        let files = CollectContext.loadFiles(for: discovery, cache: fileCache)
        let context = CollectContext(
            discovery: discovery, files: files, procTable: LinuxProcTable(root: config.procRoot),
            procRoot: config.procRoot, http: http, now: now)
        let base = Snapshot(seq: seq, collectedAt: now, agentVersion: AgentVersion.current)
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: discovery.instances.map(\.id), base: base)
        let encoder = Self.encoder(secrets: SecretInventory.from(files: files, extra: extraSecrets))
        return Gathered(discovery: discovery, snapshot: snapshot, timings: timings, encoder: encoder)
    }

    /// Discovery, file loading, collectors, filters, encoding.
    func collect(seq: Int64, now: Int64) -> Outcome {
        let gathered = gather(seq: seq, now: now)
        let (_, encoded, counts) = Self.fit(gathered.snapshot, encoder: gathered.encoder)
        return Outcome(discovery: gathered.discovery, snapshot: gathered.snapshot, encoded: encoded,
                       redactionCounts: counts, timings: gathered.timings, encoder: gathered.encoder)
    }

    /// The largest snapshot the panel takes: 4 MiB per request body, less the batch wrapper.
    static let maxSnapshotBytes = (4 << 20) - 32

    /// PANEL-API.md "Snapshots": a snapshot over 4 MiB is sent with its account and reader lists
    /// cut down and `truncated` set to the full counts. Lists are halved until it fits.
    static func fit(_ snapshot: Snapshot, encoder: SnapshotEncoder, limit: Int = maxSnapshotBytes)
        -> (Snapshot, EncodedSnapshot, [String: Int]) {
        var (encoded, counts) = encoder.encode(snapshot)
        guard encoded.bytes.count > limit else {
            return (snapshot, encoded, counts)
        }
        let accounts = snapshot.instances.reduce(0) { $0 + ($1.accounts?.count ?? 0) }
        let readers = snapshot.instances.reduce(0) { $0 + ($1.readers?.count ?? 0) }
        var cut = snapshot
        cut.truncated = Truncation(accounts: accounts, readers: readers)
        var keep = max(accounts, readers)
        repeat {
            keep /= 2
            for index in cut.instances.indices {
                if let list = snapshot.instances[index].accounts {
                    cut.instances[index].accounts = Array(list.prefix(keep))
                }
                if let list = snapshot.instances[index].readers {
                    cut.instances[index].readers = Array(list.prefix(keep))
                }
            }
            (encoded, counts) = encoder.encode(cut)
        } while encoded.bytes.count > limit && keep > 0
        return (cut, encoded, counts)
    }

    static func encoder(secrets: SecretInventory) -> SnapshotEncoder {
        SnapshotEncoder(filters: [RedactionFilter(secrets: secrets.anywhere, wholeValueOnly: secrets.wholeValue)],
                        sha256: { Crypto.sha256Hex($0) })
    }
}

enum AgentVersion {
    static let current = "0.1.0"
}
