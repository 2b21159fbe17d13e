#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Synchronization
import Testing

// MARK: - Test doubles

/// What the fake collectors are handed.
struct TestContext: Sendable {
    let label: String
}

/// A collector whose behaviour is a closure.
struct FakeCollector: Collector {
    typealias Context = TestContext

    let name: String
    let needs: Set<Capability> = []
    let body: @Sendable (TestContext, ContinuousClock.Instant) throws(CollectorError) -> Contribution

    init(_ name: String,
         body: @escaping @Sendable (TestContext, ContinuousClock.Instant) throws(CollectorError) -> Contribution) {
        self.name = name
        self.body = body
    }

    init(_ name: String, returning contribution: Contribution) {
        self.init(name) { _, _ in contribution }
    }

    func collect(_ context: TestContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        try body(context, deadline)
    }
}

/// A gate a collector waits at until the test opens it, with a bound so a failing test cannot
/// leave a thread blocked for ever.
final class Gate: Sendable {
    private let open = Atomic<Bool>(false)
    private let entered = Atomic<Int>(0)
    private let left = Atomic<Int>(0)

    func pass(maximum: Duration = .seconds(10)) {
        entered.add(1, ordering: .sequentiallyConsistent)
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: maximum)
        while !open.load(ordering: .sequentiallyConsistent) && clock.now < end {
            usleep(1000)
        }
        left.add(1, ordering: .sequentiallyConsistent)
    }

    func openGate() {
        open.store(true, ordering: .sequentiallyConsistent)
    }

    var enteredCount: Int {
        entered.load(ordering: .sequentiallyConsistent)
    }

    var leftCount: Int {
        left.load(ordering: .sequentiallyConsistent)
    }
}

/// Shared mutable state for closures that run on the collectors' threads.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: timeout)
    while clock.now < end {
        if condition() {
            return true
        }
        usleep(1000)
    }
    return condition()
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

// MARK: - Tests

@Suite struct CollectionCycleTests {
    let context = TestContext(label: "ctx")

    func contribution(_ id: String, _ build: (inout InstanceReport) -> Void) -> Contribution {
        var report = InstanceReport(id: id)
        build(&report)
        return Contribution(instances: [id: report])
    }

    @Test func contributionsAreMerged() {
        let runtime = FakeCollector("runtime", returning: contribution("osc_a") { $0.runtime = Samples.runtime })
        let accounts = FakeCollector("accounts", returning: contribution("osc_a") {
            $0.config = ConfigSummary(accountCount: 3)
            $0.accounts = []
        })
        let readers = FakeCollector("readers", returning: contribution("osc_a") {
            $0.config = ConfigSummary(readerCount: 2)
        })
        let host = FakeCollector("host", returning: Contribution(host: Samples.host))
        let resources = FakeCollector("resources", returning: Contribution(resources: Samples.resources))
        let cycle = CollectionCycle(collectors: [runtime, accounts, readers, host, resources], timeout: .seconds(5))

        let (snapshot, timings) = cycle.run(context: context, instanceIDs: ["osc_a", "osc_b"], base: Samples.snapshot())

        var expected = InstanceReport(id: "osc_a")
        expected.runtime = Samples.runtime
        expected.config = ConfigSummary(accountCount: 3, readerCount: 2)
        expected.accounts = []
        #expect(snapshot.instances == [expected, InstanceReport(id: "osc_b")])
        #expect(snapshot.host == Samples.host)
        #expect(snapshot.resources == Samples.resources)
        #expect(snapshot.collectorErrors.isEmpty)
        #expect(snapshot.seq == 7)
        #expect(timings.map(\.name) == ["runtime", "accounts", "readers", "host", "resources"])
        #expect(timings.allSatisfy { $0.outcome == "ok" && $0.milliseconds >= 0 })
    }

    @Test func everyDiscoveredInstanceGetsAnEntrySortedByID() {
        let extra = FakeCollector("x", returning: contribution("osc_z") { $0.runtime = RuntimeInfo(state: "stopped") })
        let cycle = CollectionCycle<TestContext>(collectors: [extra], timeout: .seconds(5))
        let (snapshot, _) = cycle.run(context: context, instanceIDs: ["osc_c", "osc_a", "osc_b"],
                                      base: Samples.snapshot())
        // An id no discovery named is still reported (a collector knew of it).
        #expect(snapshot.instances.map(\.id) == ["osc_a", "osc_b", "osc_c", "osc_z"])
        #expect(snapshot.instances.prefix(3).allSatisfy { $0 == InstanceReport(id: $0.id) })

        let empty = CollectionCycle<TestContext>(collectors: [], timeout: .seconds(5))
        let (bare, timings) = empty.run(context: context, instanceIDs: ["osc_b", "osc_a"], base: Samples.snapshot())
        #expect(bare.instances == [InstanceReport(id: "osc_a"), InstanceReport(id: "osc_b")])
        #expect(timings.isEmpty)
    }

    @Test func baseSnapshotIsKeptWhereNoCollectorSpeaks() {
        var base = Samples.snapshot()
        base.host = Samples.host
        base.collectorErrors = [CollectorFailure(collector: "discovery", instance: nil, error: "earlier")]
        let failing = FakeCollector("broken") { (_, _) throws(CollectorError) -> Contribution in
            throw CollectorError("cannot read /proc/stat")
        }
        let cycle = CollectionCycle(collectors: [failing], timeout: .seconds(5))
        let (snapshot, _) = cycle.run(context: context, instanceIDs: [], base: base)
        #expect(snapshot.host == Samples.host)
        #expect(snapshot.collectorErrors == [
            CollectorFailure(collector: "discovery", instance: nil, error: "earlier"),
            CollectorFailure(collector: "broken", instance: nil, error: "cannot read /proc/stat"),
        ])
    }

    @Test func aThrowingCollectorFailsAlone() {
        let failing = FakeCollector("accounts") { (_, _) throws(CollectorError) -> Contribution in
            throw CollectorError("/etc/oscam/oscam.user: permission denied")
        }
        let working = FakeCollector("runtime", returning: contribution("osc_a") { $0.runtime = Samples.runtime })
        let cycle = CollectionCycle(collectors: [failing, working], timeout: .seconds(5))
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: ["osc_a"], base: Samples.snapshot())

        #expect(snapshot.collectorErrors == [
            CollectorFailure(collector: "accounts", instance: nil, error: "/etc/oscam/oscam.user: permission denied"),
        ])
        #expect(snapshot.instances.first?.runtime == Samples.runtime)
        #expect(timings.map(\.outcome) == ["error", "ok"])
    }

    @Test func perInstanceFailuresCarryTheCollectorsName() {
        let webif = FakeCollector("webif", returning: Contribution(
            instances: ["osc_a": InstanceReport(id: "osc_a")],
            failures: [CollectorFailure(collector: "what the collector wrote", instance: "osc_b", error: "refused")]))
        let cycle = CollectionCycle(collectors: [webif], timeout: .seconds(5))
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: ["osc_a", "osc_b"], base: Samples.snapshot())
        #expect(snapshot.collectorErrors == [CollectorFailure(collector: "webif", instance: "osc_b", error: "refused")])
        #expect(snapshot.instances.map(\.id) == ["osc_a", "osc_b"])
        #expect(timings.first?.outcome == "partial")
    }

    @Test func contextAndDeadlineAreHandedToEveryCollector() {
        let seen = Locked<[String: Double]>([:])
        let clock = ContinuousClock()
        let start = clock.now
        let probe = FakeCollector("probe") { context, deadline in
            seen.withLock { $0[context.label] = seconds(start.duration(to: deadline)) }
            return Contribution()
        }
        let cycle = CollectionCycle(collectors: [probe], timeout: .seconds(3))
        _ = cycle.run(context: TestContext(label: "given"), instanceIDs: [], base: Samples.snapshot())
        let offset = seen.withLock { $0["given"] }
        #expect(offset.map { $0 >= 2.9 && $0 <= 3.5 } == true, "deadline \(String(describing: offset)) s after start")
    }

    @Test func collectorsRunInParallel() {
        // Each waits until both have started: run one after the other, they would time out.
        let started = Locked(0)
        func rendezvous(_ name: String) -> FakeCollector {
            FakeCollector(name) { _, _ in
                started.withLock { $0 += 1 }
                _ = waitUntil(timeout: .seconds(3)) { started.withLock { $0 } >= 2 }
                return Contribution()
            }
        }
        let cycle = CollectionCycle(collectors: [rendezvous("a"), rendezvous("b")], timeout: .seconds(2))
        let clock = ContinuousClock()
        let start = clock.now
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: [], base: Samples.snapshot())
        #expect(start.duration(to: clock.now) < .seconds(1))
        #expect(snapshot.collectorErrors.isEmpty)
        #expect(timings.map(\.outcome) == ["ok", "ok"])
    }

    @Test func aHangingCollectorTimesOutThenIsSkippedUntilItReturns() {
        let gate = Gate()
        let slow = FakeCollector("slow") { _, _ in
            gate.pass()
            return Contribution(host: Samples.host)
        }
        let fast = FakeCollector("fast", returning: contribution("osc_a") { $0.runtime = Samples.runtime })
        let timeout = Duration.milliseconds(300)
        let cycle = CollectionCycle(collectors: [slow, fast], timeout: timeout)
        let clock = ContinuousClock()
        defer { gate.openGate() }

        // Cycle 1: the slow one times out; the cycle returns after the timeout, not after the collector.
        var start = clock.now
        let (first, firstTimings) = cycle.run(context: context, instanceIDs: ["osc_a"], base: Samples.snapshot())
        let elapsed = start.duration(to: clock.now)
        #expect(elapsed >= timeout)
        #expect(elapsed < timeout + .milliseconds(50) + .milliseconds(500), "took \(elapsed)")
        #expect(first.host == nil)
        #expect(first.instances.first?.runtime == Samples.runtime)
        #expect(first.collectorErrors.count == 1)
        #expect(first.collectorErrors.first?.collector == "slow")
        #expect(first.collectorErrors.first?.instance == nil)
        #expect(first.collectorErrors.first?.error.hasPrefix("timed out after") == true)
        #expect(firstTimings.map(\.outcome) == ["timeout", "ok"])

        // Cycle 2: still running, so not started again, and said so.
        start = clock.now
        let (second, secondTimings) = cycle.run(context: context, instanceIDs: ["osc_a"], base: Samples.snapshot())
        #expect(start.duration(to: clock.now) < .milliseconds(250))
        #expect(second.collectorErrors == [
            CollectorFailure(collector: "slow", instance: nil, error: "still running from the previous cycle; skipped"),
        ])
        #expect(secondTimings.first?.name == "slow")
        #expect(secondTimings.first?.milliseconds == 0)
        #expect(secondTimings.first?.outcome == "skipped")
        #expect(secondTimings.last?.outcome == "ok")
        #expect(second.instances.first?.runtime == Samples.runtime)
        #expect(gate.enteredCount == 1)

        // Once the late call returns, the collector runs again.
        gate.openGate()
        #expect(waitUntil { gate.leftCount == 1 })
        var third = first
        var thirdTimings = firstTimings
        let recovered = waitUntil {
            (third, thirdTimings) = cycle.run(context: context, instanceIDs: ["osc_a"], base: Samples.snapshot())
            return thirdTimings.first?.outcome != "skipped"
        }
        #expect(recovered)
        #expect(thirdTimings.map(\.outcome) == ["ok", "ok"])
        #expect(third.host == Samples.host)
        #expect(third.collectorErrors.isEmpty)
    }

    @Test
    func subSecondTimeoutIsReportedAsItWas() {
        let gate = Gate()
        defer { gate.openGate() }
        let slow = FakeCollector("slow") { _, _ in
            gate.pass()
            return Contribution()
        }
        let cycle = CollectionCycle(collectors: [slow], timeout: .milliseconds(200))
        let (snapshot, timings) = cycle.run(context: context, instanceIDs: [], base: Samples.snapshot())
        #expect(snapshot.collectorErrors.first?.error != "timed out after 0 s")
        #expect(timings.first?.milliseconds == 200)
    }
}

// MARK: - Encoder

/// Rewrites one exact string value into another and counts it under `rule`.
struct ReplaceFilter: Filter {
    let name: String
    let from: String
    let to: String

    func apply(_ value: JSONValue, counts: inout [String: Int]) -> JSONValue {
        switch value {
        case .string(from):
            counts[name, default: 0] += 1
            return .string(to)
        case .array(let items):
            return .array(items.map { apply($0, counts: &counts) })
        case .object(let members):
            var result: [String: JSONValue] = [:]
            for (key, member) in members {
                result[key] = apply(member, counts: &counts)
            }
            return .object(result)
        default:
            return value
        }
    }
}

@Suite struct SnapshotEncoderTests {
    /// A stand-in for SHA-256 that shows it was given exactly the encoded bytes.
    static let fakeHash: @Sendable ([UInt8]) -> String = { "fake:\($0.count):\($0.reduce(0) { $0 &+ Int($1) })" }

    func fakeHash(_ bytes: [UInt8]) -> String {
        Self.fakeHash(bytes)
    }

    @Test func withoutFiltersTheBytesAreTheSnapshotsJSON() {
        var snapshot = Samples.snapshot(seq: 42)
        snapshot.host = Samples.host
        let encoder = SnapshotEncoder(filters: [], sha256: Self.fakeHash)
        let (encoded, counts) = encoder.encode(snapshot)
        #expect(encoded.seq == 42)
        #expect(encoded.bytes == snapshot.json.encoded())
        #expect(encoded.sha256 == fakeHash(encoded.bytes))
        #expect(counts.isEmpty)
    }

    @Test func filtersRunInOrderAndTheirCountsBecomeTheRedactionMember() {
        var snapshot = Samples.snapshot()
        snapshot.agentVersion = "x"
        snapshot.redaction = ["stale.rule": 9]
        let xToY = ReplaceFilter(name: "x-to-y", from: "x", to: "y")
        let yToZ = ReplaceFilter(name: "y-to-z", from: "y", to: "z")

        let (forward, forwardCounts) = SnapshotEncoder(filters: [xToY, yToZ], sha256: Self.fakeHash).encode(snapshot)
        #expect(forward.bytes.text == """
            {"agent":{"version":"z"},"collected_at":1700000000,"collector_errors":[],"instances":[],\
            "redaction":{"x-to-y":1,"y-to-z":1},"schema":1,"seq":7}
            """)
        #expect(forwardCounts == ["x-to-y": 1, "y-to-z": 1])

        let (backward, backwardCounts) = SnapshotEncoder(filters: [yToZ, xToY], sha256: Self.fakeHash).encode(snapshot)
        #expect(backward.bytes.text.contains(#""agent":{"version":"y"}"#))
        #expect(backward.bytes.text.contains(#""redaction":{"x-to-y":1}"#))
        #expect(backwardCounts == ["x-to-y": 1])
        #expect(backward.sha256 == fakeHash(backward.bytes))
    }

    @Test func redactionMemberIsSetAfterFiltering() {
        // A filter that would rewrite "1" never sees the counts: they are added afterwards.
        let snapshot = Samples.snapshot()
        let filter = ReplaceFilter(name: "1", from: "1", to: "one")
        let (encoded, _) = SnapshotEncoder(filters: [filter, filter], sha256: Self.fakeHash).encode(snapshot)
        #expect(encoded.bytes.text.contains(#""redaction":{}"#))
    }

    @Test func sameSnapshotSameBytes() {
        var snapshot = Samples.snapshot()
        snapshot.host = Samples.host
        var report = InstanceReport(id: "osc_1")
        report.identity = Samples.identity
        let global = Dictionary(uniqueKeysWithValues: (0..<200).map { ("key\($0)", "v\($0)") })
        report.config = ConfigSummary(global: global)
        snapshot.instances = [report]
        let encoder = SnapshotEncoder(filters: [RedactionFilter(secrets: [(rule: "r", value: "secret1")])],
                                      sha256: Self.fakeHash)
        let first = encoder.encode(snapshot).0
        let second = encoder.encode(snapshot).0
        #expect(first == second)

        // Built in another order, the same value gives the same bytes.
        var rebuilt = snapshot
        var reversed: [String: String] = [:]
        reversed.reserveCapacity(1000)
        for index in (0..<200).reversed() {
            reversed["key\(index)"] = "v\(index)"
        }
        rebuilt.instances[0].config?.global = reversed
        #expect(encoder.encode(rebuilt).0 == first)
    }

    /// The writer starts in the array it was told to expect; a snapshot that outgrows the
    /// estimate moves to memory of its own and must still give the tree encoder's bytes.
    @Test func aSnapshotLargerThanItsEstimateGivesTheSameBytes() {
        var snapshot = Samples.snapshot()
        snapshot.collectorErrors = (0..<60).map { index in
            CollectorFailure(collector: "c\(index)", instance: nil,
                             error: String(repeating: "line \"\(index)\"\n\t\u{1}\u{7F}é ", count: 300))
        }
        let encoder = SnapshotEncoder(filters: [RedactionFilter(secrets: [(rule: "r", value: "line \"7\"")])],
                                      sha256: Self.fakeHash)
        let fast = encoder.encode(snapshot)
        let tree = encoder.encodeThroughTree(snapshot)
        #expect(fast.0.bytes.count > 64 << 10)
        #expect(fast.0 == tree.0)
        #expect(fast.counts == tree.counts && fast.counts["r"] == 300)
    }

    @Test func redactionThroughTheEncoder() throws {
        var snapshot = Samples.snapshot()
        snapshot.agentVersion = "0.1.0 built by hunter22"
        var report = InstanceReport(id: "osc_0123456789abcdef")
        let digest = String(repeating: "0123456789abcdef", count: 4)
        report.files = ["oscam.user": FileFingerprint(sha256: digest, size: 1, mtime: 2)]
        snapshot.instances = [report]
        snapshot.collectorErrors = [CollectorFailure(collector: "readers", instance: nil,
                                                     error: "ATR 3B 9F 21 0E 49 52 44 45 54 4F")]
        let filter = RedactionFilter(secrets: [(rule: "oscam.user:pwd", value: "hunter22")])
        let encoder = SnapshotEncoder(filters: [filter], sha256: Self.fakeHash)
        let (encoded, counts) = encoder.encode(snapshot)
        let text = encoded.bytes.text
        #expect(counts == ["oscam.user:pwd": 1, "pattern:atr": 1])
        #expect(!text.contains("hunter22"))
        #expect(!text.contains("3B 9F"))
        #expect(text.contains(digest))
        #expect(text.contains("osc_0123456789abcdef"))
        #expect(text.contains(#""redaction":{"oscam.user:pwd":1,"pattern:atr":1}"#))
        _ = try ParsedJSON.parse(encoded.bytes)
    }
}
