import Collectors
import OScam
import Pipeline
import Platform

/// `--dry-run`: collect once, run the filters and the encoder, and print the snapshot's exact
/// bytes, the ones that would go into the request body, with nothing after them (a newline only
/// for a terminal). Everything else goes to stderr.
enum DryRun {
    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        let logger = Setup.logger(setup.config, output)
        guard setup.problems.isEmpty else {
            for problem in setup.problems {
                logger.error("configuration problem", [("at", problem.description)])
            }
            return Exit.config
        }
        if setup.usingDefaults {
            logger.info("no agent config; using built-in defaults", [("config", AgentConfig.defaultPath)])
        }
        if let failure = Canary.check(collectors: Registry.all.map { $0.make() }, encoder: Collection.encoder) {
            logger.error("canary self-test failed; refusing to produce a payload", [("reason", failure.description)])
            return Exit.software
        }
        let collection = Collection(config: setup.config, enabled: setup.enabled)
        let outcome = collection.collect(seq: 1, now: unixNow())
        if options.pretty {
            output.writeOut(JSONValue.prettyPrinted(outcome.encoded.bytes) ?? outcome.encoded.bytes)
            logger.info("--pretty output is indented for reading: it is NOT the exact bytes that would be sent")
        } else {
            output.writeOut(outcome.encoded.bytes + (output.stdoutIsTerminal ? [0x0A] : []))
        }
        logger.info("dry run: nothing was sent", [
            ("endpoint", setup.config.panelURL + "/api/agent/v1/snapshots"),
            ("bytes", String(outcome.encoded.bytes.count)),
            ("sha256", outcome.encoded.sha256),
            ("instances", String(outcome.discovery.instances.count)),
        ])
        for timing in outcome.timings {
            logger.info("collector", [("name", timing.name), ("ms", String(timing.milliseconds)), ("outcome", timing.outcome)])
        }
        let disabled = Registry.names.filter { !setup.enabled.contains($0) }
        if !disabled.isEmpty {
            logger.info("collectors disabled by the enable list", [("names", disabled.joined(separator: ","))])
        }
        let counts = outcome.redactionCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        logger.info("redaction", [("removed", counts.isEmpty ? "none" : counts.joined(separator: ","))])
        return Exit.ok
    }
}

/// `inspect`: what the agent sees, for an operator at a terminal (or `--json` for the installer).
enum Inspect {
    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        guard setup.problems.isEmpty else {
            for problem in setup.problems {
                output.error(problem.description)
            }
            return Exit.config
        }
        let collection = Collection(config: setup.config, enabled: [])
        let discovery = collection.discover()
        let files = CollectContext.loadFiles(for: discovery)
        if options.json {
            output.writeOut(json(discovery, files: files).pretty())
        } else {
            output.out(text(discovery, files: files, setup: setup))
        }
        return Exit.ok
    }

    static func json(_ discovery: DiscoveryResult, files: [String: [OScamFile: LoadedFile]]) -> JSONValue {
        let instances: [JSONValue] = discovery.instances.map { instanceJSON($0, files[$0.id] ?? [:]) }
        return .members([
            ("instances", .array(instances)),
            ("problems", .strings(discovery.problems.map(\.description))),
        ])
    }

    static func instanceJSON(_ instance: DiscoveredInstance, _ loaded: [OScamFile: LoadedFile]) -> JSONValue {
        let conf = loaded[.conf].flatMap { try? $0.result.get().analysis }
        let user = loaded[.user].flatMap { try? $0.result.get().analysis }
        let server = loaded[.server].flatMap { try? $0.result.get().analysis }
        var webif: JSONValue?
        if let settings = conf?.webif {
            webif = .members([
                ("enabled", .bool(settings.enabled)), ("port", .int(Int64(settings.port))), ("tls", .bool(settings.tls)),
                ("readonly", .bool(settings.readonly)), ("allows_loopback", .bool(settings.allowsLoopback)),
            ])
        }
        let provenance: [JSONValue] = instance.provenance.map { entry in
            .members([("source", .string(entry.source.rawValue)), ("detail", .string(entry.detail))])
        }
        var paths: [String: JSONValue] = [:]
        for file in OScamFile.allCases {
            paths[file.rawValue] = .string(DiscoveryPath.join(instance.configDir, file.rawValue))
        }
        let members: [(String, JSONValue?)] = [
            ("id", .string(instance.id)), ("name", .string(instance.name)),
            ("config_dir", .string(instance.configDir)), ("temp_dir", .string(instance.tempDir)),
            ("pid_file", .string(instance.pidFile)), ("binary", .string(instance.binary)),
            ("unit", .string(instance.unit)), ("state", .string(instance.state.rawValue)),
            ("worker_pid", .int(instance.workerPID)), ("watchdog_pid", .int(instance.watchdogPID)),
            ("discovered_by", .array(provenance)), ("files", .object(paths)), ("webif", webif),
            ("accounts", .int(user?.accounts?.count)), ("readers", .int(server?.readers?.count)),
            ("problems", .strings(problems(of: loaded))),
        ]
        return .members(members)
    }

    static func text(_ discovery: DiscoveryResult, files: [String: [OScamFile: LoadedFile]], setup: Setup.Loaded) -> String {
        var out = "myosicam-agent \(AgentVersion.current)\n"
        out += "config: \(setup.usingDefaults ? "built-in defaults (no \(AgentConfig.defaultPath))" : setup.config.path ?? "-")\n"
        out += "discovery: auto=\(setup.config.autoDiscovery ? "yes" : "no") proc_root=\(setup.config.procRoot)\n"
        if discovery.instances.isEmpty {
            out += "\nno OScam instance found\n"
        }
        for instance in discovery.instances {
            let loaded = files[instance.id] ?? [:]
            out += "\ninstance \(instance.name) (\(instance.id))\n"
            out += "  config dir  \(instance.configDir)\n"
            out += "  found by    \(instance.provenance.map(\.description).joined(separator: "; "))\n"
            var state = instance.state.rawValue
            if let pid = instance.workerPID {
                state += " (worker \(pid)\(instance.watchdogPID.map { ", watchdog \($0)" } ?? ""))"
            }
            out += "  state       \(state)\n"
            out += "  temp dir    \(instance.tempDir ?? "-")\n"
            out += "  pid file    \(instance.pidFile ?? "-")\n"
            out += "  binary      \(instance.binary ?? "-")\n"
            out += "  unit        \(instance.unit ?? "-")\n"
            out += "  version     \(instance.versionFile?.version ?? "-")\n"
            if let webif = loaded[.conf].flatMap({ try? $0.result.get().analysis.webif }) {
                if webif.enabled {
                    let host = WebIfCollector.connectHost(webif.bindAddress, allowed: webif)
                    out += "  webif       \(webif.tls ? "https" : "http")://\(host):\(webif.port)"
                    out += " auth=\(webif.authRequired ? "yes" : "no") readonly=\(webif.readonly ? "yes" : "no")"
                    out += " httpallowed=\(webif.loopbackOnly ? "loopback-only" : webif.allowsLoopback ? "includes-loopback+others" : "excludes-loopback")\n"
                } else {
                    out += "  webif       disabled\n"
                }
            }
            let accounts = loaded[.user].flatMap { try? $0.result.get().analysis.accounts?.count }
            let readers = loaded[.server].flatMap { try? $0.result.get().analysis.readers?.count }
            out += "  accounts    \(accounts.map(String.init) ?? "-")\n"
            out += "  readers     \(readers.map(String.init) ?? "-")\n"
            let found = problems(of: loaded)
            if !found.isEmpty {
                out += "  problems\n" + found.map { "    \($0)\n" }.joined()
            }
        }
        if !discovery.problems.isEmpty {
            out += "\ndiscovery problems\n" + discovery.problems.map { "  \($0)\n" }.joined()
        }
        return out
    }

    /// Each file's problems, `path:line: severity: message`, plus files that could not be read.
    static func problems(of loaded: [OScamFile: LoadedFile]) -> [String] {
        var found: [String] = []
        for file in OScamFile.allCases {
            guard let entry = loaded[file] else {
                continue
            }
            switch entry.result {
            case .success(let value):
                found += value.analysis.problems.map { "\($0.path):\($0.line): \($0.severity.rawValue): \($0.message)" }
            case .failure(let error) where error.kind == .missing && file != .conf:
                continue
            case .failure(let error):
                found.append("\(error.description)")
            }
        }
        return found
    }
}

/// `check-config`: validates the agent's own configuration and every discovered OScam file.
/// Exit 0 when the agent's config is valid and no OScam file has an error (warnings are
/// printed); 78 with one line per problem otherwise. `--agent-only` skips the OScam files: that
/// is what the service runs before start, so a problem in OScam's files never stops the agent
/// that would report it.
enum CheckConfig {
    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        var failed = !setup.problems.isEmpty
        for problem in setup.problems {
            output.error(problem.description)
        }
        if !options.agentOnly {
            let collection = Collection(config: setup.config, enabled: [])
            let discovery = collection.discover()
            for problem in discovery.problems {
                output.error("\(problem.description)")
            }
            let files = CollectContext.loadFiles(for: discovery)
            for instance in discovery.instances {
                for file in OScamFile.allCases {
                    guard let entry = files[instance.id]?[file] else {
                        continue
                    }
                    switch entry.result {
                    case .success(let value):
                        for problem in value.analysis.problems {
                            output.error("\(problem.path):\(problem.line): \(problem.severity.rawValue): \(problem.message)")
                            failed = failed || problem.severity == .error
                        }
                    case .failure(let error) where error.kind == .missing && file != .conf:
                        continue
                    case .failure(let error):
                        output.error(error.description)
                        failed = true
                    }
                }
            }
        }
        if failed {
            return Exit.config
        }
        output.error("configuration OK")
        return Exit.ok
    }
}

extension JSONValue {
    /// Re-indents compact JSON produced by `encoded()`, for `--pretty`.
    static func prettyPrinted(_ compact: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var level = 0
        var inString = false
        var escaped = false
        func newline() {
            out.append(0x0A)
            out += [UInt8](repeating: 0x20, count: 2 * level)
        }
        for (index, byte) in compact.enumerated() {
            if inString {
                out.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(byte)
                let next = index + 1 < compact.count ? compact[index + 1] : 0
                if next != UInt8(ascii: "}") && next != UInt8(ascii: "]") {
                    level += 1
                    newline()
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let previous = index > 0 ? compact[index - 1] : 0
                if previous != UInt8(ascii: "{") && previous != UInt8(ascii: "[") {
                    level -= 1
                    newline()
                }
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline()
            case UInt8(ascii: ":"):
                out += [byte, 0x20]
            default:
                out.append(byte)
            }
        }
        out.append(0x0A)
        return level == 0 ? out : nil
    }
}
