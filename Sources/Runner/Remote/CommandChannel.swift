#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import OScam
import Pipeline
import Platform
import Sinks
import Synchronization

/// The command side of the panel link (PANEL-API.md "Commands"): one long-poll in flight at a
/// time, each delivered command recorded durably before it runs and answered at most once, and
/// the results delivered from their own loop until the panel acknowledges them. Commands on one
/// instance run one after another; different instances run in parallel.
final class CommandChannel: Sendable {
    struct Dependencies: Sendable {
        let config: AgentConfig
        /// Separate clients: a 25 s long-poll must never hold up a result (or a heartbeat).
        let pollClient: PanelClient
        let resultClient: PanelClient
        let logger: Logger
        let http: any HTTPTransport
        let discover: @Sendable () -> DiscoveryResult
        let procTable: any ProcTable
        /// Ask the daemon for a snapshot now; `force` sends one even if nothing changed.
        let requestSnapshot: @Sendable (_ force: Bool) -> Void
        let isTerminating: @Sendable () -> Bool
        /// The agent is marked revoked: failing requests are retried only every 15 minutes.
        var isRevoked: @Sendable () -> Bool = { false }
    }

    /// The longest the panel holds a poll (PANEL-API: min(wait_s, 30)): fewer requests an hour on
    /// an idle server (the wire budget is 100 KB per hour).
    static let pollWait: Int64 = 30

    private let deps: Dependencies
    let store: CommandStore
    private let applier: ConfigApplier
    private let pollWake = DispatchSemaphore(value: 0)
    private let resultWake = DispatchSemaphore(value: 0)
    private let queues = Mutex<[String: DispatchQueue]>([:])
    /// Ids being executed in this process right now.
    private let inFlight = Mutex<Set<String>>([])
    private let reported = Mutex<[String: String]>([:])
    /// SHA-256 of the `id` of each unanswerable command logged already: the panel delivers such a
    /// command again and again (it can never get a result); it is logged once, not per delivery.
    private let ignored = Mutex<Set<String>>([])
    private let counters = Mutex<(pending: Int, rejected: Int64)>((0, 0))
    /// Finished commands whose result could not be written yet (full disk): kept here and
    /// recorded by the result loop as soon as the disk lets it.
    private let unrecorded = Mutex<[String: CommandRecord]>([:])
    /// When a command or a `commands_pending` last came (monotonic seconds); start counts.
    private let lastActivity = Atomic<Double>(Daemon.monotonic())

    init(_ deps: Dependencies) {
        self.deps = deps
        store = CommandStore(stateDir: deps.config.stateDir)
        applier = ConfigApplier(stateDir: deps.config.stateDir, http: deps.http, logger: deps.logger)
    }

    /// Results waiting for the panel, and results it refused, for the heartbeat.
    var spoolCounts: (pending: Int, rejected: Int64) {
        counters.withLock { $0 }
    }

    // MARK: - Start

    /// Finishes what a previous run left (rolls back interrupted edits, answers interrupted
    /// commands), then starts the poll and result loops.
    func start() {
        applier.recover(store: store)
        for var record in store.all() where record.phase == .running {
            record.phase = .done
            let interruptedEdit = record.type == "apply_config"
            record.result = CommandResult(
                status: .failed, startedAt: record.startedAt, finishedAt: unixNow(),
                message: interruptedEdit ? "the agent stopped before this change was written; nothing was changed"
                    : "the agent stopped while this command ran; the next snapshot shows the instance's state")
            try? store.save(record)
        }
        store.prune(now: unixNow())
        refreshPending()
        DispatchQueue(label: "myosicam.commands.poll").async { self.pollLoop() }
        DispatchQueue(label: "myosicam.commands.results").async { self.resultLoop() }
    }

    /// The heartbeat said `commands_pending`: poll at once if the poll loop is backing off or
    /// quiet, and hold polls open again for a while.
    func commandsPending() {
        noteActivity()
        pollWake.signal()
    }

    /// Commands came or are coming: hold polls open again for `command_poll_idle_after`.
    private func noteActivity() {
        lastActivity.store(Daemon.monotonic(), ordering: .relaxed)
        if reported.withLock({ $0["poll_mode"] }) == "quiet" {
            report("poll_mode", "holding", .info, "command channel holding a poll open again")
        }
    }

    /// The end of a revocation: both loops try again now rather than in 15 minutes.
    func wake() {
        pollWake.signal()
        resultWake.signal()
    }

    // MARK: - Poll

    /// The safety poll of a quiet channel: should a `commands_pending` never arrive (a lost
    /// heartbeat answer), a queued command still arrives within this.
    static let quietPoll = 900.0

    /// A long-poll is held open while commands come, and for `command_poll_idle_after` seconds
    /// after the last one (and after start): then the channel goes quiet and relies on the
    /// heartbeat's `commands_pending`, which PANEL-API has the agent answer by polling at once,
    /// plus a poll every 15 minutes. On a server where nothing happens that is 4 polls an hour
    /// instead of 120 (issue 7's wire budget); the first command after a quiet spell waits for
    /// the next heartbeat (docs/panel-link.md).
    private func pollLoop() {
        var backoff = Backoff()
        while !deps.isTerminating() {
            let idleAfter = Double(deps.config.commandPollIdleAfter)
            if idleAfter > 0, Daemon.monotonic() - lastActivity.load(ordering: .relaxed) >= idleAfter {
                guard !deps.isTerminating() else {
                    return
                }
                report("poll_mode", "quiet", .info,
                       "command channel quiet: it polls when a heartbeat says commands are pending, and every 15 minutes")
                if AgentClock.wait(pollWake, seconds: Self.quietPoll) {
                    noteActivity()
                }
                guard !deps.isTerminating() else {
                    return
                }
            }
            if pollOnce(&backoff) > 256 << 10 {
                // A large answer's tree was freed into this thread's malloc arena, which glibc
                // would otherwise keep at its peak: give the pages back.
                Heap.releaseFreePages()
            }
        }
    }

    /// One poll and the commands it brought; returns the size of the answer.
    private func pollOnce(_ backoff: inout Backoff) -> Int {
        let body = JSONValue.members([("wait_s", .int(Self.pollWait))]).encoded()
        do throws(PanelClient.Failure) {
            let reply = try deps.pollClient.post("/commands/poll", body: body, totalTimeout: Double(Self.pollWait) + 15)
            guard reply.status == 200, case .object(let fields)? = reply.json,
                  case .array(let commands)? = fields["commands"] else {
                report("poll", "failing", .warning, "command poll failed",
                       [("error", "panel answered HTTP \(reply.status)" + (reply.errorName.map { " (\($0))" } ?? ""))])
                wait(pollWake, retryDelay(&backoff))
                return reply.body.count
            }
            backoff = Backoff()
            report("poll", "ok", .info, "command channel open")
            if !commands.isEmpty {
                noteActivity()
            }
            for command in commands.prefix(1000) {
                receive(command)
            }
            return reply.body.count
        } catch {
            report("poll", "failing", .warning, "command poll failed", [("error", error.description)])
            wait(pollWake, retryDelay(&backoff))
            return 0
        }
    }

    private func wait(_ semaphore: DispatchSemaphore, _ seconds: Double) {
        guard !deps.isTerminating() else {
            return
        }
        _ = AgentClock.wait(semaphore, seconds: seconds)
    }

    /// The next back-off, or PANEL-API's 15 minutes while the agent is marked revoked.
    private func retryDelay(_ backoff: inout Backoff) -> Double {
        let delay = backoff.next()
        return deps.isRevoked() ? Daemon.revokedRetry : delay
    }

    /// One delivered command: answered from the store if seen before, else checked and run.
    func receive(_ value: JSONValue) {
        let now = unixNow() + deps.pollClient.clockOffset
        let parsed = PanelCommand.parse(value, now: now)
        let id: String
        switch parsed {
        case .unanswerable(let reason):
            var idBytes = value.encoded()
            if case .object(let fields) = value {
                idBytes = fields["id"]?.encoded() ?? []
            }
            let digest = Crypto.sha256Hex(idBytes)
            let first = ignored.withLock { seen in
                if seen.count >= 1024 {
                    seen.removeAll()
                }
                return seen.insert(digest).inserted
            }
            if first {
                deps.logger.warning("ignored a command that cannot be answered", [("reason", reason)])
            }
            return
        case .rejected(let rejectedID, _, _):
            id = rejectedID
        case .valid(let command):
            id = command.id
        }
        if inFlight.withLock({ $0.contains(id) }) {
            return
        }
        if store.exists(id) {
            resend(id)
            return
        }
        let started = unixNow()
        switch parsed {
        case .unanswerable:
            return
        case .rejected(_, let type, let reason):
            answer(CommandRecord(id: id, type: type, instance: nil, expiresAt: now + 3600, phase: .done, startedAt: started,
                                 result: CommandResult(status: .rejected, startedAt: started, finishedAt: started,
                                                       message: reason)))
        case .valid(let command):
            admit(command, started: started)
        }
    }

    private func admit(_ command: PanelCommand, started: Int64) {
        func reject(_ reason: String) {
            answer(CommandRecord(id: command.id, type: command.type, instance: command.instance, expiresAt: command.expiresAt,
                                 phase: .done, startedAt: started,
                                 result: CommandResult(status: .rejected, startedAt: started, finishedAt: unixNow(), message: reason)))
        }
        if case .refused(let reason) = AllowedActions.decide(command.vetoName, path: deps.config.allowedActionsFile) {
            reject(reason)
            return
        }
        var instance: DiscoveredInstance?
        if let id = command.instance {
            let matches = deps.discover().instances.filter { $0.id == id }
            guard matches.count == 1 else {
                // Two config dirs whose ids collide (64-bit hashes of their paths) cannot be
                // told apart by a command: neither is touched.
                reject(matches.isEmpty ? "unknown instance \(id)"
                       : "instance id \(id) names \(matches.count) instances on this server; not acted on")
                return
            }
            instance = matches[0]
        }
        let record = CommandRecord(id: command.id, type: command.type, instance: command.instance,
                                   expiresAt: command.expiresAt, phase: .running, startedAt: started)
        do {
            try store.save(record)
        } catch {
            // Not recorded, so not run: the panel delivers it again.
            report("command_store", error.isNoSpace ? "disk_full" : "unwritable", .error,
                   "a command could not be recorded and was not run", [("error", error.description)])
            return
        }
        report("command_store", "ok", .info, "commands recorded")
        inFlight.withLock { _ = $0.insert(command.id) }
        deps.logger.info("command started", [("command", command.id), ("type", command.vetoName),
                                             ("instance", command.instance ?? "-")])
        let target = instance
        queue(for: command.instance ?? "-").async {
            self.execute(command, record: record, instance: target)
        }
    }

    private func queue(for key: String) -> DispatchQueue {
        queues.withLock { queues in
            if let queue = queues[key] {
                return queue
            }
            let queue = DispatchQueue(label: "myosicam.commands." + key)
            queues[key] = queue
            return queue
        }
    }

    private func execute(_ command: PanelCommand, record: CommandRecord, instance: DiscoveredInstance?) {
        var record = record
        var changed = false
        let result: CommandResult
        switch command.kind {
        case .resync:
            deps.requestSnapshot(true)
            result = CommandResult(status: .succeeded, startedAt: record.startedAt, finishedAt: unixNow(),
                                   message: "a full snapshot is on its way")
        case .applyConfig(let file, let base, let edits):
            guard let instance else {
                return
            }
            let outcome = applier.apply(command, file: file, base: base, edits: edits, instance: instance,
                                        startedAt: record.startedAt)
            result = outcome.result
            changed = outcome.changed
        case .service(let action):
            guard let instance else {
                return
            }
            let control = ServiceControl(sudo: deps.config.sudo, systemctl: deps.config.systemctl, http: deps.http,
                                         observe: { [deps] in deps.discover().instances }, procTable: deps.procTable)
            result = control.run(action, instance: instance, startedAt: record.startedAt)
            changed = action != .reload || result.status == .succeeded
        }
        record.phase = .done
        record.result = result
        PausePoint.reach("command:ran")
        if let failure = finish(record) {
            // Kept until it can be written (the result loop retries); the journal stays until
            // then, so a stop before that rolls the edit back and answers `failed`.
            deps.logger.error("a command's result could not be recorded yet; it is kept and recorded as soon as "
                + "the disk allows", [("command", command.id), ("error", failure.description)])
            unrecorded.withLock { $0[record.id] = record }
        }
        inFlight.withLock { _ = $0.remove(command.id) }
        deps.logger.log(result.status == .succeeded ? .info : .warning, "command finished",
                        [("command", command.id), ("status", result.status.rawValue), ("message", result.message)])
        if changed {
            deps.requestSnapshot(false)
        }
        refreshPending()
        resultWake.signal()
    }

    /// Records a finished command, then lets its journal go; nil when recorded.
    private func finish(_ record: CommandRecord) -> CommandStore.Failure? {
        do {
            try store.save(record)
        } catch {
            return error
        }
        PausePoint.reach("command:recorded")
        applier.complete(record.id)
        return nil
    }

    private func answer(_ record: CommandRecord) {
        do {
            try store.save(record)
        } catch {
            report("command_store", error.isNoSpace ? "disk_full" : "unwritable", .error,
                   "a command could not be recorded and was not answered", [("error", error.description)])
            return
        }
        deps.logger.info("command rejected", [("command", record.id), ("reason", record.result?.message ?? "")])
        refreshPending()
        resultWake.signal()
    }

    /// A command seen before: its stored result goes out again, unchanged.
    private func resend(_ id: String) {
        guard var record = store.load(id) else {
            deps.logger.warning("a command was delivered again but its record cannot be read; not run again",
                                [("command", id)])
            return
        }
        guard record.phase == .done else {
            return
        }
        if record.reported {
            record.reported = false
            try? store.save(record)
        }
        refreshPending()
        resultWake.signal()
    }

    // MARK: - Results

    private func resultLoop() {
        var backoff = Backoff()
        while !deps.isTerminating() {
            var delay = 30.0
            for record in unrecorded.withLock({ Array($0.values) }) where finish(record) == nil {
                deps.logger.info("a command's result was recorded after all", [("command", record.id)])
                unrecorded.withLock { _ = $0.removeValue(forKey: record.id) }
            }
            for record in store.unreported() {
                guard !deps.isTerminating(), let result = record.result else {
                    break
                }
                switch deliver(record, result) {
                case .done:
                    backoff = Backoff()
                    continue
                case .retry(let message):
                    report("results", "failing", .warning, "a command result could not be delivered; it is kept",
                           [("error", message)])
                    delay = retryDelay(&backoff)
                }
                break
            }
            if !unrecorded.withLock({ $0.isEmpty }) {
                delay = min(delay, 5)
            }
            refreshPending()
            wait(resultWake, delay)
        }
    }

    enum Delivery {
        case done
        case retry(String)
    }

    private func deliver(_ record: CommandRecord, _ result: CommandResult) -> Delivery {
        do throws(PanelClient.Failure) {
            let reply = try deps.resultClient.post("/commands/\(record.id)/result", body: result.json.encoded())
            switch reply.status {
            case 200:
                // Only the contract's JSON object acknowledges a result: a signed 200 with anything
                // else (a proxy's page, a broken body) may not have been processed, so it is kept.
                guard case .object? = reply.json else {
                    return .retry("the panel's answer to a result is not a JSON object")
                }
                report("results", "ok", .info, "command results delivered")
                markReported(record)
                return .done
            case 401, 429, 500...599:
                return .retry("panel answered HTTP \(reply.status)" + (reply.errorName.map { " (\($0))" } ?? ""))
            default:
                // 404 unknown_command, or any other refusal: the panel will never take it.
                deps.logger.warning("the panel refused a command result; dropped",
                                    [("command", record.id), ("error", reply.errorName ?? String(reply.status))])
                if reply.errorName != "unknown_command" {
                    counters.withLock { $0.rejected += 1 }
                }
                markReported(record)
                return .done
            }
        } catch {
            return .retry(error.description)
        }
    }

    private func markReported(_ record: CommandRecord) {
        var record = record
        record.reported = true
        try? store.save(record)
    }

    private func refreshPending() {
        let pending = store.unreported().count + unrecorded.withLock { $0.count }
        counters.withLock { $0.pending = pending }
    }

    // MARK: - Logging once per state change

    private func report(_ kind: String, _ state: String, _ level: Logger.Level, _ message: String,
                        _ fields: [(String, String)] = []) {
        let previous = reported.withLock { states -> String? in
            let old = states[kind]
            states[kind] = state
            return old
        }
        guard previous != state else {
            return
        }
        if state == "ok" && previous == nil {
            deps.logger.info(message, fields)
        } else if state == "ok" {
            deps.logger.info(message + " again", fields)
        } else {
            deps.logger.log(level, message, fields)
        }
    }
}
