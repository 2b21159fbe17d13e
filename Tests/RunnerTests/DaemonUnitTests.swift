import Pipeline
import Testing
@testable import Runner

@Suite struct DaemonUnitTests {
    @Test func backoffDoublesFromOneSecondToFiveMinutesWithJitter() {
        var backoff = Backoff()
        let delays = (0..<14).map { _ in backoff.next() }
        let bases: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300, 300]
        for (delay, base) in zip(delays, bases) {
            #expect(delay >= base * 0.75 && delay <= base * 1.25, "\(delay) for base \(base)")
        }
        // Jitter: a hundred agents do not retry in lock step.
        let firsts = Set((0..<100).map { _ -> Int in
            var fresh = Backoff()
            return Int(fresh.next() * 1000)
        })
        #expect(firsts.count > 50)
    }

    @Test func revocationNeedsTenRejectionsOverTenMinutes() {
        var tracker = RevocationTracker()
        // Ten in a minute: not yet.
        for second in 0..<10 {
            let revoked = tracker.unsignedRejection(at: 1000 + Int64(second) * 6)
            #expect(!revoked)
        }
        // The run goes on past ten minutes: revoked.
        let revoked = tracker.unsignedRejection(at: 1000 + 600)
        #expect(revoked)
        // A verified answer breaks the run; it starts over.
        tracker.verified()
        for minute in 0..<9 {
            let early = tracker.unsignedRejection(at: 5000 + Int64(minute) * 120)
            #expect(!early)
        }
        let late = tracker.unsignedRejection(at: 5000 + 9 * 120)
        #expect(late)
    }
}

@Suite struct SizeLimitTests {
    static func snapshot(accounts: Int) -> Snapshot {
        var snapshot = Snapshot(seq: 1, collectedAt: 1, agentVersion: "t")
        var report = InstanceReport(id: "osc_1")
        report.accounts = (0..<accounts).map {
            AccountInfo(user: "user\($0)", enabled: true, groups: [1], caids: ["0963"], idents: [], expdate: nil)
        }
        report.readers = [ReaderInfo(label: "r", protocolName: "cccam", enabled: true, groups: [], caids: [], idents: [],
                                     deviceKind: "network")]
        snapshot.instances = [report]
        return snapshot
    }

    @Test func anOversizedSnapshotIsCutWithTheFullCounts() {
        let encoder = Collection.encoder(secrets: SecretInventory())
        let (cut, encoded, _) = Collection.fit(Self.snapshot(accounts: 1000), encoder: encoder, limit: 20_000)
        #expect(encoded.bytes.count <= 20_000)
        #expect(cut.truncated == Truncation(accounts: 1000, readers: 1))
        let kept = cut.instances[0].accounts?.count ?? 0
        #expect(kept > 0 && kept < 1000)
        #expect(String(decoding: encoded.bytes, as: UTF8.self).contains("\"truncated\":{\"accounts_total\":1000"))
        let (same, small, _) = Collection.fit(Self.snapshot(accounts: 3), encoder: encoder, limit: 20_000)
        #expect(same.truncated == nil && small.bytes == encoder.encode(Self.snapshot(accounts: 3)).0.bytes)
    }

    @Test func batchesStayWithinFourMiB() {
        let big = EncodedSnapshot(seq: 1, bytes: [UInt8](repeating: 0x20, count: 3 << 20), sha256: "")
        let small = EncodedSnapshot(seq: 2, bytes: [UInt8](repeating: 0x20, count: 100), sha256: "")
        #expect(Daemon.batch([big, big, small]).count == 1)
        #expect(Daemon.batch([small, small, big]).count == 3)
        #expect(Daemon.batch(Array(repeating: small, count: 16)).count == 16)
    }
}
