#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Platform
import Sinks

/// What the daemon last saw, per kind of event, written (atomically, 0600) whenever a state
/// changes, for `myosicam-agent status` to read without the network. It holds no secret.
final class StatusBoard {
    static let fileName = "status.json"
    let path: String
    private var entries: [String: (state: String, message: String, at: Int64)] = [:]

    init(directory: String) {
        path = directory + "/" + Self.fileName
    }

    func record(kind: String, state: String, message: String, at: Int64, spool: SnapshotSpool, agent: AgentState,
                offset: Int64?, lastAcknowledged: (seq: Int64, sentAt: Int64, sha256: String)?) {
        entries[kind] = (state, message, at)
        let counters = spool.counters()
        let value = JSONValue.members([
            ("updated_at", .int(at)),
            ("events", .object(entries.mapValues { entry in
                .members([("state", .string(entry.state)), ("message", .string(entry.message)), ("at", .int(entry.at))])
            })),
            ("spool", .members([("snapshots", .int(Int64(spool.entries().count))), ("dropped", .int(counters.dropped)),
                                ("rejected", .int(counters.rejected))])),
            ("clock_offset_s", .int(offset ?? agent.clockOffset)),
            ("heartbeat_seq", .int(agent.heartbeatSeq)), ("snapshot_seq", .int(agent.snapshotSeq)),
            ("last_snapshot", lastAcknowledged.map { .members([
                ("seq", .int($0.seq)), ("sent_at", .int($0.sentAt)), ("sha256", .string($0.sha256))]) }),
        ])
        try? AtomicFile.write(value.encoded(), to: path, mode: 0o600)
    }
}

/// `status`: the agent's state from its files, without the network.
enum Status {
    static let remedies: [String: String] = [
        "heartbeat:failing": "check the network path to the panel URL, the proxy (https_proxy) and ca_file/pin_sha256",
        "snapshots:failing": "snapshots are kept in the spool and delivered in order when the panel answers again",
        "clock:skewed": "the agent corrects for it, but fix the host's time (systemd-timesyncd or chrony)",
        "spool:disk_full": "free space on the state directory's file system; new snapshots are dropped until then",
        "spool:unwritable": "check that the state directory belongs to the agent's user and is writable",
        "state:unwritable": "check that the state directory belongs to the agent's user and is writable",
        "register:unavailable": "the panel could not be reached; the agent keeps retrying",
    ]

    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        guard setup.problems.isEmpty else {
            setup.problems.forEach { output.error($0.description) }
            return Exit.config
        }
        let store = StateStore(directory: setup.config.stateDir)
        var text = "myosicam-agent \(AgentVersion.current)\npanel: \(setup.config.panelURL)\n"
        let state: AgentState?
        do {
            state = try store.load()
        } catch {
            output.error(error.description)
            return Exit.config
        }
        guard let state else {
            text += "registration: not registered (no \(store.path)); run 'myosicam-agent register' with an install token\n"
            output.out(text)
            return Exit.ok
        }
        switch state.status {
        case .pending:
            text += "registration: started, not confirmed (the next start retries with the same secret)\n"
        case .registered:
            text += "registration: registered as \(state.serverID ?? "?")\n"
        case .revoked:
            text += "registration: REVOKED — the panel no longer knows \(state.serverID ?? "this server"); "
                + "re-install with a new install token if it was removed on purpose\n"
        }
        let spool = SnapshotSpool(directory: setup.config.stateDir + "/spool", maxBytes: setup.config.spoolMaxBytes)
        let counters = spool.counters()
        text += "heartbeats sent: \(state.heartbeatSeq); snapshots taken: \(state.snapshotSeq)\n"
        text += "spool: \(spool.entries().count) waiting, \(counters.dropped) dropped, \(counters.rejected) rejected\n"
        let commands = CommandStore(stateDir: setup.config.stateDir).all()
        let waiting = commands.filter { $0.phase == .done && !$0.reported }.count
        text += "commands: \(commands.count) recorded, \(waiting) results waiting for the panel\n"
        for record in commands.sorted(by: { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }).prefix(5) {
            let outcome = record.result.map { "\($0.status.rawValue): \($0.message)" } ?? "running"
            text += "  \(record.id) \(record.type) at \(record.startedAt): \(outcome)\n"
        }
        var offset = state.clockOffset
        if let bytes = Files.read(setup.config.stateDir + "/" + StatusBoard.fileName, limit: 1 << 20),
           case .object(let board)? = try? StrictJSON.parse(bytes) {
            if case .int(let value)? = board["clock_offset_s"] {
                offset = value
            }
            if case .object(let last)? = board["last_snapshot"], case .int(let seq)? = last["seq"],
               case .int(let sentAt)? = last["sent_at"] {
                text += "last snapshot acknowledged: seq \(seq) at \(sentAt)\n"
            }
            if case .object(let events)? = board["events"] {
                for kind in events.keys.sorted() {
                    guard case .object(let event)? = events[kind], case .string(let eventState)? = event["state"],
                          case .string(let message)? = event["message"], case .int(let at)? = event["at"] else {
                        continue
                    }
                    text += "\(kind): \(eventState) since \(at): \(message)\n"
                    if let remedy = remedies["\(kind):\(eventState)"] {
                        text += "  → \(remedy)\n"
                    }
                }
            }
        }
        text += "clock offset: \(offset) s" + (abs(offset) > 30 ? " (WARNING: more than 30 s; fix the host's time)" : "") + "\n"
        output.out(text)
        return Exit.ok
    }
}
