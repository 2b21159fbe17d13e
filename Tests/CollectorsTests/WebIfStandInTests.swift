import Collectors
import Foundation
import TestSupport
import OScam
import Pipeline
import Platform
import Testing

/// The `webif` collector against the Python OScam stand-in on loopback, over real sockets and
/// libcurl: one test per state the collector names. The limit is generous: alone a case takes a
/// few seconds, but the whole suite runs in parallel with every other end-to-end test on CI's two
/// cores, where starting Python servers has taken 50 s.
@Suite(.timeLimit(.minutes(3)))
struct WebIfStandInTests {
    static let password = "Standin-Pw-7781"
    static let version = "2.26.05-11961@5b6fa7ad"

    // MARK: - ok

    @Test func okOverHTTPWithDigestAuth() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-ok", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)")
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "ok", "\(standIn.diagnostics)")
            #expect(status.enabled)
            #expect(status.reachable)
            #expect(status.httpStatus == 200)
            #expect(status.host == "127.0.0.1")
            #expect(status.port == port.port)
            #expect(status.tls == false)
            let latency = try #require(status.latencyMS)
            #expect(latency >= 0 && latency < 10_000)
            let version = try #require(status.version)
            #expect(version == Self.version)
            #expect(version.wholeMatch(of: #/\d+\.\d+\.\d+-\d+@[0-9a-f]{8}/#) != nil)
            let start = try #require(WebIfProbe.unixStartTime(versionFile: standIn.tempDir + "/oscam.version"))
            #expect(status.startedAt == WebIfProbe.isoLocal(start))
            #expect(status.readonly == false)
            #expect(status.posture == WebIfPosture(loopbackOnly: true, allowsLoopback: true, credentialsSet: true,
                                                   readonly: false, tls: false, bindsAll: true))
        }
    }

    @Test func okOverHTTPSWithTheSelfSignedCertificate() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-tls", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "+\(port.port)")
        }) { standIn in
            #expect(FileManager.default.fileExists(atPath: standIn.configDir + "oscam.pem"))
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "ok", "\(standIn.diagnostics)")
            #expect(status.tls)
            #expect(status.posture.tls)
            #expect(status.reachable)
            #expect(status.httpStatus == 200)
            #expect(status.port == port.port)
            #expect(status.version == Self.version)
            #expect(status.latencyMS != nil)
        }
    }

    @Test func okOverIPv6Loopback() async throws {
        let port = try ReservedPort(ipv6: true)
        try await OScamStandIn.with(label: "webif-v6", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", allowed: "::1", serverip: "::1")
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "ok", "\(standIn.diagnostics)")
            #expect(status.host == "::1")
            #expect(status.httpStatus == 200)
            #expect(status.posture.bindsAll == false)
            #expect(status.posture.loopbackOnly)
        }
    }

    /// OScam takes the value after `=` verbatim (no inline comments, §3.1), and Digest hashes
    /// whatever bytes it holds; the agent must send exactly those.
    @Test(arguments: [
        ("admin", "p@ss:w%rd;x"),
        ("admin", "with #hash"),
        ("Admin.User", "ünïcødé-Pw"),
        ("a:b", "colon-in-user"),
    ])
    func okWithAwkwardCredentials(user: String, password: String) async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-creds", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", user: user, pwd: password)
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "ok", "\(standIn.diagnostics)")
            #expect(status.httpStatus == 200)
        }
    }

    // MARK: - Refusals

    /// The agent reads a password OScam does not have: the file changed after OScam started.
    @Test func unauthorizedWhenThePasswordOnDiskIsNotOScams() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-401", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)")
        }) { standIn in
            try TestEnvironment.write(
                OScamStandIn.conf(logFile: standIn.logFile, httpport: "\(port.port)", pwd: "Changed-On-Disk-55"),
                to: standIn.confPath)
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "unauthorized", "\(standIn.diagnostics)")
            #expect(status.httpStatus == 401)
            #expect(status.reachable == false)
            #expect(status.version == nil)
            #expect(status.startedAt == nil)
            #expect(status.posture.credentialsSet)
            #expect(TestEnvironment.read(standIn.logFile).contains("invalid credentials"))
        }
    }

    /// `httpallowed` without loopback, or without any entry (then OScam allows nobody).
    @Test(arguments: ["10.0.0.1,192.168.1.0-192.168.1.255", nil] as [String?])
    func forbiddenWhenHttpallowedLacksLoopback(allowed: String?) async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-403", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", allowed: allowed)
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "forbidden", "\(standIn.diagnostics)")
            #expect(status.httpStatus == 403)
            #expect(status.reachable == false)
            #expect(status.version == nil)
            #expect(status.posture.allowsLoopback == false)
            #expect(status.posture.loopbackOnly == false)
            #expect(TestEnvironment.read(standIn.logFile).contains("invalid ip"))
        }
    }

    /// `httpallowed = ::1` alone, no `serverip`: `posture.allowsLoopback` is true ("so the agent
    /// can reach it"), but the collector still connects from 127.0.0.1, which OScam refuses. It
    /// should pick ::1, the loopback address the list admits. (After that fix the stand-in, which
    /// binds only 127.0.0.1 without `serverip`, answers `refused`; real OScam binds every
    /// address and would answer.)
    @Test func connectsFromALoopbackAddressThatHttpallowedAdmits() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-v6only", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", allowed: "::1")
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.posture.allowsLoopback)
            #expect(status.host == "::1")
            #expect(status.state != "forbidden")
        }
    }

    /// Nobody listens: the port stays bound (not listening) by the test for the whole call.
    @Test func refusedWhenNothingListens() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-refused", port: port, start: false, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)")
        }) { standIn in
            let (status, _, elapsed) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "refused")
            #expect(status.reachable == false)
            #expect(status.httpStatus == nil)
            #expect(status.latencyMS == nil)
            #expect(status.version == nil)
            #expect(status.enabled)
            #expect(status.port == port.port)
            #expect(elapsed < .seconds(2))
        }
        port.release()
    }

    /// The WebIF accepts and never answers; the collector keeps to its deadline.
    @Test func timeoutWhenTheWebIfHangs() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-hang", port: port, environment: ["OSCAM_STANDIN_WEBIF_HANG": "1"],
                                    conf: { OScamStandIn.conf(logFile: $0, httpport: "\(port.port)") }) { standIn in
            let (status, _, elapsed) = try await WebIfProbe.collect(standIn.instance, seconds: 2)
            #expect(status.state == "timeout", "\(standIn.diagnostics)")
            #expect(status.reachable == false)
            #expect(status.httpStatus == nil)
            #expect(status.version == nil)
            #expect(elapsed < .seconds(3), "the collector overran its 2 s deadline: \(elapsed)")
            #expect(elapsed > .milliseconds(1500), "gave up long before the deadline: \(elapsed)")
        }
    }

    /// The context's own WebIF timeout is shorter than the collector's deadline.
    @Test func timeoutFollowsTheConfiguredWebIfTimeout() async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-hang2", port: port, environment: ["OSCAM_STANDIN_WEBIF_HANG": "1"],
                                    conf: { OScamStandIn.conf(logFile: $0, httpport: "\(port.port)") }) { standIn in
            let (status, _, elapsed) = try await WebIfProbe.collect(standIn.instance, seconds: 10, webifTimeout: 1)
            #expect(status.state == "timeout")
            #expect(elapsed < .seconds(2), "webifTimeout 1 s not honoured: \(elapsed)")
        }
    }

    @Test func disabledWhenHttpportIsZero() async throws {
        try await OScamStandIn.with(label: "webif-off", port: nil, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "0")
        }) { standIn in
            let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "disabled")
            #expect(status.enabled == false)
            #expect(status.host == nil)
            #expect(status.port == nil)
            #expect(status.reachable == false)
            #expect(status.httpStatus == nil)
            #expect(status.latencyMS == nil)
        }
    }

    // MARK: - Not OScam, or an old one

    /// Something else answers on the WebIF port, or an SVN-era OScam whose header has no
    /// `commit` (OSCAM.md §7.5).
    @Test(arguments: [
        ("<html>not OScam</html>", "bad_response", 200, nil),
        ("{\"status\": {}}", "bad_response", 200, nil),
        (nil, "http_error", 404, nil),
        ("{\"oscam\": {\"version\": \"1.20_svn build r11700\", \"revision\": \"11700\", \"readonly\": \"0\"}}",
         "ok", 200, "1.20_svn build r11700"),
    ] as [(String?, String, Int, String?)])
    func statesForOtherServers(body: String?, state: String, httpStatus: Int, version: String?) async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-other", port: nil, start: false, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", user: nil, pwd: nil)
        }) { standIn in
            try await StaticWebServer.with(port: port, statusBody: body) {
                let (status, _, _) = try await WebIfProbe.collect(standIn.instance)
                #expect(status.state == state)
                #expect(status.httpStatus == httpStatus)
                #expect(status.reachable == (state == "ok"))
                #expect(status.version == version)
            }
        }
    }

    // MARK: - readonly

    /// `readonly` is what the running OScam says in the API header, `posture.readonly` what the
    /// file says: the file is changed after start so the two disagree.
    @Test(arguments: [true, false])
    func readonlyComesFromTheAPI(startedReadonly: Bool) async throws {
        let port = try ReservedPort()
        try await OScamStandIn.with(label: "webif-ro", port: port, conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)", readonly: startedReadonly)
        }) { standIn in
            let first = try await WebIfProbe.collect(standIn.instance).status
            #expect(first.state == "ok", "\(standIn.diagnostics)")
            #expect(first.readonly == startedReadonly)
            #expect(first.posture.readonly == startedReadonly)

            try TestEnvironment.write(
                OScamStandIn.conf(logFile: standIn.logFile, httpport: "\(port.port)", readonly: !startedReadonly),
                to: standIn.confPath)
            let second = try await WebIfProbe.collect(standIn.instance).status
            #expect(second.state == "ok")
            #expect(second.readonly == startedReadonly, "readonly must come from the API header")
            #expect(second.posture.readonly == !startedReadonly, "posture comes from oscam.conf")
        }
    }

    // MARK: - The status body stays out of the snapshot

    @Test func statusBodyNeverReachesTheSnapshot() async throws {
        let port = try ReservedPort()
        let server = """
            [reader]
            label = LeakMarkerReader9Q
            description = LeakMarkerDesc4Z
            protocol = cccam
            device = leakmarker-host.invalid,12000
            user = leakmarker-user
            password = leakmarker-pass

            """
        try await OScamStandIn.with(label: "webif-leak", port: port, files: ["oscam.server": server], conf: {
            OScamStandIn.conf(logFile: $0, httpport: "\(port.port)")
        }) { standIn in
            // What the WebIF really answers: a client list that names the reader.
            let raw = try await WebIfProbe.get(HTTPRequest(
                url: "http://127.0.0.1:\(port.port)/oscamapi.json?part=status", connectTimeout: 3, totalTimeout: 10,
                tls: .loopbackSelfSigned, digest: ("admin", Self.password)))
            #expect(raw.status == 200)
            let body = try #require(
                try JSONSerialization.jsonObject(with: Data(raw.body)) as? [String: Any], "status body is not JSON")
            let oscam = try #require(body["oscam"] as? [String: Any])
            let clientStatus = try #require(oscam["status"] as? [String: Any])
            let clients = try #require(clientStatus["client"] as? [[String: Any]])
            #expect(clients.count >= 3)
            #expect(String(decoding: raw.body, as: UTF8.self).contains("LeakMarkerReader9Q"),
                    "the stand-in's body should name the reader, or this test proves nothing")
            var markers = ["LeakMarkerReader9Q", "LeakMarkerDesc4Z", "\"client\"", "thid", "sysinfo", "totals"]
            markers += clients.compactMap { $0["thid"] as? String }

            let (status, contribution, _) = try await WebIfProbe.collect(standIn.instance)
            #expect(status.state == "ok", "\(standIn.diagnostics)")
            var snapshot = Snapshot(seq: 1, collectedAt: 0, agentVersion: "test")
            snapshot.instances = Array(contribution.instances.values)
            let encoded = String(decoding: snapshot.json.encoded(), as: UTF8.self)
            #expect(encoded.contains("\"webif\""))
            for marker in markers {
                #expect(!encoded.contains(marker), "status body content leaked into the snapshot: \(marker)")
            }
            for secret in ["leakmarker-host", "leakmarker-user", "leakmarker-pass", Self.password, "admin"] {
                #expect(!encoded.contains(secret), "secret leaked: \(secret)")
            }
        }
    }
}
