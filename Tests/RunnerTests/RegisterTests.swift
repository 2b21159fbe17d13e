#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Pipeline
import Platform
import Testing
import TestSupport
@testable import Runner

/// The development panel (tools/devpanel) on loopback over real HTTPS, for end-to-end tests.
final class DevPanelProcess: @unchecked Sendable {
    static let repoRoot = TestEnvironment.packageRoot
    let data: String
    let port: Int
    private let process: Process

    init(serveArguments: [String] = []) throws {
        data = try makeTempDirectory()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.repoRoot + "/tools/devpanel/devpanel", "serve", "--data", data, "--port", "0",
                             "--port-file", data + "/port"] + serveArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var found: Int?
        for _ in 0..<200 where found == nil {
            if let text = readBytes(data + "/port").map({ String(decoding: $0, as: UTF8.self) }),
               let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                found = value
            } else {
                usleep(50_000)
            }
        }
        guard let found else {
            process.terminate()
            throw TempError()
        }
        port = found
    }

    deinit {
        stop()
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var url: String {
        "https://127.0.0.1:\(port)"
    }

    /// Runs an admin subcommand and returns its stdout.
    @discardableResult
    func admin(_ arguments: [String]) throws -> String {
        let admin = Process()
        admin.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        admin.arguments = ["python3", Self.repoRoot + "/tools/devpanel/devpanel"] + [arguments[0], "--data", data]
            + arguments.dropFirst()
        let pipe = Pipe()
        admin.standardOutput = pipe
        admin.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try admin.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        admin.waitUntilExit()
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// An agent config for this panel in a fresh directory, with a fresh install token.
    func agentConfig(token: String? = nil) throws -> (config: AgentConfig, dir: String, token: String) {
        let dir = try makeTempDirectory()
        let token = try token ?? admin(["token"])
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/install-token"))
        var config = AgentConfig()
        config.panelURL = url
        config.caFile = data + "/ca.pem"
        config.stateDir = dir + "/state"
        config.installTokenFile = dir + "/install-token"
        return (config, dir, token)
    }
}

@Suite(.serialized) struct RegisterTests {
    static let logger = Logger(level: .debug, output: MemoryLogOutput())

    @Test func registersOnceThenSaysSo() throws {
        let panel = try DevPanelProcess()
        let (config, dir, token) = try panel.agentConfig()
        let log = MemoryLogOutput()
        let outcome = Register.register(config: config, transport: CurlTransport(), logger: Logger(output: log))
        guard case .registered(let serverID, false) = outcome else {
            Issue.record("expected a new registration, got \(outcome)")
            return
        }
        #expect(serverID.hasPrefix("srv_"))
        #expect(readBytes(dir + "/install-token") == nil, "the token file is removed after success")
        var info = stat()
        #expect(stat(config.stateDir, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(stat(config.stateDir + "/state.json", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let state = try #require(try StateStore(directory: config.stateDir).load())
        #expect(state.status == .registered && state.serverID == serverID && abs(state.clockOffset) <= 2)
        #expect(try panel.admin(["servers"]).contains(serverID))
        // A crash after saving the registration and before deleting the token left the token:
        // the next start finds the registration and removes the spent token.
        try Data("spent-token\n".utf8).write(to: URL(fileURLWithPath: config.installTokenFile))
        #expect(Register.register(config: config, transport: CurlTransport(), logger: Self.logger)
            == .registered(serverID: serverID, already: true))
        #expect(readBytes(config.installTokenFile) == nil)
        // Neither the token nor the secret reached a log line.
        let secret = Data(state.secret).base64EncodedString()
        #expect(!log.lines.joined().contains(token) && !log.lines.joined().contains(secret))
    }

    @Test func aCrashAfterThePanelAcceptedIsRepairedByRetrying() throws {
        let panel = try DevPanelProcess()
        let (config, _, token) = try panel.agentConfig()
        guard case .registered(let first, _) = Register.register(config: config, transport: CurlTransport(),
                                                                 logger: Self.logger) else {
            Issue.record("first registration failed")
            return
        }
        // The agent died after the panel accepted and before it recorded success: the state is
        // still pending with the same secret, and the token file is still there.
        let store = StateStore(directory: config.stateDir)
        var state = try #require(try store.load())
        state.status = .pending
        state.serverID = nil
        try store.save(state)
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: config.installTokenFile))
        #expect(Register.register(config: config, transport: CurlTransport(), logger: Self.logger)
            == .registered(serverID: first, already: false))
        // Another secret with the same token is refused.
        let (other, _, _) = try panel.agentConfig(token: token)
        guard case .rejected(let message) = Register.register(config: other, transport: CurlTransport(),
                                                              logger: Self.logger) else {
            Issue.record("a used token must be refused for another secret")
            return
        }
        #expect(message.contains("already used"))
    }

    @Test func anUnknownTokenIsRefusedWithTheRemedy() throws {
        let panel = try DevPanelProcess()
        let (config, _, _) = try panel.agentConfig(token: "mit_" + String(repeating: "A", count: 43))
        guard case .rejected(let message) = Register.register(config: config, transport: CurlTransport(), logger: Self.logger) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(message.contains("get a new install token"))
        #expect(!message.contains("AAAAAAAA"))
    }

    @Test func aWrongCAIsRefused() throws {
        let panel = try DevPanelProcess()
        var (config, _, _) = try panel.agentConfig()
        let other = try DevPanelProcess()
        config.caFile = other.data + "/ca.pem"
        guard case .unavailable = Register.register(config: config, transport: CurlTransport(), logger: Self.logger) else {
            Issue.record("a panel certificate from another CA must be refused")
            return
        }
    }

    @Test func aSecretSavedBeforeACrashIsTheOneRegistered() throws {
        // Killed after the secret was saved and before the panel was called: the next start
        // registers with that same secret.
        let panel = try DevPanelProcess()
        let (config, _, _) = try panel.agentConfig()
        let secret = Array(repeating: UInt8(7), count: 32)
        try StateStore(directory: config.stateDir).save(AgentState(status: .pending, secret: secret))
        guard case .registered = Register.register(config: config, transport: CurlTransport(), logger: Self.logger) else {
            Issue.record("registration with the saved secret failed")
            return
        }
        #expect(try StateStore(directory: config.stateDir).load()?.secret == secret)
    }

    @Test func anExpiredTokenIsRefused() throws {
        let panel = try DevPanelProcess()
        let token = try panel.admin(["token", "--ttl", "1"])
        sleep(2)
        let (config, _, _) = try panel.agentConfig(token: token)
        guard case .rejected(let message) = Register.register(config: config, transport: CurlTransport(),
                                                              logger: Self.logger) else {
            Issue.record("an expired token must be refused")
            return
        }
        #expect(message.contains("unknown, expired or revoked"))
    }

    @Test func aPublicKeyPinIsEnforcedOnTopOfTheCA() throws {
        let panel = try DevPanelProcess()
        var (config, _, _) = try panel.agentConfig()
        config.pinSHA256 = "sha256//" + String(repeating: "A", count: 43) + "="
        guard case .unavailable(let message) = Register.register(config: config, transport: CurlTransport(),
                                                                 logger: Self.logger) else {
            Issue.record("a wrong pin must be refused")
            return
        }
        #expect(message.contains("registration failed"))
        config.pinSHA256 = TestEnvironment.read(panel.data + "/pin-sha256.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(config.pinSHA256?.hasPrefix("sha256//") == true)
        guard case .registered = Register.register(config: config, transport: CurlTransport(), logger: Self.logger) else {
            Issue.record("the right pin must be accepted")
            return
        }
    }

    @Test func aCorruptStateIsReportedNotReplaced() throws {
        let panel = try DevPanelProcess()
        let (config, _, _) = try panel.agentConfig()
        #expect(mkdir(config.stateDir, 0o700) == 0)
        try Data("{\"version\":1,\"status\":\"registered\"".utf8).write(to: URL(fileURLWithPath: config.stateDir + "/state.json"))
        guard case .failed(let message) = Register.register(config: config, transport: CurlTransport(), logger: Self.logger) else {
            Issue.record("a damaged state must stop registration")
            return
        }
        #expect(message.contains("state.json") && message.contains("damaged"))
        #expect(readBytes(config.stateDir + "/state.json") == Array("{\"version\":1,\"status\":\"registered\"".utf8))
    }
}


/// The real binary killed with SIGKILL at each step of registration (PausePoint names in
/// Register.swift), then started again: it ends registered exactly once, as the server the panel
/// gave it, with a state file that loads and the install token removed.
@Suite(.serialized) struct RegistrationKillTests {
    static let cases: [(point: String, command: String)] = [
        ("register:secret-saved", "register"), ("register:verified", "register"), ("register:saved", "register"),
        ("register:secret-saved", "run"), ("register:verified", "run"), ("register:saved", "run"),
    ]

    static func servers(_ panel: DevPanelProcess) throws -> [[String: Any]] {
        try panel.admin(["servers"]).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test(arguments: cases)
    func aKillAtEachStepEndsRegisteredExactlyOnce(_ point: String, _ command: String) throws {
        let panel = try DevPanelProcess(serveArguments: ["--heartbeat-interval", "1"])
        let (conf, dir) = try DaemonTests.agentConf(panel, tree: try DaemonTests.tree())
        let tokenFile = dir + "/install-token"
        let store = StateStore(directory: dir + "/state")
        let killed = try DaemonTests.Running([command, "--config", conf] + (command == "run" ? ["--allow-root"] : []),
                                             environment: ["MYOSICAM_TEST_PAUSE_AT": point])
        let pid = killed.process.processIdentifier
        #expect(DaemonTests.waitFor(30) { CommandTests.isStopped(pid) }, "the agent reached \(point)")
        kill(pid, SIGKILL)
        killed.process.waitUntilExit()

        // What the kill left behind: a state that loads, with the secret saved before the call.
        let left = try #require(try store.load(), "the secret is saved before the panel is called")
        let seen = try Self.servers(panel)
        switch point {
        case "register:secret-saved":
            #expect(left.status == .pending && seen.isEmpty, "killed before the request")
        case "register:verified":
            #expect(left.status == .pending && seen.count == 1, "the panel accepted; the agent did not record it")
        default:
            #expect(left.status == .registered && left.serverID == seen.first?["server_id"] as? String)
            #expect(readBytes(tokenFile) != nil, "killed before the token was removed")
        }

        // The next start.
        let next = try DaemonTests.Running(["run", "--config", conf, "--allow-root"])
        var id = ""
        #expect(try DaemonTests.waitFor(20) {
            id = (try DaemonTests.serverID(panel)) ?? ""
            return !id.isEmpty && (try? panel.admin(["heartbeats", id]))?.isEmpty == false
        })
        let stopped = next.terminate()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        let servers = try Self.servers(panel)
        #expect(servers.count == 1, "registered exactly once: \(servers)")
        if let first = seen.first {
            #expect(first["server_id"] as? String == id, "the server the panel gave it at the killed attempt")
        }
        // Only the kill after the panel's answer and before the state was saved needs the retry.
        #expect(servers.first?["register_count"] as? Int == (point == "register:verified" ? 2 : 1))
        let state = try #require(try store.load())
        #expect(state.status == .registered && state.serverID == id)
        #expect(state.secret == left.secret, "the secret saved before the first call is the one registered")
        #expect(readBytes(tokenFile) == nil, "the spent install token is removed")
        let status = Capture()
        #expect(Agent.main(arguments: ["status", "--config", conf], output: status.output) == 0)
        #expect(status.stdout.contains("registration: registered as \(id)"))
    }
}
