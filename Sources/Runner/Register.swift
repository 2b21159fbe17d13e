#if canImport(Glibc)
import Glibc
#endif
import Collectors
import FoundationEssentials
import OScam
import Pipeline
import Platform
import Sinks

/// `register`: PANEL-API "Registration", once, for the installer. The secret is created and
/// saved (state `pending`) before the panel is called, so a crash between the panel's answer and
/// the agent's write is repaired by retrying with the same token and secret.
enum Register {
    static let path = "/api/agent/v1/register"

    enum Outcome: Equatable {
        case registered(serverID: String, already: Bool)
        /// The token is unusable: the operator needs a new one. Exit 78.
        case rejected(String)
        /// Network or panel trouble: try again later. Exit 69.
        case unavailable(String)
        /// Local trouble (state, token file, randomness). Exit 78.
        case failed(String)
    }

    static func run(_ options: Agent.Options, output: Output) -> Int32 {
        let setup = Setup.load(options)
        let logger = Setup.logger(setup.config, output)
        guard setup.problems.isEmpty else {
            setup.problems.forEach { logger.error("configuration problem", [("at", $0.description)]) }
            return Exit.config
        }
        if let status = StateLock.acquire(setup.config.stateDir, logger: logger) {
            return status
        }
        switch register(config: setup.config, transport: CurlTransport(), logger: logger) {
        case .registered(let serverID, let already):
            logger.info(already ? "already registered" : "registered", [("server_id", serverID)])
            return Exit.ok
        case .rejected(let message):
            logger.error(message)
            return Exit.config
        case .unavailable(let message):
            logger.error(message)
            return Exit.unavailable
        case .failed(let message):
            logger.error(message)
            return Exit.config
        }
    }

    static func register(config: AgentConfig, transport: any HTTPTransport, logger: Logger,
                         now: () -> Int64 = unixNow) -> Outcome {
        let store = StateStore(directory: config.stateDir)
        var state: AgentState
        do {
            if let existing = try store.load() {
                if existing.status != .pending, let serverID = existing.serverID {
                    discardSpentToken(config)
                    return .registered(serverID: serverID, already: true)
                }
                state = existing
            } else {
                guard let secret = Crypto.randomBytes(32) else {
                    return .failed("libcrypto could not produce a random secret; nothing was sent")
                }
                state = AgentState(status: .pending, secret: secret)
                try store.save(state)
            }
        } catch {
            return .failed(error.description)
        }
        PausePoint.reach("register:secret-saved")
        guard !state.tokenConsumed else {
            return .rejected("the install token was already used; get a new one from the panel and put it in "
                + config.installTokenFile)
        }
        let token: String
        switch Setup.readText(config.installTokenFile) {
        case .success(let text):
            token = text.trimmed.split(separator: "\n").first.map { String($0).trimmed } ?? ""
        case .failure(let error):
            return .failed("\(config.installTokenFile): cannot read the install token (\(error.reason)); get one from "
                + "the panel and write it there (mode 0600)")
        }
        guard !token.isEmpty, token.utf8.count <= 512 else {
            return .failed("\(config.installTokenFile): the install token is empty or malformed")
        }
        guard let nonce = PanelSigner.makeNonce() else {
            return .failed("libcrypto could not produce a nonce; nothing was sent")
        }
        let body = JSONValue.members([
            ("install_token", .string(token)),
            ("secret", .string(Data(state.secret).base64EncodedString())),
            ("host", hostJSON()),
        ]).encoded()
        let timestamp = now()
        let request = HTTPRequest(
            method: "POST", url: config.panelURL + path,
            headers: [("Content-Type", "application/json"), ("X-MyOsicam-Timestamp", String(timestamp)),
                      ("X-MyOsicam-Nonce", nonce)],
            body: body, connectTimeout: 10, totalTimeout: 30, maxResponseBytes: 4 << 20,
            tls: .verify(caFile: config.caFile, pin: config.pinSHA256))
        let response: HTTPResponse
        do {
            response = try transport.perform(request)
        } catch {
            return .unavailable("registration failed: \(error.message) (endpoint \(config.panelURL + path))")
        }
        let received = now()
        // Signed with the secret this request carried; the server id is not known yet.
        let signer = PanelSigner(serverID: "", secret: state.secret)
        let verified = signer.verifyResponse(
            status: response.status, requestNonce: nonce, timestampHeader: response.header("x-myosicam-timestamp"),
            signatureHeader: response.header("x-myosicam-signature"), body: response.body)
        let errorName = PanelClient.errorName(response.body)
        switch response.status {
        case 200, 201:
            guard verified != nil else {
                return .unavailable("the panel's registration answer is not signed with this agent's secret; "
                    + "nothing in it was used (check panel.url and ca_file)")
            }
            guard case .object(let members)? = try? StrictJSON.parse(response.body),
                  case .string(let serverID)? = members["server_id"], StateStore.isValidID(serverID) else {
                return .unavailable("the panel's registration answer has no valid server_id")
            }
            PausePoint.reach("register:verified")
            var registered = state
            registered.status = .registered
            registered.serverID = serverID
            registered.registeredAt = received
            // Only a time a timestamp header could carry: the offset is subtracted here and
            // added to the local clock for every later request, and must overflow in neither.
            if case .int(let serverTime)? = members["server_time"], PanelSigner.timestampRange.contains(serverTime) {
                registered.clockOffset = serverTime - received
            }
            do {
                try store.save(registered)
            } catch {
                return .failed(error.description)
            }
            PausePoint.reach("register:saved")
            if unlink(config.installTokenFile) != 0 && errno != ENOENT {
                registered.tokenConsumed = true
                try? store.save(registered)
                logger.warning("the install token could not be deleted; it will not be read again",
                               [("path", config.installTokenFile)])
            }
            return .registered(serverID: serverID, already: false)
        case 401 where errorName == "invalid_token", 409 where errorName == "token_used",
             400 where errorName == "invalid_secret":
            // Final either way; a signature, when present, must hold.
            if response.header("x-myosicam-signature") != nil && verified == nil {
                return .unavailable("the panel's answer (\(response.status)) has a signature that does not verify; ignored")
            }
            let remedy = "get a new install token from the panel, write it to \(config.installTokenFile) and run "
                + "'myosicam-agent register' again"
            switch errorName {
            case "invalid_token": return .rejected("the panel refused the install token (unknown, expired or revoked): \(remedy)")
            case "token_used": return .rejected("the install token was already used by another agent: \(remedy)")
            default: return .rejected("the panel refused this agent's secret (invalid_secret): \(remedy)")
            }
        default:
            return .unavailable("registration failed: the panel answered HTTP \(response.status)"
                + (errorName.map { " (\($0))" } ?? "") + "; try again later")
        }
    }

    /// The install token of a registered agent is spent: a crash between saving the registration
    /// and deleting the token can leave it behind, so every start that finds the registration
    /// removes it.
    static func discardSpentToken(_ config: AgentConfig) {
        unlink(config.installTokenFile)
    }

    /// The registration's `host` object: all strings, `machine_id` possibly empty.
    static func hostJSON() -> JSONValue {
        let machine = HostCollector.machine() ?? (hostname: "", osID: "", osVersion: "", kernel: "", arch: "")
        let machineID = ((try? RealFileSystem().readText("/etc/machine-id")) ?? "").trimmed
            .split(separator: "\n").first.map(String.init) ?? ""
        return .members([
            ("hostname", .string(machine.hostname)), ("machine_id", .string(machineID)),
            ("os_id", .string(machine.osID)), ("os_version", .string(machine.osVersion)),
            ("kernel", .string(machine.kernel)), ("arch", .string(machine.arch)),
            ("agent_version", .string(AgentVersion.current)),
        ])
    }
}
