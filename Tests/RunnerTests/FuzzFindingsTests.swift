import FoundationEssentials
import Pipeline
import Platform
import Sinks
import Testing
import TestSupport
@testable import Runner

/// A panel stand-in that answers a registration with `body`, signed with the secret the request
/// carried, as a panel that has accepted the token would.
final class SigningRegistrationPanel: HTTPTransport {
    let body: [UInt8]

    init(_ body: String) {
        self.body = Array(body.utf8)
    }

    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        guard case .object(let fields)? = try? StrictJSON.parse(request.body ?? []), case .string(let secret)? = fields["secret"],
              let key = Data(base64Encoded: secret),
              let nonce = request.headers.first(where: { $0.0 == "X-MyOsicam-Nonce" })?.1 else {
            throw HTTPError(kind: .refused, message: "not a registration")
        }
        let timestamp: Int64 = 1_795_945_630
        let signature = PanelSigner(serverID: "", secret: Array(key)).signature(
            PanelSigner.responseString(status: 201, requestNonce: nonce, timestamp: timestamp, body: body))
        return HTTPResponse(status: 201, headers: [("x-myosicam-timestamp", String(timestamp)),
                                                   ("x-myosicam-signature", signature)], body: body, seconds: 0.001)
    }
}

/// Crashes found by following what the panel_response fuzz target's parsers accept into the code
/// that uses it (reliability/fuzz, docs/reliability.md "Fuzzing"): numbers the panel may send
/// that trapped in the agent's arithmetic, and turned into a crash at every start.
@Suite struct FuzzFindingsTests {
    /// A valid command may say it expires at `Int64.max`; once answered, pruning its record added
    /// a day to that and trapped, at every start of the daemon.
    @Test func aCommandThatNeverExpiresIsKeptWithoutTrapping() throws {
        let store = CommandStore(stateDir: try TestEnvironment.makeTempDir("prune"))
        let record = CommandRecord(id: "cmd_forever", type: "resync", instance: nil, expiresAt: .max, phase: .done,
                                   startedAt: 10, result: CommandResult(status: .succeeded, startedAt: 10, finishedAt: 11,
                                                                        message: "ok"), reported: true)
        try store.save(record)
        store.prune(now: unixNow())
        #expect(store.exists("cmd_forever"))
        #expect(!CommandStore.isPastKeeping(record, now: .max))
    }

    /// A registration answer's `server_time` went into `server_time - now` unchecked: the lowest
    /// Int64 trapped there, the highest trapped in the next request's timestamp (now + offset),
    /// and the offset is saved, so every restart crashed again.
    @Test(arguments: [(Int64.min, Int64(0)), (.max, 0), (-1, 0), (1_000_000_000_000_000_000, 0), (1_795_945_700, 71)])
    func aServerTimeNoTimestampHeaderCouldCarryIsIgnored(_ serverTime: Int64, _ offset: Int64) throws {
        let dir = try TestEnvironment.makeTempDir("register")
        try TestEnvironment.write("token\n", to: dir + "/install-token")
        var config = AgentConfig()
        config.panelURL = "https://panel.invalid"
        config.stateDir = dir + "/state"
        config.installTokenFile = dir + "/install-token"
        let panel = SigningRegistrationPanel(#"{"server_id":"srv_0123456789abcdef","server_time":\#(serverTime)}"#)
        let outcome = Register.register(config: config, transport: panel, logger: Logger(output: MemoryLogOutput()),
                                        now: { 1_795_945_629 })
        #expect(outcome == .registered(serverID: "srv_0123456789abcdef", already: false))
        #expect(try StateStore(directory: config.stateDir).load()?.clockOffset == offset)
    }
}
