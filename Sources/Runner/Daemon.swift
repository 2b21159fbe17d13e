#if canImport(Glibc)
import Glibc
#endif
import Collectors
import Dispatch
import FoundationEssentials
import OScam
import Pipeline
import Platform
import Sinks
import Synchronization

/// `run`: the daemon. One thread, one loop: register if needed, then heartbeat every interval
/// (±10 % jitter), collect a snapshot at start, whenever the content changed at the snapshot
/// interval and at least hourly, spool it, and deliver the spool in order in batches of 16.
/// Every failure backs off (1 s doubling to 5 min, with jitter) and is logged once per change of
/// state, not per try. SIGTERM ends it within 2 s (the transfer in flight is abandoned; every
/// write is atomic); SIGHUP re-reads the collector enable list. It never listens on a socket.
final class Daemon: @unchecked Sendable {
    // The loop's state is touched only by the loop's own thread; signals only set the atomics.
    let options: Agent.Options
    let logger: Logger
    private var setup: Setup.Loaded
    private let cancel = CancelFlag()
    private let terminate = Atomic<Bool>(false)
    private let reload = Atomic<Bool>(false)
    /// `state.status == .revoked`, for the command channel's threads.
    private let revoked = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private var signalSources: [DispatchSourceSignal] = []
    private let started = unixNow()
    private let startedMonotonic = monotonic()

    private var state: AgentState
    private let store: StateStore
    private let spool: SnapshotSpool
    private var client: PanelClient?
    private var channel: CommandChannel?
    /// 0: none; 1: a command changed something; 2: `resync` (send even if unchanged).
    private let snapshotRequest = Atomic<Int>(0)
    private var collection: Collection

    private var heartbeatInterval: Double = 60
    private var snapshotInterval: Double = 300
    private var nextHeartbeat = 0.0
    private var nextSnapshot = 0.0
    private var nextFlush = 0.0
    private var heartbeatBackoff = Backoff()
    private var flushBackoff = Backoff()
    private var lastContentHash: String?
    private var lastSnapshotAt = -Double.infinity
    private var lastAcknowledged: (seq: Int64, sentAt: Int64, sha256: String)?
    private var instanceCounts = (total: 0, running: 0)
    private var revocation = RevocationTracker()
    private var reported: [String: String] = [:]
    private let notifier = SystemdNotifier()
    private lazy var statusBoard = StatusBoard(directory: setup.config.stateDir)

    static let maxBatch = 16
    static let hourly = 3600.0
    static let revokedRetry = 900.0

    init(options: Agent.Options, setup: Setup.Loaded, state: AgentState, logger: Logger) {
        self.options = options
        self.setup = setup
        self.state = state
        self.logger = logger
        store = StateStore(directory: setup.config.stateDir)
        spool = SnapshotSpool(directory: setup.config.stateDir + "/spool", maxBytes: setup.config.spoolMaxBytes)
        collection = Collection(config: setup.config, enabled: setup.enabled, http: CurlTransport(cancelled: cancel))
    }

    // MARK: - Entry

    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        let logger = Setup.logger(setup.config, output)
        guard setup.problems.isEmpty else {
            setup.problems.forEach { logger.error("configuration problem", [("at", $0.description)]) }
            return Exit.config
        }
        if getuid() == 0 && !options.allowRoot {
            logger.error("refusing to run as root: the agent runs as its own unprivileged user (use --allow-root "
                + "only for a test)")
            return Exit.config
        }
        if let status = StateLock.acquire(setup.config.stateDir, logger: logger) {
            return status
        }
        // Holding the lock, no other agent writes here: half-made files of a killed one can go.
        StateLock.removeLeftovers(setup.config.stateDir)
        if let failure = Canary.check(collectors: Registry.all.map { $0.make() }, encoder: Collection.encoder) {
            logger.error("canary self-test failed; refusing to send anything", [("reason", failure.description)])
            return Exit.software
        }
        let daemon = Daemon(options: options, setup: setup, state: AgentState(status: .pending, secret: []),
                            logger: logger)
        return daemon.main()
    }

    private func main() -> Int32 {
        installSignals()
        logger.info("starting", [("version", AgentVersion.current), ("panel", setup.config.panelURL),
                                 ("collectors", setup.enabled.joined(separator: ","))])
        if AgentClock.testFile != nil {
            logger.warning("MYOSICAM_TEST_CLOCK_FILE is set: the agent's clocks follow a test file; never set it in "
                + "production")
        }
        guard let registered = registerUntilDone() else {
            return terminate.load(ordering: .relaxed) ? Exit.ok : Exit.config
        }
        state = registered
        revoked.store(state.status == .revoked, ordering: .relaxed)
        client = makeClient()
        startCommandChannel()
        notifier.send("READY=1")
        loop()
        notifier.send("STOPPING=1")
        logger.info("stopped", [("reason", "SIGTERM")])
        return Exit.ok
    }

    private func makeClient() -> PanelClient {
        let signer = PanelSigner(serverID: state.serverID ?? "", secret: state.secret)
        return PanelClient(baseURL: setup.config.panelURL, transport: CurlTransport(cancelled: cancel, reuseConnections: true),
                           tls: .verify(caFile: setup.config.caFile, pin: setup.config.pinSHA256), signer: signer,
                           clockOffset: state.clockOffset, clock: unixNow)
    }

    private func startCommandChannel() {
        let config = setup.config
        let channel = CommandChannel(CommandChannel.Dependencies(
            config: config, pollClient: makeClient(), resultClient: makeClient(), logger: logger,
            http: CurlTransport(cancelled: cancel), discover: { Collection.discover(config) },
            procTable: LinuxProcTable(root: config.procRoot),
            requestSnapshot: { [self] force in
                let wanted = force ? 2 : 1
                _ = snapshotRequest.max(wanted, ordering: .relaxed)
                wake.signal()
            },
            isTerminating: { [self] in terminate.load(ordering: .relaxed) },
            isRevoked: { [self] in revoked.load(ordering: .relaxed) }))
        self.channel = channel
        channel.start()
    }

    // MARK: - Registration

    /// Registers (or loads the registration); retries with back-off while the panel is away.
    private func registerUntilDone() -> AgentState? {
        var backoff = Backoff()
        while !terminate.load(ordering: .relaxed) {
            do {
                if let existing = try store.load(), existing.status != .pending {
                    // A crash between saving the registration and deleting the token left it.
                    Register.discardSpentToken(setup.config)
                    return existing
                }
            } catch {
                logger.error(error.description)
                return nil
            }
            switch Register.register(config: setup.config, transport: CurlTransport(cancelled: cancel), logger: logger) {
            case .registered(let serverID, let already):
                logger.info(already ? "registered earlier" : "registered", [("server_id", serverID)])
                continue
            case .rejected(let message), .failed(let message):
                logger.error(message)
                return nil
            case .unavailable(let message):
                report("register", "unavailable", .warning, message)
                sleep(backoff.next())
            }
        }
        return nil
    }

    // MARK: - Loop

    private func loop() {
        let now = Self.monotonic()
        nextHeartbeat = now
        nextSnapshot = now
        nextFlush = now
        while !terminate.load(ordering: .relaxed) {
            if reload.exchange(false, ordering: .relaxed) {
                reloadCollectors()
            }
            let time = Self.monotonic()
            let requested = snapshotRequest.exchange(0, ordering: .relaxed)
            var collected = false
            if time >= nextSnapshot || requested > 0 {
                snapshot(force: requested == 2)
                nextSnapshot = Self.monotonic() + snapshotInterval
                collected = true
            }
            if time >= nextFlush {
                flush()
            }
            if time >= nextHeartbeat {
                heartbeat()
            }
            if collected {
                // A collection's peak (every account of every instance, the payload) is freed,
                // and the code it ran is not needed until the next one (docs/performance.md).
                Heap.releaseFreePages()
                MappedCode.release()
            }
            notifier.watchdog()
            let next = [nextHeartbeat, nextSnapshot, spool.entries().isEmpty ? Double.infinity : nextFlush,
                        notifier.nextPing].min() ?? (Self.monotonic() + 1)
            sleep(max(0, min(next - Self.monotonic(), 60)))
        }
    }

    private func sleep(_ seconds: Double) {
        guard !terminate.load(ordering: .relaxed) else {
            return
        }
        _ = AgentClock.wait(wake, seconds: seconds)
    }

    private func reloadCollectors() {
        let fresh = Setup.load(options)
        guard fresh.problems.isEmpty else {
            fresh.problems.forEach { logger.error("configuration problem; keeping the previous collectors", [("at", $0.description)]) }
            return
        }
        setup = fresh
        collection = Collection(config: fresh.config, enabled: fresh.enabled, http: CurlTransport(cancelled: cancel))
        lastContentHash = nil
        logger.info("collector enable list re-read", [("collectors", fresh.enabled.joined(separator: ","))])
    }

    // MARK: - Snapshots

    /// Collects; spools a new snapshot when the content changed, at start, at least hourly, and
    /// when forced (`resync`).
    private func snapshot(force: Bool = false) {
        let probe = collection.gather(seq: 0, now: 0)
        instanceCounts = (probe.discovery.instances.count, probe.discovery.instances.filter { $0.state == .running }.count)
        // Not the payload's hash: the host's load and each OScam's CPU move between any two
        // collections, and would make every interval's snapshot "changed" (docs/panel-link.md).
        let contentHash = probe.changeHash
        let due = force || lastContentHash != contentHash || Self.monotonic() - lastSnapshotAt >= Self.hourly
        guard due else {
            return
        }
        var next = state
        next.snapshotSeq += 1
        do {
            // The number is taken durably before the snapshot exists: a crash never reuses it.
            try store.save(next)
        } catch {
            report("state", "unwritable", .error, error.description)
            return
        }
        state = next
        var snapshot = probe.snapshot
        snapshot.seq = state.snapshotSeq
        snapshot.collectedAt = unixNow()
        let (_, encoded, _) = Collection.fit(snapshot, encoder: probe.encoder)
        do {
            try spool.append(encoded)
            report("spool", "ok", .info, "snapshot spooled")
        } catch {
            report("spool", error.isNoSpace ? "disk_full" : "unwritable", .error, error.description)
        }
        lastContentHash = contentHash
        lastSnapshotAt = Self.monotonic()
        logger.debug("snapshot collected", [("seq", String(encoded.seq)), ("bytes", String(encoded.bytes.count)),
                                           ("sha256", encoded.sha256)])
        nextFlush = min(nextFlush, Self.monotonic())
    }

    /// Delivers spooled snapshots, oldest first, 16 at a time.
    private func flush() {
        guard let client else {
            return
        }
        while !terminate.load(ordering: .relaxed) {
            let batch = Self.batch(spool.oldest(Self.maxBatch))
            guard let last = batch.last else {
                return
            }
            do throws(PanelClient.Failure) {
                let reply = try client.post("/snapshots", body: SnapshotSpool.batchBody(batch))
                noteVerified()
                switch reply.status {
                case 200:
                    // Only `{"accepted": n}` for the whole batch counts as delivered; anything
                    // else keeps the batch for another try (the panel de-duplicates by seq).
                    guard case .object(let members)? = reply.json, case .int(let accepted)? = members["accepted"],
                          accepted == Int64(batch.count) else {
                        failFlush("the panel's answer to a snapshot batch is not {\"accepted\": \(batch.count)}")
                        return
                    }
                    spool.remove(through: last.seq)
                    lastAcknowledged = (last.seq, unixNow(), last.sha256)
                    flushBackoff = Backoff()
                    report("snapshots", "ok", .info, "snapshots delivered",
                           [("through_seq", String(last.seq)), ("sha256", last.sha256)])
                case 401, 429, 500...599:
                    failFlush("panel answered HTTP \(reply.status)" + (reply.errorName.map { " (\($0))" } ?? ""))
                    return
                default:
                    // The panel will never take these: drop one bad item, not the spool.
                    let rejected = batch.count == 1 ? [last.seq] : [batch[0].seq]
                    try? spool.reject(rejected)
                    report("snapshots", "rejected:\(reply.errorName ?? String(reply.status))", .warning,
                           "the panel refused a snapshot; it was dropped and counted",
                           [("error", reply.errorName ?? String(reply.status))])
                }
            } catch {
                noteFailure(error)
                failFlush(error.description)
                return
            }
        }
    }

    /// The oldest snapshots whose batch body stays within 4 MiB (before compression, as the panel
    /// checks it after gunzip too); always at least one.
    static func batch(_ oldest: [EncodedSnapshot]) -> [EncodedSnapshot] {
        var size = 16
        var batch: [EncodedSnapshot] = []
        for snapshot in oldest {
            size += snapshot.bytes.count + 1
            if !batch.isEmpty && size > 4 << 20 {
                break
            }
            batch.append(snapshot)
        }
        return batch
    }

    private func failFlush(_ message: String) {
        let delay = flushBackoff.next()
        nextFlush = Self.monotonic() + (isRevoked ? Self.revokedRetry : delay)
        report("snapshots", "failing", .warning, "snapshot delivery failed; spooled snapshots are kept",
               [("error", message), ("spooled", String(spool.entries().count))])
    }

    // MARK: - Heartbeat

    private func heartbeat() {
        guard let client else {
            return
        }
        var next = state
        next.heartbeatSeq += 1
        do {
            try store.save(next)
        } catch {
            report("state", "unwritable", .error, error.description)
        }
        state = next
        let counters = spool.counters()
        let results = channel?.spoolCounts ?? (pending: 0, rejected: 0)
        let agent: JSONValue = .members([
            ("version", .string(AgentVersion.current)), ("started_at", .int(started)),
            ("uptime_s", .int(Int64(Self.monotonic() - startedMonotonic))),
            ("rss_mb", .fixed(Fixed(ProcessUsage.rssMB()))),
            ("cpu_percent", .fixed(Fixed(ProcessUsage.cpuPercent(since: startedMonotonic)))),
        ])
        let instances: JSONValue = .members([("total", .int(Int64(instanceCounts.total))),
                                             ("running", .int(Int64(instanceCounts.running)))])
        let spooled: JSONValue = .members([
            ("snapshots", .int(Int64(spool.entries().count))), ("results", .int(Int64(results.pending))),
            ("dropped", .int(counters.dropped)), ("rejected", .int(counters.rejected + results.rejected)),
        ])
        var last: JSONValue = .null
        if let acknowledged = lastAcknowledged {
            last = .members([("seq", .int(acknowledged.seq)), ("sent_at", .int(acknowledged.sentAt)),
                             ("sha256", .string(acknowledged.sha256))])
        }
        let members: [(String, JSONValue?)] = [
            ("seq", .int(state.heartbeatSeq)), ("agent", agent), ("clock_offset_s", .int(client.clockOffset)),
            ("instances", instances), ("spool", spooled), ("last_snapshot", last),
        ]
        let body = JSONValue.members(members).encoded()
        do throws(PanelClient.Failure) {
            let reply = try client.post("/heartbeat", body: body)
            noteVerified()
            guard reply.status == 200, case .object(let members)? = reply.json else {
                retryHeartbeat(reply.status == 200 ? "the panel's heartbeat answer is not a JSON object"
                    : "panel answered HTTP \(reply.status)" + (reply.errorName.map { " (\($0))" } ?? ""))
                return
            }
            heartbeatBackoff = Backoff()
            if nextFlush > Self.monotonic() && !spool.entries().isEmpty {
                // The panel answers again: deliver the spool now rather than at the end of a
                // back-off that grew while it was away.
                flushBackoff = Backoff()
                nextFlush = Self.monotonic()
            }
            if case .bool(true)? = members["commands_pending"] {
                channel?.commandsPending()
            }
            if case .int(let value)? = members["heartbeat_interval_s"] {
                heartbeatInterval = Double(min(max(value, 1), 3600))
            }
            if case .int(let value)? = members["snapshot_interval_s"] {
                let interval = Double(min(max(value, 1), 86400))
                if interval != snapshotInterval {
                    nextSnapshot = min(nextSnapshot, Self.monotonic() + interval)
                    snapshotInterval = interval
                }
            }
            if abs(client.clockOffset) > 30 {
                report("clock", "skewed", .warning, "the local clock differs from the panel's",
                       [("offset_s", String(client.clockOffset))])
            } else {
                report("clock", "ok", .info, "clock in step with the panel")
            }
            persistOffset(client.clockOffset)
            report("heartbeat", "ok", .info, "heartbeats accepted", [("seq", String(state.heartbeatSeq))])
            nextHeartbeat = Self.monotonic() + heartbeatInterval * Double.random(in: 0.9...1.1)
        } catch {
            noteFailure(error)
            retryHeartbeat(error.description)
        }
    }

    private func retryHeartbeat(_ message: String) {
        report("heartbeat", "failing", .warning, "heartbeat failed", [("error", message)])
        let delay = min(heartbeatBackoff.next(), heartbeatInterval)
        nextHeartbeat = Self.monotonic() + (isRevoked ? Self.revokedRetry : delay)
    }

    private func persistOffset(_ offset: Int64) {
        guard offset != state.clockOffset else {
            return
        }
        var next = state
        next.clockOffset = offset
        if (try? store.save(next)) != nil {
            state = next
        }
    }

    // MARK: - Revocation

    private var isRevoked: Bool {
        state.status == .revoked
    }

    /// A verified answer: the panel knows this agent.
    private func noteVerified() {
        revocation.verified()
        if state.status == .revoked {
            var next = state
            next.status = .registered
            try? store.save(next)
            state = next
            revoked.store(false, ordering: .relaxed)
            channel?.wake()
            logger.info("the panel accepts this agent again; revocation cleared")
        }
    }

    private func noteFailure(_ error: PanelClient.Failure) {
        guard case .unverified(_, true) = error, revocation.unsignedRejection(at: unixNow()),
              state.status != .revoked else {
            return
        }
        var next = state
        next.status = .revoked
        try? store.save(next)
        state = next
        revoked.store(true, ordering: .relaxed)
        logger.error("the panel no longer knows this server (10 unsigned rejections over 10 minutes): marked "
            + "revoked; retrying every 15 minutes. Re-install with a new token if the server was removed "
            + "from the panel")
    }

    // MARK: - Logging once per state change

    private func report(_ kind: String, _ newState: String, _ level: Logger.Level, _ message: String,
                        _ fields: [(String, String)] = []) {
        guard reported[kind] != newState else {
            return
        }
        let first = reported[kind] == nil
        reported[kind] = newState
        statusBoard.record(kind: kind, state: newState, message: ([message] + fields.map { "\($0.0)=\($0.1)" })
            .joined(separator: " "), at: unixNow(), spool: spool, agent: state, offset: client?.clockOffset,
            lastAcknowledged: lastAcknowledged)
        // "It works" is news only after trouble; the first success is logged at info too.
        if newState == "ok" && !first {
            logger.info(message + " again", fields)
        } else {
            logger.log(level, message, fields)
        }
    }

    // MARK: - Signals

    private func installSignals() {
        for signalNumber in [SIGTERM, SIGINT, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                if signalNumber == SIGHUP {
                    reload.store(true, ordering: .relaxed)
                } else {
                    terminate.store(true, ordering: .relaxed)
                    cancel.set()
                }
                wake.signal()
            }
            source.resume()
            signalSources.append(source)
        }
    }

    static func monotonic() -> Double {
        AgentClock.monotonic()
    }
}

/// PANEL-API.md "Revocation": ten unsigned `unknown_server`/`bad_signature` answers in a row,
/// over at least ten minutes, mean the panel no longer knows this server.
struct RevocationTracker {
    static let threshold = 10
    static let window: Int64 = 600
    private(set) var count = 0
    private(set) var since: Int64?

    /// Records one; returns whether the agent is now revoked.
    mutating func unsignedRejection(at now: Int64) -> Bool {
        count += 1
        let first = since ?? now
        since = first
        return count >= Self.threshold && now - first >= Self.window
    }

    /// Any verified answer breaks the run.
    mutating func verified() {
        count = 0
        since = nil
    }
}

/// Exponential back-off with jitter: 1 s doubling to 5 min (PANEL-API.md "Errors on the way").
struct Backoff {
    private var attempt = 0

    mutating func next() -> Double {
        let base = min(300, pow2(attempt))
        attempt = min(attempt + 1, 16)
        return base * Double.random(in: 0.75...1.25)
    }

    private func pow2(_ exponent: Int) -> Double {
        Double(1 << min(exponent, 20))
    }
}

/// The agent's own memory and CPU, for the heartbeat.
enum ProcessUsage {
    static func rssMB() -> Double {
        guard let bytes = Files.read("/proc/self/statm", limit: 4096) else {
            return 0
        }
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else {
            return 0
        }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    static func cpuPercent(since start: Double) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let elapsed = Daemon.monotonic() - start
        return elapsed > 0 ? cpu / elapsed * 100 : 0
    }
}

/// systemd's notify protocol without libsystemd: one datagram per message to `$NOTIFY_SOCKET`.
final class SystemdNotifier: @unchecked Sendable {
    private let path: String?
    private let interval: Double?
    private(set) var nextPing = Double.infinity

    init() {
        path = getenv("NOTIFY_SOCKET").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        let usec = getenv("WATCHDOG_USEC").flatMap { Double(String(cString: $0)) }
        interval = usec.map { $0 / 1e6 / 2 }
        if interval != nil {
            nextPing = Daemon.monotonic()
        }
    }

    func watchdog() {
        guard let interval, Daemon.monotonic() >= nextPing else {
            return
        }
        send("WATCHDOG=1")
        nextPing = Daemon.monotonic() + interval
    }

    func send(_ message: String) {
        guard let path, path.utf8.count < 107 else {
            return
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            return
        }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") {
            bytes[0] = 0  // abstract namespace
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() {
                raw[index] = byte
            }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                payload.withUnsafeBufferPointer { buffer in
                    sendto(fd, buffer.baseAddress, buffer.count, 0, socketAddress, length)
                }
            }
        }
    }
}
