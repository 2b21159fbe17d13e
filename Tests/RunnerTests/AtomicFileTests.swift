#if canImport(Glibc)
import Glibc
#endif
import Platform
import Testing
import TestSupport
@testable import Runner

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

    /// A process killed between creating its temporary and renaming it leaves the temporary
    /// behind under its own pid, which no later process reuses: the faults part's 300 kills left
    /// two. The daemon removes them at start, holding the state dir's lock.
    @Test func leftoversOfAKilledWriterAreRemovedAndNothingElse() throws {
        let dir = try makeTempDirectory()
        for name in ["state.json", ".state.json.tmp-4242", ".cmd_1.json.tmp-77", ".keep", "lock"] {
            try AtomicFile.write([1], to: dir + "/" + name)
        }
        for sub in ["spool", "commands", "journal", "backup", "backup/osc_1"] {
            #expect(mkdir(dir + "/" + sub, 0o700) == 0)
        }
        try AtomicFile.write([1], to: dir + "/commands/.cmd_2.json.tmp-9")
        try AtomicFile.write([1], to: dir + "/backup/osc_1/.oscam.user.1.cmd_3.tmp-9")
        #expect(AtomicFile.removeLeftovers(in: dir) == 2)
        #expect(listDirectory(dir).sorted() == [".keep", "backup", "commands", "journal", "lock", "spool", "state.json"])
        StateLock.removeLeftovers(dir)
        #expect(listDirectory(dir + "/commands").isEmpty && listDirectory(dir + "/backup/osc_1").isEmpty)
    }
}
