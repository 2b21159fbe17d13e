#if canImport(Glibc)
import Glibc
#endif

/// Named points in the agent's life where a crash test can freeze it before sending SIGKILL, so
/// that "killed right here" is exact rather than a race. Set `MYOSICAM_TEST_PAUSE_AT=<name>`; at
/// that point the agent prints `paused at <name>` on stderr and waits for a signal that ends it.
/// Without the variable this is one comparison; it never changes what the agent does otherwise.
enum PausePoint {
    static let requested: String? = getenv("MYOSICAM_TEST_PAUSE_AT").map { String(cString: $0) }

    static func reach(_ name: String) {
        guard let requested, requested == name else {
            return
        }
        let line = Array("paused at \(name)\n".utf8)
        _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
        while true {
            // Only a signal that ends the process gets past this.
            _ = Glibc.pause()
        }
    }
}
