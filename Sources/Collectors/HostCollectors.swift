#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Synchronization

/// `host`: what machine this is (name, OS, kernel, architecture, CPUs, boot time).
public struct HostCollector: Collector {
    public let name = "host"
    public let needs: Set<Capability> = [.procfs]

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        guard let machine = Self.machine(osReleasePath: context.osReleasePath) else {
            throw CollectorError("uname failed: \(String(cString: strerror(errno)))")
        }
        return Contribution(host: HostInfo(
            hostname: machine.hostname, osID: machine.osID, osVersion: machine.osVersion, kernel: machine.kernel,
            arch: machine.arch, cpuCount: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))),
            bootTime: context.procTable.bootTime()))
    }

    /// What uname and os-release say about this machine; shared with registration's `host`.
    public static func machine(osReleasePath: String = "/etc/os-release")
        -> (hostname: String, osID: String, osVersion: String, kernel: String, arch: String)? {
        var names = utsname()
        guard uname(&names) == 0 else {
            return nil
        }
        let os = (try? RealFileSystem().readText(osReleasePath)).map(ProcParsers.osRelease) ?? (id: "", version: "")
        return (field(&names.nodename), os.id, os.version, field(&names.release), field(&names.machine))
    }

    static func field<T>(_ value: inout T) -> String {
        withUnsafeBytes(of: &value) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// `resources`: host CPU use (from two `/proc/stat` readings: the previous cycle's, or one taken
/// a quarter second earlier on the first cycle), memory and load averages.
public final class ResourcesCollector: Collector {
    public let name = "resources"
    public let needs: Set<Capability> = [.procfs]
    private let previous = Mutex<(busy: UInt64, total: UInt64)?>(nil)
    private let firstInterval: Duration

    public init(firstInterval: Duration = .milliseconds(250)) {
        self.firstInterval = firstInterval
    }

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        let fileSystem = RealFileSystem()
        func read(_ name: String) throws(CollectorError) -> String {
            let path = DiscoveryPath.join(context.procRoot, name)
            do {
                return try fileSystem.readText(path)
            } catch {
                throw CollectorError(error.description)
            }
        }
        guard let memory = ProcParsers.memory(try read("meminfo")) else {
            throw CollectorError("\(DiscoveryPath.join(context.procRoot, "meminfo")): no MemTotal line")
        }
        guard let load = ProcParsers.loadAverages(try read("loadavg")) else {
            throw CollectorError("\(DiscoveryPath.join(context.procRoot, "loadavg")): not three load averages")
        }
        var earlier = previous.withLock { $0 }
        if earlier == nil {
            earlier = ProcParsers.cpuTotals(try read("stat"))
            Thread.sleep(firstInterval)
        }
        let now = ProcParsers.cpuTotals(try read("stat"))
        previous.withLock { $0 = now }
        var cpu: Double?
        if let earlier, let now, now.total > earlier.total, now.busy >= earlier.busy {
            cpu = Double(now.busy - earlier.busy) / Double(now.total - earlier.total) * 100
        }
        let totalMB = Double(memory.totalKB) / 1024
        let availableMB = Double(memory.availableKB) / 1024
        return Contribution(resources: Resources(
            cpuPercent: cpu, ramTotalMB: totalMB, ramUsedMB: totalMB - availableMB, ramAvailableMB: availableMB,
            load1: load.0, load5: load.1, load15: load.2))
    }
}

enum Thread {
    static func sleep(_ duration: Duration) {
        var request = timespec(tv_sec: Int(duration.components.seconds),
                               tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }
}

/// `runtime`: for each instance, whether its worker runs, its PID, uptime, CPU and memory.
/// Discovery already decided liveness (a stale pid file or a reused PID is "stopped"); this
/// reads the worker's `/proc/<pid>/stat`. CPU % is over the time since the previous cycle, or
/// over the worker's lifetime on the first.
public final class RuntimeCollector: Collector {
    public let name = "runtime"
    public let needs: Set<Capability> = [.procfs]
    /// Instance id → (worker pid, CPU ticks, monotonic seconds) of the previous cycle.
    private let previous = Mutex<[String: (Int32, UInt64, Double)]>([:])

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        var contribution = Contribution()
        let ticks = Double(max(1, context.procTable.clockTicksPerSecond()))
        let pageKB = Double(max(1, sysconf(Int32(_SC_PAGESIZE)))) / 1024
        let boot = context.procTable.bootTime()
        var seen: [String: (Int32, UInt64, Double)] = [:]
        let monotonic = Self.monotonicSeconds()
        for instance in context.discovery.instances {
            var report = InstanceReport(id: instance.id)
            guard instance.state == .running, let pid = instance.workerPID,
                  let process = context.procTable.process(pid), !process.isDead else {
                report.runtime = RuntimeInfo(state: instance.state == .unknown ? "unknown" : "stopped",
                                             watchdogPID: instance.watchdogPID)
                contribution.instances[instance.id] = report
                continue
            }
            let started = boot.map { Double($0) + Double(process.startTicks) / ticks }
            let uptime = started.map { max(0, Double(context.now) - $0) }
            let cpuTicks = process.utimeTicks &+ process.stimeTicks
            var cpu: Double?
            if let (lastPID, lastTicks, lastTime) = previous.withLock({ $0[instance.id] }), lastPID == pid,
               cpuTicks >= lastTicks, monotonic > lastTime {
                cpu = Double(cpuTicks - lastTicks) / ticks / (monotonic - lastTime) * 100
            } else if let uptime, uptime > 0 {
                cpu = Double(cpuTicks) / ticks / uptime * 100
            }
            seen[instance.id] = (pid, cpuTicks, monotonic)
            report.runtime = RuntimeInfo(
                state: "running", pid: pid, watchdogPID: instance.watchdogPID, uptimeSeconds: uptime.map { Int64($0) },
                cpuPercent: cpu, rssMB: Double(process.rssPages) * pageKB / 1024, threads: process.threads)
            contribution.instances[instance.id] = report
        }
        previous.withLock { $0 = seen }
        return contribution
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
