#if canImport(Glibc)
import Glibc
#endif
import Collectors
import OScam
import Platform
import Testing
import TestSupport

/// `FileCache`: a file is read again whenever it may have changed, and only then.
@Suite struct FileCacheTests {
    static let user = "[account]\nuser = alice\npwd = alice-Secret-1\ncaid = 0963\n"

    /// A config dir with an oscam.user whose last change is `age` seconds old.
    final class Tree {
        let dir: String
        var userPath: String { dir + "oscam.user" }

        init(_ text: String = FileCacheTests.user, age: Int = 60) throws {
            dir = try TestEnvironment.makeTempDir("filecache") + "/"
            try write(text, age: age)
        }

        deinit {
            TestEnvironment.removeTree(dir)
        }

        /// Writes in place (same inode), then sets mtime `age` seconds back. ctime is the
        /// kernel's "now" whatever is asked, so a file is "old" only by waiting; `settle()` does.
        func write(_ text: String, age: Int = 60, keepTimesOf other: stat? = nil) throws {
            let fd = open(userPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            #expect(fd >= 0)
            let bytes = Array(text.utf8)
            #expect(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
            close(fd)
            var times = [timespec(tv_sec: time(nil) - age, tv_nsec: 0), timespec(tv_sec: time(nil) - age, tv_nsec: 0)]
            if let other {
                times = [other.st_atim, other.st_mtim]
            }
            #expect(utimensat(AT_FDCWD, userPath, &times, 0) == 0)
        }

        func info() -> stat {
            var info = stat()
            stat(userPath, &info)
            return info
        }

        var discovery: DiscoveryResult {
            DiscoveryResult(instances: [DiscoveredInstance(
                id: "cache-test", name: "cache", configDir: dir, tempDir: "/tmp/.oscam", pidFile: nil, binary: nil,
                unit: nil, provenance: [], state: .stopped, workerPID: nil, watchdogPID: nil, versionFile: nil,
                versionFilePath: nil)])
        }

        func users(_ cache: FileCache?) -> [String] {
            let files = CollectContext.loadFiles(for: discovery, cache: cache)
            guard case .success(let loaded)? = files["cache-test"]?[.user]?.result else {
                return []
            }
            return (loaded.analysis.accounts ?? []).map(\.user)
        }
    }

    /// ctime only ages by waiting: the one slow step of this suite.
    static func settle() {
        usleep(2_100_000)
    }

    @Test func anUnchangedSettledFileIsReadOnceAndAChangeIsSeenEveryWay() throws {
        let tree = try Tree()
        Self.settle()
        let cache = FileCache()
        #expect(tree.users(cache) == ["alice"])
        #expect(tree.users(cache) == ["alice"])
        #expect(cache.hits == 1)

        // Same size, mtime put back as it was: ctime still moves, and the change is seen.
        let before = tree.info()
        try tree.write(Self.user.replacingOccurrences(of: "alice", with: "bobby"), keepTimesOf: before)
        #expect(tree.info().st_size == before.st_size)
        #expect(tree.info().st_mtim.tv_sec == before.st_mtim.tv_sec)
        #expect(tree.users(cache) == ["bobby"])

        // Just written: read, but not kept, so the next cycle reads it again.
        let hits = cache.hits
        #expect(tree.users(cache) == ["bobby"])
        #expect(cache.hits == hits)

        // Replaced by a rename (a new inode), as editors and the agent itself write.
        let replacement = tree.dir + "oscam.user.new"
        let bytes = Array(Self.user.replacingOccurrences(of: "alice", with: "carol").utf8)
        try AtomicFile.write(bytes, to: replacement)
        #expect(rename(replacement, tree.userPath) == 0)
        #expect(tree.users(cache) == ["carol"])

        // Gone: missing, and its entry with it.
        unlink(tree.userPath)
        #expect(tree.users(cache) == [])
        #expect(cache.count == 0)
    }

    @Test func aFileChangedJustBeforeItWasReadIsReadAgain() throws {
        let tree = try Tree(age: 0)
        let cache = FileCache()
        #expect(tree.users(cache) == ["alice"])
        #expect(tree.users(cache) == ["alice"])
        #expect(cache.hits == 0)
        #expect(cache.count == 0)
    }

    @Test func anInstanceThatIsGoneTakesItsEntriesWithIt() throws {
        let tree = try Tree()
        Self.settle()
        let cache = FileCache()
        _ = tree.users(cache)
        #expect(cache.count == 1)
        _ = CollectContext.loadFiles(for: DiscoveryResult(instances: []), cache: cache)
        #expect(cache.count == 0)
    }

    @Test func withoutACacheEveryCycleReads() throws {
        let tree = try Tree()
        #expect(tree.users(nil) == ["alice"])
        try tree.write(Self.user.replacingOccurrences(of: "alice", with: "dave1"), keepTimesOf: tree.info())
        #expect(tree.users(nil) == ["dave1"])
    }
}
