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
