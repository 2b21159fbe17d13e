#if canImport(Glibc)
import Glibc
#endif

// Compiled into every fuzz target (reliability/fuzz/build): how a harness reports a broken
// invariant, and how it reads structured choices out of the fuzzer's bytes.

/// Stops the run with `message` when `condition` is false. libFuzzer treats the abort like any
/// crash: it saves the input under .build-fuzz/artifacts/ and the part fails.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        let line = Array("invariant failed: \(message())\n".utf8)
        _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// Messages reach logs, terminals and the panel: nothing a file or the panel sent may forge a line.
func isOneLine(_ text: String) -> Bool {
    !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
}

/// The fuzzer's bytes as a stream of choices; an exhausted stream answers zeros, so every input
/// decodes to something.
struct FuzzBytes {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: some Collection<UInt8>) {
        self.bytes = Array(bytes)
    }

    var isEmpty: Bool { index >= bytes.count }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func take(_ count: Int) -> [UInt8] {
        let end = min(index + count, bytes.count)
        defer { index = end }
        return Array(bytes[index..<end])
    }

    /// One of `pool` (high bit clear), or up to 63 raw bytes as a string (high bit set), so the
    /// fuzzer reaches both the well-formed names the product expects and arbitrary ones.
    mutating func string(from pool: [String], raw: inout Bool) -> String {
        let choice = byte()
        if choice & 0x80 == 0, !pool.isEmpty {
            return pool[Int(choice) % pool.count]
        }
        raw = true
        return String(decoding: take(Int(choice & 0x3F)), as: UTF8.self)
    }
}

/// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput`.
func fuzzerBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}
