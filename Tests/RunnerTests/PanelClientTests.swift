#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Pipeline
import Platform
import Sinks
import Testing
import TestSupport
@testable import Runner

/// Signed exchanges with the development panel over real HTTPS on loopback.
@Suite(.serialized) struct PanelClientTests {
    static func registeredClient(_ panel: DevPanelProcess, clock: @escaping @Sendable () -> Int64 = unixNow)
        throws -> (PanelClient, serverID: String) {
        let (config, _, _) = try panel.agentConfig()
        guard case .registered(let serverID, _) = Register.register(
            config: config, transport: CurlTransport(), logger: Logger(output: MemoryLogOutput())) else {
            throw TempError()
        }
        let state = try #require(try StateStore(directory: config.stateDir).load())
        let client = PanelClient(baseURL: panel.url, transport: CurlTransport(),
                                 tls: .verify(caFile: config.caFile, pin: nil),
                                 signer: PanelSigner(serverID: serverID, secret: state.secret),
                                 clockOffset: state.clockOffset, clock: clock)
        return (client, serverID)
    }

    static func heartbeat(seq: Int64, offset: Int64) -> [UInt8] {
        JSONValue.members([
            ("seq", .int(seq)),
            ("agent", .members([("version", .string("0.1.0")), ("started_at", .int(unixNow())), ("uptime_s", .int(1)),
                                ("rss_mb", .fixed(Fixed(9.1))), ("cpu_percent", .fixed(Fixed(0.1)))])),
            ("clock_offset_s", .int(offset)),
            ("instances", .members([("total", .int(0)), ("running", .int(0))])),
            ("spool", .members([("snapshots", .int(0)), ("results", .int(0)), ("dropped", .int(0)), ("rejected", .int(0))])),
            ("last_snapshot", .null),
        ]).encoded()
    }

    @Test func aSignedHeartbeatIsAcceptedAndItsAnswerVerified() throws {
        let panel = try DevPanelProcess()
        let (client, serverID) = try Self.registeredClient(panel)
        let reply = try client.post("/heartbeat", body: Self.heartbeat(seq: 1, offset: 0))
        #expect(reply.status == 200)
        guard case .object(let members)? = reply.json else {
            Issue.record("the heartbeat answer is JSON")
            return
        }
        #expect(members["heartbeat_interval_s"] == .int(60))
        // The panel stored the exact bytes that were signed.
        let stored = try panel.admin(["heartbeats", serverID])
        #expect(stored.contains("\"seq\": 1") || stored.contains("\"seq\":1"))
    }

    @Test func aKeptConnectionCarriesManySignedExchanges() throws {
        let panel = try DevPanelProcess()
        let (config, _, _) = try panel.agentConfig()
        guard case .registered(let serverID, _) = Register.register(
            config: config, transport: CurlTransport(), logger: Logger(output: MemoryLogOutput())) else {
            Issue.record("registration failed")
            return
        }
        let state = try #require(try StateStore(directory: config.stateDir).load())
        let client = PanelClient(baseURL: panel.url, transport: CurlTransport(reuseConnections: true),
                                 tls: .verify(caFile: config.caFile, pin: nil),
                                 signer: PanelSigner(serverID: serverID, secret: state.secret),
                                 clockOffset: state.clockOffset, clock: unixNow)
        for seq in 1...5 {
            #expect(try client.post("/heartbeat", body: Self.heartbeat(seq: Int64(seq), offset: 0)).status == 200)
        }
        // A fresh nonce per request even on one connection: the panel would refuse a replay.
        let big = [UInt8](repeating: 0x20, count: 9000)
        let reply = try client.post("/heartbeat", body: Self.heartbeat(seq: 6, offset: 0) + big)
        #expect(reply.status == 200, "a gzipped body over the kept connection")
    }

    @Test func aClockTenMinutesOffIsRecovered() throws {
        let panel = try DevPanelProcess()
        // The agent's clock is ten minutes slow.
        let (client, _) = try Self.registeredClient(panel) { unixNow() - 600 }
        let reply = try client.post("/heartbeat", body: Self.heartbeat(seq: 1, offset: 0))
        #expect(reply.status == 200)
        #expect(abs(client.clockOffset - 600) <= 2)
    }

    @Test(arguments: ["bad-signature", "unsigned", "replay", "garbage"])
    func answersNotSignedForThisRequestAreIgnored(_ fault: String) throws {
        let panel = try DevPanelProcess()
        let (client, _) = try Self.registeredClient(panel)
        if fault == "replay" {
            _ = try client.post("/heartbeat", body: Self.heartbeat(seq: 1, offset: 0))
        }
        try panel.admin(["fault", fault])
        do {
            let reply = try client.post("/heartbeat", body: Self.heartbeat(seq: 2, offset: 0))
            // Garbage is signed by the panel: verified, but not JSON.
            #expect(fault == "garbage" && reply.json == nil)
        } catch {
            #expect(fault != "garbage")
            if case .unverified(_, let unsignedRejection) = error {
                #expect(!unsignedRejection)
            } else {
                Issue.record("expected .unverified, got \(error)")
            }
        }
    }

    @Test func aRevokedServerGetsUnsignedRejections() throws {
        let panel = try DevPanelProcess()
        let (client, serverID) = try Self.registeredClient(panel)
        try panel.admin(["revoke", serverID])
        #expect(throws: PanelClient.Failure.unverified(status: 401, unsignedRejection: true)) {
            try client.post("/heartbeat", body: Self.heartbeat(seq: 1, offset: 0))
        }
    }
}
