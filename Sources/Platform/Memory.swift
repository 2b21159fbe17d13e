#if canImport(Glibc)
import Glibc
#endif

/// The process's heap.
public enum Heap {
    private typealias Trim = @convention(c) (Int) -> Int32
    private typealias Option = @convention(c) (Int32, Int32) -> Int32

    /// One malloc arena for every thread. glibc gives each thread that allocates its own arena
    /// (up to eight per core), and each arena keeps the peak of what its thread once held; the
    /// agent's threads (collectors on Dispatch, libcurl's resolver) do little at once, so one
    /// arena costs no waiting and keeps the idle daemon's own memory at a few MB. Call before
    /// the second thread starts.
    public static func useOneArena() {
        // M_ARENA_MAX from <malloc.h>, which Swift's Glibc module does not include.
        _ = option?(-8, 1)
    }

    /// glibc's `malloc_trim(0)`: gives the free pages of every malloc arena back to the system,
    /// anywhere in the heap, not only at its top. A collection or a large panel answer otherwise
    /// leaves its peak in the process for good.
    public static func releaseFreePages() {
        _ = trim?(0)
    }

    // Neither is in Swift's Glibc module; both are looked up once, and a libc without them
    // (not glibc) simply skips the tuning.
    private static let trim: Trim? = symbol("malloc_trim").map { unsafeBitCast($0, to: Trim.self) }
    private static let option: Option? = symbol("mallopt").map { unsafeBitCast($0, to: Option.self) }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }
}

/// The pages of code the process has mapped.
///
/// When a process first runs code in a file, the kernel maps not only that page but up to 64 KiB
/// around it (fault-around), from the page cache. Start-up and a collection run code spread
/// over the whole binary and its libraries, so an idle daemon would show several MB of code
/// pages in its RSS that it no longer runs. `release()` unmaps the process's code pages; they
/// stay in the page cache, and the next run of any of that code maps it again, as at start-up.
public enum MappedCode {
    /// Unmaps the pages of every executable file mapping (`r-xp` with a file behind it), and
    /// returns how many bytes those mappings span. Code is never written, so such a mapping
    /// holds only clean page-cache pages: `MADV_DONTNEED` drops the process's view of them and
    /// nothing else. Writable and read-only data, which may hold relocations the loader wrote,
    /// is left alone.
    @discardableResult
    public static func release() -> Int {
        guard let maps = Files.read("/proc/self/maps", limit: 4 << 20) else {
            return 0
        }
        var released = 0
        for line in maps.split(separator: UInt8(ascii: "\n")) {
            guard let range = executableFileRange(line) else {
                continue
            }
            if madvise(UnsafeMutableRawPointer(bitPattern: range.start), range.length, MADV_DONTNEED) == 0 {
                released += range.length
            }
        }
        return released
    }

    /// `start-end r-xp offset dev inode /path` → the range, for a private executable mapping of
    /// a file (inode not 0); nil for anything else, including `[vdso]` and anonymous code.
    public static func executableFileRange(_ line: ArraySlice<UInt8>) -> (start: UInt, length: Int)? {
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        guard fields.count >= 6, fields[1].elementsEqual("r-xp".utf8), !fields[4].elementsEqual("0".utf8),
              fields[5].first == UInt8(ascii: "/") else {
            return nil
        }
        let bounds = fields[0].split(separator: UInt8(ascii: "-"))
        guard bounds.count == 2,
              let start = UInt(String(decoding: bounds[0], as: UTF8.self), radix: 16),
              let end = UInt(String(decoding: bounds[1], as: UTF8.self), radix: 16),
              end > start, start % UInt(getpagesize()) == 0 else {
            return nil
        }
        return (start, Int(end - start))
    }
}
