// The benchmark driver behind `make bench` (bench/run). Not shipped.
//
//   Bench parse FILE [--repeat N]        read an oscam.user the collectors' way, then parse it into
//                                        the document model and build its account view
//   Bench cycle DIR... [--cycles N]      collect → filter → encode over config dirs, N times, as
//         [--no-cache] [--touch FILE]    the daemon does (files unchanged since the last cycle are
//                                        not read again); --no-cache reads every file every cycle;
//                                        --touch rewrites FILE before each cycle (not timed)
//
// Prints one `key=value` line per figure, for bench/run to compare against its peers.
#if canImport(Glibc)
import Glibc
#endif
import Collectors
import OScam
import Pipeline
import Platform

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Peak and current resident set from /proc/self/status, in MB; `anonymous` is the part that is
/// the process's own memory (heap, stacks), the rest is mapped files (the binary and its
/// libraries).
func memory() -> (peak: Double, current: Double, anonymous: Double) {
    let text = (try? RealFileSystem().readText("/proc/self/status")) ?? ""
    func value(_ key: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let number = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            return (number.flatMap { Double($0) } ?? 0) / 1024
        }
        return 0
    }
    return (value("VmHWM:"), value("VmRSS:"), value("RssAnon:"))
}

/// User + system CPU seconds of this process so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

func option(_ name: String, in arguments: [String], default value: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else {
        return value
    }
    return Int(arguments[index + 1]) ?? value
}

/// The value of `--name VALUE`, if given.
func value(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else {
        return nil
    }
    return arguments[index + 1]
}

/// Writes `path` again with the same bytes, as an editor saving it would: its times change.
func rewrite(_ path: String) {
    guard let bytes = Files.read(path, limit: 64 << 20) else {
        return
    }
    _ = try? AtomicFile.write(bytes, to: path)
}

struct NoNetwork: HTTPTransport {
    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        throw HTTPError(kind: .refused, message: "benchmark: no network")
    }
}

func parse(_ arguments: [String]) -> Int32 {
    guard let path = arguments.first else {
        return 64
    }
    let bytes: [UInt8]
    do {
        bytes = try RealFileSystem().readFile(path, limit: 1 << 30)
    } catch {
        print("error=\(error)")
        return 66
    }
    let clock = ContinuousClock()
    let repeats = option("--repeat", in: arguments, default: 5)
    // The collectors' reading first, so that its peak RSS is not the document model's.
    var scanTimes: [Double] = []
    var scanned = 0
    for _ in 0..<repeats {
        let start = clock.now
        scanned = FileAnalysis(scanning: bytes, file: .user, path: path).accounts?.count ?? 0
        scanTimes.append(milliseconds(start.duration(to: clock.now)))
    }
    let scanPeak = memory().peak
    var times: [Double] = []
    var accounts = 0
    for _ in 0..<repeats {
        let start = clock.now
        let document = ConfigDocument(bytes: bytes, file: .user, path: path)
        accounts = document.accounts().value.count
        times.append(milliseconds(start.duration(to: clock.now)))
    }
    guard scanned == accounts else {
        print("error=the scan found \(scanned) accounts, the document \(accounts)")
        return 70
    }
    print("accounts=\(accounts)")
    print("scan_ms_median=\(median(scanTimes))")
    print("scan_peak_rss_mb=\(scanPeak)")
    print("parse_ms_median=\(median(times))")
    print("peak_rss_mb=\(memory().peak)")
    return 0
}

func cycle(_ arguments: [String]) -> Int32 {
    let dirs = arguments.prefix { !$0.hasPrefix("--") }.map { DiscoveryPath.directory($0) ?? $0 }
    let cache: FileCache? = arguments.contains("--no-cache") ? nil : FileCache()
    let touched = value("--touch", in: arguments)
    let cycles = option("--cycles", in: arguments, default: 100)
    let collectors: [any Collector<CollectContext>] = [
        InstancesCollector(), AccountsCollector(), ReadersCollector(), WebIfCollector(), RuntimeCollector(),
    ]
    let pipeline = CollectionCycle(collectors: collectors, timeout: .seconds(30))
    let options = DiscoveryOptions(auto: false, systemdDirs: [], versionDirs: [], extraConfigDirs: dirs,
                                   defaultConfigDirs: [])
    let clock = ContinuousClock()
    var wall: [Double] = []
    var cpu: [Double] = []
    /// CPU milliseconds of each phase of each cycle, by phase.
    var phases: [String: [Double]] = [:]
    var bytes = 0
    var rssAfterFirst = 0.0
    var anonymousAfterFirst = 0.0
    for index in 0..<cycles {
        if let touched, index > 0 {
            rewrite(touched)
        }
        let start = clock.now
        let cpuStart = cpuSeconds()
        var mark = cpuStart
        func phase(_ name: String) {
            let now = cpuSeconds()
            phases[name, default: []].append((now - mark) * 1000)
            mark = now
        }
        // The cycle's values are freed at the end of this scope, before the release below, as in
        // the daemon, whose collection returns before it releases.
        do {
            let discovery = Discovery(options: options).discover()
            phase("discover")
            let files = CollectContext.loadFiles(for: discovery, cache: cache)
            phase("load")
            let context = CollectContext(discovery: discovery, files: files, procTable: LinuxProcTable(), procRoot: "/proc",
                                         http: NoNetwork(), now: 1_795_950_000)
            let (snapshot, _) = pipeline.run(context: context, instanceIDs: discovery.instances.map(\.id),
                                             base: Snapshot(seq: Int64(index + 1), collectedAt: 0, agentVersion: "bench"))
            phase("collect")
            var secrets: [(rule: String, value: String)] = []
            var logins: [(rule: String, value: String)] = []
            for instanceFiles in files.values {
                for loaded in instanceFiles.values {
                    if case .success(let value) = loaded.result {
                        for found in value.analysis.secrets {
                            if found.isLoginName {
                                logins.append((found.rule, found.value.reveal()))
                            } else {
                                secrets.append((found.rule, found.value.reveal()))
                            }
                        }
                    }
                }
            }
            let encoder = SnapshotEncoder(filters: [RedactionFilter(secrets: secrets, wholeValueOnly: logins)],
                                          sha256: { Crypto.sha256Hex($0) })
            phase("filter")
            let encoded = encoder.encode(snapshot).0
            phase("encode")
            bytes = encoded.bytes.count
            if index == 0, let dump = value("--dump", in: arguments) {
                _ = try? AtomicFile.write(encoded.bytes, to: dump)
            }
        }
        // What the daemon does after each collection (Daemon.loop).
        Heap.releaseFreePages()
        MappedCode.release()
        phase("release")
        wall.append(milliseconds(start.duration(to: clock.now)))
        cpu.append((cpuSeconds() - cpuStart) * 1000)
        if index == 0 {
            (_, rssAfterFirst, anonymousAfterFirst) = memory()
        }
    }
    for name in ["discover", "load", "collect", "filter", "encode", "release"] {
        print("phase_cpu_ms_\(name)=\(median(phases[name] ?? []))")
    }
    print("instances=\(dirs.count)")
    print("payload_bytes=\(bytes)")
    print("cycle_wall_ms_first=\(wall.first ?? 0)")
    print("cycle_wall_ms_median=\(median(wall))")
    print("cycle_cpu_ms_median=\(median(cpu))")
    print("cycle_cpu_ms_first=\(cpu.first ?? 0)")
    print("rss_mb_after_first=\(rssAfterFirst)")
    print("rss_mb_after_all=\(memory().current)")
    print("rss_anon_mb_after_first=\(anonymousAfterFirst)")
    print("rss_anon_mb_after_all=\(memory().anonymous)")
    print("peak_rss_mb=\(memory().peak)")
    print("cycles=\(cycles)")
    return 0
}

// As the agent does at start (Sources/Runner/main.swift).
Heap.useOneArena()
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "parse": exit(parse(Array(arguments.dropFirst())))
case "cycle": exit(cycle(Array(arguments.dropFirst())))
default:
    print("usage: Bench parse FILE [--repeat N] | Bench cycle DIR... [--cycles N]")
    exit(64)
}
