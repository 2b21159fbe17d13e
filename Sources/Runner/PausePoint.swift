#if canImport(Glibc)
import Glibc
#endif

/// Named points in the agent's life where a crash test can freeze it, so that "killed right
/// here" or "the WebIF died right here" is exact rather than a race. With
/// `MYOSICAM_TEST_PAUSE_AT=<name>` the agent prints `paused at <name>` on stderr at that point
/// and stops itself (SIGSTOP); the test then sends SIGKILL, or changes the world and sends
/// SIGCONT. Without the variable this is one comparison and changes nothing.
enum PausePoint {
    static let requested: String? = getenv("MYOSICAM_TEST_PAUSE_AT").map { String(cString: $0) }

    static func reach(_ name: String) {
        guard let requested, requested == name else {
            return
        }
        let line = Array("paused at \(name)\n".utf8)
        _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
        raise(SIGSTOP)
    }
}
