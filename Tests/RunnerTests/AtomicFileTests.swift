#if canImport(Glibc)
import Glibc
#endif
import Platform
import Testing
import TestSupport

@Suite struct AtomicFileTests {
    @Test func replacesContentWithTheGivenModeAndLeavesNoTemporary() throws {
        let dir = try makeTempDirectory()
        let path = dir + "/state.json"
        try AtomicFile.write(Array("old".utf8), to: path)
        let previous = umask(0)
        defer { umask(previous) }
        try AtomicFile.write(Array("new".utf8), to: path, mode: 0o600)
        #expect(readBytes(path) == Array("new".utf8))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(listDirectory(dir) == ["state.json"])
    }

    @Test func aFailedWriteLeavesTheOldFile() throws {
        let dir = try makeTempDirectory()
        let path = dir + "/state.json"
        try AtomicFile.write(Array("old".utf8), to: path)
        // The target is a directory now: rename must fail, and the temporary must be gone.
        let blocked = dir + "/blocked"
        #expect(mkdir(blocked, 0o700) == 0)
        #expect(mkdir(blocked + "/x", 0o700) == 0)
        #expect(throws: AtomicFile.Error.self) { try AtomicFile.write(Array("new".utf8), to: blocked) }
        #expect(readBytes(path) == Array("old".utf8))
        #expect(listDirectory(dir).sorted() == ["blocked", "state.json"])
        #expect(throws: AtomicFile.Error.self) { try AtomicFile.write([1], to: dir + "/missing/dir/file") }
    }
}
