import Dispatch
import Synchronization

/// How long one collector took, for `--dry-run`'s report and the debug log.
public struct CollectorTiming: Sendable, Equatable {
    public let name: String
    public let milliseconds: Int
    public let outcome: String
}

/// One collection cycle: every enabled collector in parallel, each on its own thread and with a
/// deadline, their contributions merged into one snapshot; a failing or hanging collector costs
/// only its own part.
public final class CollectionCycle<Context: Sendable>: Sendable {
    public let collectors: [any Collector<Context>]
    public let timeout: Duration
    /// Collectors whose previous call has not returned yet: not started again until it does, so
    /// a collector stuck in a system call cannot pile up threads.
    private let busy = Mutex<Set<String>>([])

    public init(collectors: [any Collector<Context>], timeout: Duration = .seconds(10)) {
        self.collectors = collectors
        self.timeout = timeout
    }

    /// Runs the collectors and assembles the snapshot. `instanceIDs` lists every discovered
    /// instance, so each has an entry even when no enabled collector reports on it.
    public func run(context: Context, instanceIDs: [String], base: Snapshot) -> (Snapshot, [CollectorTiming]) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let results = Mutex<[String: (Result<Contribution, CollectorError>, Int)]>([:])
        let group = DispatchGroup()
        var skipped: [String] = []
        for collector in collectors {
            let name = collector.name
            let started = busy.withLock { $0.insert(name).inserted }
            guard started else {
                skipped.append(name)
                continue
            }
            group.enter()
            DispatchQueue(label: "collector.\(name)").async {
                let start = clock.now
                let result: Result<Contribution, CollectorError>
                do throws(CollectorError) {
                    result = .success(try collector.collect(context, deadline: deadline))
                } catch {
                    result = .failure(error)
                }
                let elapsed = start.duration(to: clock.now)
                let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
                results.withLock { $0[name] = (result, milliseconds) }
                self.busy.withLock { _ = $0.remove(name) }
                group.leave()
            }
        }
        let waitSeconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        _ = group.wait(timeout: .now() + waitSeconds + 0.05)
        let finished = results.withLock { $0 }

        var snapshot = base
        var reports: [String: InstanceReport] = Dictionary(uniqueKeysWithValues: instanceIDs.map { ($0, InstanceReport(id: $0)) })
        var timings: [CollectorTiming] = []
        for collector in collectors {
            let name = collector.name
            if skipped.contains(name) {
                snapshot.collectorErrors.append(CollectorFailure(
                    collector: name, instance: nil, error: "still running from the previous cycle; skipped"))
                timings.append(CollectorTiming(name: name, milliseconds: 0, outcome: "skipped"))
                continue
            }
            guard let (result, milliseconds) = finished[name] else {
                let limit = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
                let shown = limit % 1000 == 0 ? "\(limit / 1000) s" : "\(limit) ms"
                snapshot.collectorErrors.append(CollectorFailure(
                    collector: name, instance: nil, error: "timed out after \(shown)"))
                timings.append(CollectorTiming(name: name, milliseconds: limit, outcome: "timeout"))
                continue
            }
            switch result {
            case .failure(let error):
                snapshot.collectorErrors.append(CollectorFailure(collector: name, instance: nil, error: error.message))
                timings.append(CollectorTiming(name: name, milliseconds: milliseconds, outcome: "error"))
            case .success(let contribution):
                snapshot.host = contribution.host ?? snapshot.host
                snapshot.resources = contribution.resources ?? snapshot.resources
                for (id, part) in contribution.instances {
                    reports[id, default: InstanceReport(id: id)].merge(part)
                }
                for failure in contribution.failures {
                    snapshot.collectorErrors.append(CollectorFailure(
                        collector: name, instance: failure.instance, error: failure.error))
                }
                timings.append(CollectorTiming(
                    name: name, milliseconds: milliseconds, outcome: contribution.failures.isEmpty ? "ok" : "partial"))
            }
        }
        snapshot.instances = reports.values.sorted { $0.id < $1.id }
        return (snapshot, timings)
    }
}

/// Snapshot → filters → deterministic bytes. The dry-run and the HTTPS sink share it, so what
/// `--dry-run` prints is what would be sent, byte for byte.
public struct SnapshotEncoder: Sendable {
    public let filters: [any Filter]
    private let sha256: @Sendable ([UInt8]) -> String

    public init(filters: [any Filter], sha256: @escaping @Sendable ([UInt8]) -> String) {
        self.filters = filters
        self.sha256 = sha256
    }

    /// Applies every filter in order; their counts go into the snapshot's `redaction` member,
    /// which is set after filtering (it holds only rule names and numbers).
    public func encode(_ snapshot: Snapshot) -> (EncodedSnapshot, counts: [String: Int]) {
        let stringFilters = filters.compactMap { $0 as? any StringFilter }
        if stringFilters.count == filters.count {
            // The fast path: the same bytes, written straight from the model.
            let scrub: ((String, String?, inout [String: Int]) -> String)?
            switch stringFilters.count {
            case 0:
                scrub = nil
            case 1:
                let only = stringFilters[0]
                scrub = { text, key, counts in only.scrub(text, key: key, counts: &counts) }
            default:
                scrub = { text, key, counts in stringFilters.reduce(text) { $1.scrub($0, key: key, counts: &counts) } }
            }
            // Written straight into the array that is sent; copied only when the estimate was short.
            var counts: [String: Int] = [:]
            var outgrown: [UInt8]?
            var bytes = [UInt8](unsafeUninitializedCapacity: snapshot.estimatedSize) { storage, initialized in
                var writer = JSONWriter(storage: storage, scrub: scrub)
                snapshot.write(to: &writer)
                counts = writer.counts
                if let count = writer.countInStorage {
                    initialized = count
                } else {
                    outgrown = writer.bytes
                    initialized = 0
                }
            }
            if let outgrown {
                bytes = outgrown
            }
            return (EncodedSnapshot(seq: snapshot.seq, bytes: bytes, sha256: sha256(bytes)), counts)
        }
        return encodeThroughTree(snapshot)
    }

    /// The general path, for filters that change more than strings: build the JSON tree, filter,
    /// encode.
    public func encodeThroughTree(_ snapshot: Snapshot) -> (EncodedSnapshot, counts: [String: Int]) {
        var counts: [String: Int] = [:]
        var value = snapshot.json
        for filter in filters {
            value = filter.apply(value, counts: &counts)
        }
        if case .object(var members) = value {
            members["redaction"] = .object(counts.mapValues { .int(Int64($0)) })
            value = .object(members)
        }
        let bytes = value.encoded()
        return (EncodedSnapshot(seq: snapshot.seq, bytes: bytes, sha256: sha256(bytes)), counts)
    }
}
