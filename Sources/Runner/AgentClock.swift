#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Platform

/// The agent's two clocks: wall time in Unix seconds (timestamps, expiry, the revocation
/// window) and monotonic seconds (every interval and back-off).
///
/// For tests only: with `MYOSICAM_TEST_CLOCK_FILE=<path>` the agent adds the offsets in that
/// file — lines `wall=<seconds>` and `monotonic=<seconds>`, read at every call — to these
/// clocks, so that a test can let fifteen minutes pass, or make the wall clock jump, without
/// waiting and without touching the machine's clock. Waits then last at most 0.2 s at a time, so
/// a moved clock is noticed at once. Without the variable this is one comparison and changes
/// nothing; the daemon logs a warning at start when it is set.
enum AgentClock {
    static let testFile: String? = getenv("MYOSICAM_TEST_CLOCK_FILE").map { String(cString: $0) }
        .flatMap { $0.isEmpty ? nil : $0 }

    static func wallNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) + testOffsets().wall
    }

    static func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + Double(testOffsets().monotonic)
    }

    /// Waits until `semaphore` is signalled (true) or `seconds` of monotonic time passed (false).
    static func wait(_ semaphore: DispatchSemaphore, seconds: Double) -> Bool {
        guard testFile != nil else {
            return semaphore.wait(timeout: .now() + max(0, seconds)) == .success
        }
        let deadline = monotonic() + seconds
        while true {
            let left = deadline - monotonic()
            if left <= 0 {
                return false
            }
            if semaphore.wait(timeout: .now() + min(left, 0.2)) == .success {
                return true
            }
        }
    }

    private static func testOffsets() -> (wall: Int64, monotonic: Int64) {
        guard let testFile, let bytes = Files.read(testFile, limit: 256) else {
            return (0, 0)
        }
        var offsets: (wall: Int64, monotonic: Int64) = (0, 0)
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int64(String(parts[1]).trimmed) else {
                continue
            }
            switch String(parts[0]).trimmed {
            case "wall": offsets.wall = value
            case "monotonic": offsets.monotonic = value
            default: break
            }
        }
        return offsets
    }
}

/// The current wall-clock time in Unix seconds.
func unixNow() -> Int64 {
    AgentClock.wallNow()
}
