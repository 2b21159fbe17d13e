#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Platform
import Sinks
import Testing
import TestSupport

@Suite struct SpoolTests {
    static func snapshot(_ seq: Int64, size: Int = 100) -> EncodedSnapshot {
        let bytes = Array("{\"seq\":\(seq),\"pad\":\"".utf8) + [UInt8](repeating: 0x61, count: max(0, size - 20)) + Array("\"}".utf8)
        return EncodedSnapshot(seq: seq, bytes: bytes, sha256: Crypto.sha256Hex(bytes))
    }

    @Test func keepsOrderAndDropsTheOldestWhenFull() throws {
        let spool = SnapshotSpool(directory: try TestEnvironment.makeTempDir("spool") + "/spool", maxBytes: 1000)
        for seq in 1...25 {
            try spool.append(Self.snapshot(Int64(seq)))
        }
        let kept = spool.entries().map(\.seq)
        #expect(kept == Array(16...25).map(Int64.init))
        #expect(spool.counters().dropped == 15)
        #expect(spool.entries().reduce(0) { $0 + $1.size } <= 1000)
        let batch = spool.oldest(4)
        #expect(batch.map(\.seq) == [16, 17, 18, 19])
        #expect(batch[0] == Self.snapshot(16))
        spool.remove(through: 18)
        #expect(spool.entries().first?.seq == 19)
        try spool.reject([19])
        #expect(spool.entries().first?.seq == 20 && spool.counters().rejected == 1)
        // A new spool object over the same directory sees the same state: it survives restarts.
        let reopened = SnapshotSpool(directory: spool.directory, maxBytes: 1000)
        #expect(reopened.entries().count == 6 && reopened.counters().dropped == 15)
    }

    @Test func aSnapshotLargerThanTheLimitIsCountedNotStored() throws {
        let spool = SnapshotSpool(directory: try TestEnvironment.makeTempDir("spool") + "/spool", maxBytes: 50)
        try spool.append(Self.snapshot(1, size: 500))
        #expect(spool.entries().isEmpty && spool.counters().dropped == 1)
    }

    @Test func strayFilesAreIgnoredAndFilesAre0600() throws {
        let spool = SnapshotSpool(directory: try TestEnvironment.makeTempDir("spool") + "/spool", maxBytes: 10_000)
        try spool.append(Self.snapshot(7))
        try TestEnvironment.write("junk", to: spool.directory + "/.tmp-123")
        try TestEnvironment.write("junk", to: spool.directory + "/12.snapshot")
        #expect(spool.entries().map(\.seq) == [7])
        var info = stat()
        #expect(stat(spool.directory + "/0000000000000000007.snapshot", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(spool.directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func batchBodyIsTheSnapshotsBytesJoined() {
        let body = SnapshotSpool.batchBody([Self.snapshot(1, size: 20), Self.snapshot(2, size: 20)])
        #expect(String(decoding: body, as: UTF8.self) == "{\"snapshots\":[{\"seq\":1,\"pad\":\"\"},{\"seq\":2,\"pad\":\"\"}]}")
    }
}
