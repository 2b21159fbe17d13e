#if canImport(Glibc)
import Glibc
#endif
import Collectors
import OScam
import Pipeline
import Platform

/// sysexits(3) codes the agent returns.
enum Exit {
    static let ok: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let unavailable: Int32 = 69
    static let software: Int32 = 70
    static let tempfail: Int32 = 75
    static let config: Int32 = 78
}

/// The agent's entry point: parses the command line and runs one command.
enum Agent {
    static let usage = """
        usage: myosicam-agent --dry-run [--config FILE] [--pretty]
               myosicam-agent inspect [--config FILE] [--json]
               myosicam-agent check-config [--config FILE] [--agent-only]
               myosicam-agent register [--config FILE]
               myosicam-agent run [--config FILE] [--allow-root]
               myosicam-agent status [--config FILE]
               myosicam-agent version

          --dry-run       collect once and print the exact snapshot bytes that would be sent
          inspect         show what the agent sees: instances, how they were found, problems
          check-config    validate agent.conf, collectors.conf and every OScam file found
          register        register with the panel once, using the install token (for the installer)
          run             the daemon: register if needed, heartbeat, send snapshots (systemd runs this)
          status          the agent's registration, spool, clock offset and last errors, without network
        """

    struct Options {
        var command = ""
        var configPath: String?
        var pretty = false
        var json = false
        var agentOnly = false
        var allowRoot = false
    }

    static func main(arguments: [String], output: Output = .standard) -> Int32 {
        var options = Options()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--dry-run", "inspect", "check-config", "register", "run", "status", "version", "--version", "help", "--help", "-h":
                guard options.command.isEmpty else {
                    output.error("myosicam-agent: more than one command given\n\(usage)")
                    return Exit.usage
                }
                options.command = argument
            case "--config":
                guard index + 1 < arguments.count else {
                    output.error("myosicam-agent: --config needs a file\n\(usage)")
                    return Exit.usage
                }
                index += 1
                options.configPath = arguments[index]
            case "--pretty":
                options.pretty = true
            case "--json":
                options.json = true
            case "--agent-only":
                options.agentOnly = true
            case "--allow-root":
                options.allowRoot = true
            default:
                if argument.hasPrefix("--config=") {
                    options.configPath = String(argument.dropFirst("--config=".count))
                } else {
                    output.error("myosicam-agent: unknown argument '\(printableArgument(argument))'\n\(usage)")
                    return Exit.usage
                }
            }
            index += 1
        }
        let allowed: [String: Set<String>] = ["--dry-run": ["pretty"], "inspect": ["json"], "check-config": ["agent-only"],
                                              "run": ["allow-root"]]
        let given = (options.pretty ? ["pretty"] : []) + (options.json ? ["json"] : [])
            + (options.agentOnly ? ["agent-only"] : []) + (options.allowRoot ? ["allow-root"] : [])
        if let flag = given.first(where: { !(allowed[options.command] ?? []).contains($0) }) {
            output.error("myosicam-agent: --\(flag) does not apply to \(options.command.isEmpty ? "this command" : options.command)\n\(usage)")
            return Exit.usage
        }
        switch options.command {
        case "--dry-run":
            return DryRun.run(options, output: output)
        case "inspect":
            return Inspect.run(options, output: output)
        case "check-config":
            return CheckConfig.run(options, output: output)
        case "register":
            return Register.run(options, output: output)
        case "run":
            return Daemon.run(options, output: output)
        case "status":
            return Status.run(options, output: output)
        case "version", "--version":
            output.out("myosicam-agent \(AgentVersion.current)\n")
            return Exit.ok
        case "help", "--help", "-h":
            output.out(usage + "\n")
            return Exit.ok
        default:
            output.error(usage)
            return Exit.usage
        }
    }

    static func printableArgument(_ text: String) -> String {
        String(text.unicodeScalars.prefix(60).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}

/// Where a command writes: stdout for its result, stderr for everything else.
struct Output: Sendable {
    let writeOut: @Sendable ([UInt8]) -> Void
    let writeError: @Sendable (String) -> Void
    let stdoutIsTerminal: Bool
    let logOutput: any LogOutput

    static let standard = Output(
        writeOut: { bytes in writeAll(1, bytes) },
        writeError: { text in writeAll(2, Array((text.hasSuffix("\n") ? text : text + "\n").utf8)) },
        stdoutIsTerminal: isatty(1) == 1,
        logOutput: StandardErrorOutput())

    func out(_ text: String) {
        writeOut(Array(text.utf8))
    }

    func error(_ text: String) {
        writeError(text)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 && errno == EINTR {
                    continue
                }
                if written <= 0 {
                    return
                }
                offset += written
            }
        }
    }
}

/// Loading the agent's configuration and enable list, shared by every command.
enum Setup {
    struct Loaded {
        let config: AgentConfig
        let enabled: [String]
        let problems: [AgentConfig.Problem]
        /// Set when no config file was given and the default one does not exist.
        let usingDefaults: Bool
    }

    static func load(_ options: Agent.Options) -> Loaded {
        let explicit = options.configPath != nil
        let given = options.configPath ?? AgentConfig.defaultPath
        let path = DiscoveryPath.normalize(given, relativeTo: currentDirectory()) ?? given
        var problems: [AgentConfig.Problem] = []
        var config = AgentConfig()
        var usingDefaults = false
        switch readText(path) {
        case .success(let text):
            let parsed = AgentConfig.parse(text, path: path)
            config = parsed.config
            problems += parsed.problems
        case .failure(let error) where error.code == .notFound && !explicit:
            usingDefaults = true
        case .failure(let error):
            problems.append(AgentConfig.Problem(path: path, line: 0, message: "cannot read: \(error.reason)"))
        }
        var enabled = Registry.names
        switch readText(config.collectorsFile) {
        case .success(let text):
            let parsed = Registry.enabled(fileText: text, path: config.collectorsFile)
            enabled = parsed.names
            problems += parsed.problems
        case .failure(let error) where error.code == .notFound:
            break
        case .failure(let error):
            problems.append(AgentConfig.Problem(path: config.collectorsFile, line: 0, message: "cannot read: \(error.reason)"))
        }
        return Loaded(config: config, enabled: enabled, problems: problems, usingDefaults: usingDefaults)
    }

    static func readText(_ path: String) -> Result<String, DiscoveryFileError> {
        do {
            return .success(try RealFileSystem().readText(path, limit: 1 << 20))
        } catch {
            return .failure(error)
        }
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else {
            return "/"
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func logger(_ config: AgentConfig, _ output: Output) -> Logger {
        Logger(level: Logger.Level(name: config.logLevel) ?? .info, output: output.logOutput)
    }
}
