#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Platform

/// `service` commands (PANEL-API.md): start, stop and restart of a systemd-managed instance run
/// exactly `<sudo> -n <systemctl> <action> <unit>` — an argv, no shell, the paths from
/// agent.conf that match the installer's sudoers lines — and nothing else ever goes through
/// sudo. Without a unit, `restart` goes through the WebIF and `start`/`stop` are refused.
/// `reload` is the WebIF's user reload and needs no privilege.
struct ServiceControl: Sendable {
    let sudo: String
    let systemctl: String
    let http: any HTTPTransport
    /// Fresh discovery, to observe the instance after the action.
    let observe: @Sendable () -> [DiscoveredInstance]
    let procTable: any ProcTable
    var settle: Double = 30
    var webifTimeout: Double = 10

    /// A systemd unit name as it may appear in argv and in a sudoers line.
    static func isSafeUnit(_ unit: String) -> Bool {
        let bytes = unit.utf8
        return unit.hasSuffix(".service") && bytes.count <= 255 && !unit.hasPrefix("-") && bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x40 || byte == 0x3A || byte == 0x5C
        }
    }

    func run(_ action: PanelCommand.ServiceAction, instance: DiscoveredInstance, startedAt: Int64) -> CommandResult {
        var result = CommandResult(status: .failed, startedAt: startedAt, finishedAt: startedAt, message: "")
        func finish(_ status: CommandResult.Status, _ message: String) -> CommandResult {
            result.status = status
            result.message = message
            result.finishedAt = unixNow()
            return result
        }
        let before = instance
        switch action {
        case .reload:
            guard instance.state == .running else {
                return finish(.failed, "OScam is not running; nothing to reload")
            }
            let settings = ConfigApplier.readConf(instance)?.webif().value ?? .defaultsWithoutConf
            guard settings.enabled else {
                return finish(.rejected, "this instance has no WebIF, and the user reload goes through it")
            }
            do {
                let loaded = try WebIfActions(settings: settings, http: http, timeout: webifTimeout).reloadUsers()
                result.details["accounts_loaded"] = .int(Int64(loaded.count))
            } catch {
                return finish(.failed, "the user reload failed: \(error.description)")
            }
            addObservation(to: &result, waitFor: .running, previous: before)
            return finish(.succeeded, "oscam.user reloaded through the WebIF")
        case .start, .stop, .restart:
            guard let unit = instance.unit else {
                return withoutUnit(action, instance: instance, result: result)
            }
            guard Self.isSafeUnit(unit) else {
                return finish(.rejected, "the instance's systemd unit name is not one the agent passes to sudo")
            }
            let outcome = Self.spawn([sudo, "-n", systemctl, action.rawValue, unit], timeout: 120)
            result.details["unit"] = .string(unit)
            guard outcome.exitCode == 0 else {
                result.details["exit_code"] = .int(outcome.exitCode.map(Int64.init))
                return finish(.failed, "\(sudo) -n \(systemctl) \(action.rawValue) \(unit) failed: "
                    + (outcome.error ?? "exit code \(outcome.exitCode.map(String.init) ?? "none")"))
            }
            let wanted: InstanceState = action == .stop ? .stopped : .running
            let seen = addObservation(to: &result, waitFor: wanted, previous: before)
            if action == .stop && seen?.state == .running {
                // Stopped, then back: a Restart=always unit or another supervisor started it.
                result.details["came_back"] = .bool(true)
                return finish(.failed, "OScam was stopped and came back by itself (Restart=always or a supervisor)")
            }
            if action != .stop && seen?.state != .running {
                return finish(.failed, "systemctl \(action.rawValue) succeeded but OScam is not running")
            }
            return finish(.succeeded, "systemctl \(action.rawValue) \(unit) done")
        }
    }

    private func withoutUnit(_ action: PanelCommand.ServiceAction, instance: DiscoveredInstance,
                             result: CommandResult) -> CommandResult {
        var result = result
        func finish(_ status: CommandResult.Status, _ message: String) -> CommandResult {
            result.status = status
            result.message = message
            result.finishedAt = unixNow()
            return result
        }
        switch action {
        case .start:
            return finish(.rejected, "this instance has no systemd unit, so the agent cannot start it")
        case .stop:
            return finish(.rejected, "this instance has no systemd unit: the agent could stop it but never start it again")
        default:
            break
        }
        guard instance.state == .running else {
            return finish(.rejected, "this instance has no systemd unit and is not running, so it cannot be restarted")
        }
        let settings = ConfigApplier.readConf(instance)?.webif().value ?? .defaultsWithoutConf
        guard settings.enabled else {
            return finish(.rejected, "this instance has neither a systemd unit nor a WebIF to restart it through")
        }
        let webif = WebIfActions(settings: settings, http: http, timeout: webifTimeout)
        let startBefore = try? webif.status().startTime
        do {
            try webif.restart()
        } catch {
            return finish(.failed, "the WebIF restart failed: \(error.description)")
        }
        // The watchdog forks a new worker: wait for a new start time on the WebIF (OSCAM.md §1.5).
        let deadline = Daemon.monotonic() + settle
        var restarted = false
        while Daemon.monotonic() < deadline {
            usleep(250_000)
            if let now = try? webif.status(timeout: 2).startTime, now != startBefore {
                restarted = true
                break
            }
        }
        addObservation(to: &result, waitFor: .running, previous: instance)
        return restarted ? finish(.succeeded, "OScam restarted through its WebIF")
            : finish(.failed, "OScam's WebIF did not come back with a new worker within \(Int(settle)) s")
    }

    /// Waits (bounded) for the instance to reach `state`, then records what it saw. After a stop
    /// it watches a little longer for a supervisor bringing OScam back.
    @discardableResult
    private func addObservation(to result: inout CommandResult, waitFor state: InstanceState,
                                previous: DiscoveredInstance) -> DiscoveredInstance? {
        let deadline = Daemon.monotonic() + settle
        var seen = current(previous.id)
        while Daemon.monotonic() < deadline {
            if let found = seen, found.state == state, state != .running || found.workerPID != nil {
                break
            }
            usleep(250_000)
            seen = current(previous.id)
        }
        if state == .stopped && seen?.state == .stopped {
            let grace = Daemon.monotonic() + 3
            while Daemon.monotonic() < grace {
                usleep(250_000)
                if let again = current(previous.id), again.state == .running {
                    seen = again
                    break
                }
            }
        }
        if state == .running, let seen, seen.state == .running {
            // A restarted OScam is only back for the panel once its WebIF answers again.
            let settings = ConfigApplier.readConf(seen)?.webif().value ?? .defaultsWithoutConf
            if settings.enabled {
                let webif = WebIfActions(settings: settings, http: http, timeout: 2)
                var answered = (try? webif.status()) != nil
                while !answered && Daemon.monotonic() < deadline {
                    usleep(250_000)
                    answered = (try? webif.status()) != nil
                }
                result.details["webif"] = .string(answered ? "up" : "down")
            }
        }
        result.details["state"] = .string(seen.map { $0.state.rawValue } ?? "unknown")
        result.details["pid"] = .int(seen?.workerPID.map(Int64.init))
        if let pid = seen?.workerPID, seen?.state == .running, let process = procTable.process(pid),
           let boot = procTable.bootTime() {
            let started = Double(boot) + Double(process.startTicks) / Double(max(1, procTable.clockTicksPerSecond()))
            result.details["uptime_s"] = .int(max(0, unixNow() - Int64(started)))
        }
        return seen
    }

    private func current(_ id: String) -> DiscoveredInstance? {
        observe().first { $0.id == id }
    }

    struct SpawnOutcome: Sendable {
        let exitCode: Int32?
        /// The first line of stderr, or why the program could not be run.
        let error: String?
    }

    /// Runs `argv` directly (posix_spawn, no shell, a fixed minimal environment, stdin from
    /// /dev/null) and waits at most `timeout` seconds.
    static func spawn(_ argv: [String], timeout: Double) -> SpawnOutcome {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            return SpawnOutcome(exitCode: nil, error: "pipe failed")
        }
        // Neither end may leak into the child beyond the dup2 onto its stderr.
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"]
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        close(pipeFDs[1])
        guard spawned == 0 else {
            close(pipeFDs[0])
            return SpawnOutcome(exitCode: nil, error: "\(argv[0]) could not be run: \(String(cString: strerror(spawned)))")
        }
        var stderrBytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = fcntl(pipeFDs[0], F_SETFL, O_NONBLOCK)
        let deadline = Daemon.monotonic() + timeout
        var status: Int32 = 0
        var exited = false
        while !exited {
            let count = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count > 0 && stderrBytes.count < 8192 {
                stderrBytes += buffer.prefix(count)
            }
            if waitpid(pid, &status, WNOHANG) == pid {
                exited = true
            } else if Daemon.monotonic() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                close(pipeFDs[0])
                return SpawnOutcome(exitCode: nil, error: "\(argv[0]) did not finish within \(Int(timeout)) s and was killed")
            } else if count <= 0 {
                usleep(20_000)
            }
        }
        close(pipeFDs[0])
        let line = String(decoding: stderrBytes, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init)
        let code: Int32? = (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
        return SpawnOutcome(exitCode: code, error: code == 0 ? nil : (line ?? "killed by signal \(status & 0x7f)"))
    }
}
