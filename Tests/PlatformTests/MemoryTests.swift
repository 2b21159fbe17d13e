import Platform
import Testing

@Suite struct MemoryTests {
    @Test(arguments: [
        ("55d0c0a00000-55d0c1a00000 r-xp 00001000 08:01 1234 /usr/bin/myosicam-agent", true),
        ("7f00aa000000-7f00aa100000 r-xp 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6", true),
        ("7f00aa000000-7f00aa100000 r-xp 00000000 08:01 99 /usr/lib/lib with space.so", true),
        ("7f00aa000000-7f00aa100000 r--p 00000000 08:01 99 /usr/lib/libc.so.6", false),
        ("7f00aa000000-7f00aa100000 rw-p 00000000 08:01 99 /usr/lib/libc.so.6", false),
        ("7f00aa000000-7f00aa100000 r-xs 00000000 08:01 99 /dev/shm/shared", false),
        ("7ffc0e5f0000-7ffc0e5f2000 r-xp 00000000 00:00 0 [vdso]", false),
        ("7f00aa000000-7f00aa100000 r-xp 00000000 00:00 0 ", false),
        ("7f00aa000000-7f00aa100000 r-xp 00000000 00:00 0 /memfd:jit (deleted)", false),
        ("7f00aa000fff-7f00aa100000 r-xp 00000000 08:01 99 /usr/lib/odd.so", false),
        ("7f00aa100000-7f00aa000000 r-xp 00000000 08:01 99 /usr/lib/backwards.so", false),
        ("garbage", false),
        ("", false),
    ])
    func onlyPrivateExecutableFileMappingsAreReleased(_ line: String, _ released: Bool) {
        let range = MappedCode.executableFileRange(ArraySlice(line.utf8))
        #expect((range != nil) == released)
    }

    @Test func releasingCodeLeavesTheProcessRunning() {
        // Unmapping this very test's code: the next instruction maps its page again.
        #expect(MappedCode.release() > 0)
        Heap.releaseFreePages()
        #expect((1...1000).reduce(0, +) == 500_500)
        #expect(MappedCode.release() > 0)
    }
}
