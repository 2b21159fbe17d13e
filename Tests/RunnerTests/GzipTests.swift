import Foundation
import Platform
import Testing
import TestSupport

/// The gzip encoder's output is checked by an independent decoder: Python's zlib.
@Suite struct GzipTests {
    static func decompressWithPython(_ data: [UInt8]) throws -> [UInt8] {
        let dir = try TestEnvironment.makeTempDir("gzip")
        defer { TestEnvironment.removeTree(dir) }
        try Data(data).write(to: URL(fileURLWithPath: dir + "/in.gz"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c",
                             "import gzip,sys; open(sys.argv[2],'wb').write(gzip.decompress(open(sys.argv[1],'rb').read()))",
                             dir + "/in.gz", dir + "/out"]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let out = readBytes(dir + "/out") else {
            throw TestEnvironmentError("python could not decompress the agent's gzip")
        }
        return out
    }

    static func inputs() -> [(String, [UInt8])] {
        var rng = SeededRandom(seed: 99)
        let random = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var json = "{\"snapshots\":["
        for index in 0..<3000 {
            json += "{\"user\":\"user\(index)\",\"enabled\":\(index % 7 != 0),\"group\":[1,2],\"caid\":[\"0963\",\"098C\"],"
            json += "\"ident\":[\"0963:000000,000001\"],\"expdate\":\"2027-0\(1 + index % 9)-28\"},"
        }
        json += "{}]}"
        return [
            ("empty", []), ("one byte", [0x41]), ("short text", Array("hello hello hello".utf8)),
            ("random", random), ("runs", [UInt8](repeating: 0x61, count: 100_000)),
            ("json", Array(json.utf8)),
            ("long distances", (0..<200_000).map { UInt8(truncatingIfNeeded: ($0 * 7919) % 251) }),
        ]
    }

    @Test func pythonDecompressesEveryInputToTheSameBytes() throws {
        for (name, input) in Self.inputs() {
            let compressed = Gzip.compress(input)
            #expect(try Self.decompressWithPython(compressed) == input, "\(name)")
        }
    }

    @Test func compressesSnapshotShapedJSONWellAndDeterministically() throws {
        let json = try #require(Self.inputs().first { $0.0 == "json" }?.1)
        let compressed = Gzip.compress(json)
        #expect(compressed.count * 5 < json.count, "ratio \(compressed.count) / \(json.count)")
        #expect(Gzip.compress(json) == compressed)
        #expect(Array(compressed.prefix(10)) == [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03])
    }
}
