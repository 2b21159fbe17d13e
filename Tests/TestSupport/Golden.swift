import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Golden files: compares `actual` with the file at `path`; with `UPDATE_GOLDEN=1` in the
/// environment it rewrites the file instead and records a failure, so an update is never silent.
public func assertGolden(
    _ actual: [UInt8], path: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    let url = URL(fileURLWithPath: path)
    if getenv("UPDATE_GOLDEN") != nil {
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = try? Data(actual).write(to: url)
        Issue.record("golden file rewritten: \(path) (unset UPDATE_GOLDEN and run again)", sourceLocation: sourceLocation)
        return
    }
    guard let expected = try? Data(contentsOf: url) else {
        Issue.record("golden file missing: \(path) (run with UPDATE_GOLDEN=1 to create it)", sourceLocation: sourceLocation)
        return
    }
    if Array(expected) != actual {
        let shown = String(decoding: actual, as: UTF8.self)
        Issue.record("output differs from golden file \(path):\n\(shown)", sourceLocation: sourceLocation)
    }
}

public func assertGolden(_ actual: String, path: String, sourceLocation: SourceLocation = #_sourceLocation) {
    assertGolden(Array(actual.utf8), path: path, sourceLocation: sourceLocation)
}

/// The directory holding the calling test file's `testdata`.
public func testdataDirectory(_ filePath: String = #filePath) -> String {
    URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("testdata").path
}

/// Reads a whole file; nil when it does not exist.
public func readBytes(_ path: String) -> [UInt8]? {
    (try? Data(contentsOf: URL(fileURLWithPath: path))).map(Array.init)
}

/// Lists a directory's entries, sorted.
public func listDirectory(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

/// A small, seeded, reproducible random generator (SplitMix64) for fuzz-style tests.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
