import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Platform
import Testing

/// What `/echo` saw.
struct Echo: Decodable {
    let method: String
    let target: String
    let version: String
    let headers: [[String]]
    let body_hex: String

    /// Every value of a request header, matched case-insensitively.
    func values(_ name: String) -> [String] {
        headers.filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.last }
    }

    static func decode(_ response: HTTPResponse) throws -> Echo {
        try JSONDecoder().decode(Echo.self, from: Data(response.body))
    }
}

func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let duration = start.duration(to: ContinuousClock().now)
    return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Runs `request` and returns the error it throws, or records an issue if it succeeds.
func expectFailure(_ transport: CurlTransport, _ request: HTTPRequest,
                   sourceLocation: SourceLocation = #_sourceLocation) -> HTTPError? {
    do {
        let response = try transport.perform(request)
        Issue.record("expected a failure, got status \(response.status)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Every transfer goes to a server this test started on 127.0.0.1. Serialized so the timing
/// assertions do not compete with each other for the two threads a small CI machine has.
@Suite(.serialized) struct CurlTransportTests {
    /// Loopback requests in the WebIF's form: `.loopbackSelfSigned` also switches off any proxy
    /// from the environment, which keeps the tests hermetic.
    func request(_ server: LoopbackServer, _ path: String, method: String = "GET", headers: [(String, String)] = [],
                 body: [UInt8]? = nil, totalTimeout: Double = 10, maxResponseBytes: Int = 4 << 20,
                 digest: (user: String, password: String)? = nil) -> HTTPRequest {
        HTTPRequest(method: method, url: server.url(path), headers: headers, body: body, connectTimeout: 5,
                    totalTimeout: totalTimeout, maxResponseBytes: maxResponseBytes, tls: .loopbackSelfSigned,
                    digest: digest)
    }

    // MARK: - Requests and responses

    @Test func getSendsHeadersAndNothingElse() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let response = try CurlTransport().perform(request(
            server, "/echo?x=1&y=%20", headers: [("X-Custom", "a b"), ("Accept", "application/json")]))
        #expect(response.status == 200)
        let echo = try Echo.decode(response)
        #expect(echo.method == "GET")
        #expect(echo.target == "/echo?x=1&y=%20")
        #expect(echo.values("X-Custom") == ["a b"])
        #expect(echo.values("Accept") == ["application/json"])
        #expect(echo.values("Host") == ["127.0.0.1:\(server.port)"])
        #expect(echo.values("Expect").isEmpty)
        #expect(echo.values("Accept-Encoding").isEmpty)
        #expect(echo.values("Content-Length").isEmpty)
        #expect(echo.body_hex.isEmpty)
        #expect(response.seconds > 0 && response.seconds < 10)
    }

    @Test func responseHeadersAreLowerCasedAndTrimmed() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let response = try CurlTransport().perform(request(server, "/echo"))
        #expect(response.headers.allSatisfy { $0.0 == $0.0.lowercased() })
        #expect(response.headers.contains { $0.0 == "x-mixed-case" && $0.1 == "Value: with colon" })
        #expect(response.header("X-MIXED-CASE") == "Value: with colon")
        #expect(response.header("content-type") == "application/json")
        #expect(response.header("Server") == "webserver/1.0")
        #expect(response.header("content-length") == String(response.body.count))
        // Repeated headers are all kept in order; `header` gives the last one.
        #expect(response.headers.filter { $0.0 == "x-dup" }.map(\.1) == ["1", "2"])
        #expect(response.header("x-dup") == "2")
        #expect(response.header("x-absent") == nil)
        // The status line is not a header.
        #expect(!response.headers.contains { $0.0.hasPrefix("http/") })
    }

    @Test func postSendsTheBodyExactlyWithoutExpect() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        // Large enough that libcurl would otherwise add "Expect: 100-continue"; every byte value.
        let body = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let response = try CurlTransport().perform(request(
            server, "/echo", method: "POST", headers: [("Content-Type", "application/json")], body: body))
        #expect(response.status == 200)
        let echo = try Echo.decode(response)
        #expect(echo.method == "POST")
        #expect(echo.body_hex == Crypto.hex(body))
        #expect(echo.values("Content-Length") == ["65536"])
        #expect(echo.values("Content-Type") == ["application/json"])
        #expect(echo.values("Expect").isEmpty)
        #expect(echo.values("Accept-Encoding").isEmpty)
        #expect(echo.values("Transfer-Encoding").isEmpty)
    }

    @Test func postWithAnEmptyBodySendsContentLengthZero() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let echo = try Echo.decode(CurlTransport().perform(request(server, "/echo", method: "POST", body: [])))
        #expect(echo.method == "POST")
        #expect(echo.values("Content-Length") == ["0"])
        #expect(echo.body_hex.isEmpty)
    }

    @Test
    func postWithoutABodySendsContentLengthZero() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let echo = try Echo.decode(CurlTransport().perform(request(server, "/echo", method: "POST", body: nil)))
        #expect(echo.method == "POST")
        #expect(echo.values("Content-Length") == ["0"])
    }

    @Test(arguments: ["PUT", "DELETE"])
    func otherMethodsAreSentAsGiven(_ method: String) throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let echo = try Echo.decode(CurlTransport().perform(request(server, "/echo", method: method,
                                                                   body: Array("{}".utf8))))
        #expect(echo.method == method)
        #expect(echo.body_hex == "7b7d")
    }

    @Test func statusCodesAreReturnedNotThrown() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let transport = CurlTransport()
        for status in [200, 201, 204, 400, 401, 403, 404, 413, 429, 500, 503] {
            let response = try transport.perform(request(server, "/status/\(status)"))
            #expect(response.status == status)
            #expect(response.body == (status == 204 ? [] : Array("status body".utf8)), "status \(status)")
        }
    }

    @Test func redirectsAreNotFollowed() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let response = try CurlTransport().perform(request(server, "/status/302"))
        #expect(response.status == 302)
        #expect(response.header("location") == "/echo")
        #expect(response.body == Array("status body".utf8))
    }

    // MARK: - Limits and failures

    @Test func responseSizeLimit() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let transport = CurlTransport()
        let exact = try transport.perform(request(server, "/bytes?n=1000", maxResponseBytes: 1000))
        #expect(exact.body.count == 1000)
        let error = expectFailure(transport, request(server, "/bytes?n=1001", maxResponseBytes: 1000))
        #expect(error?.kind == .tooLarge)
        #expect(error?.message == "response larger than 1000 bytes refused")
        // The default is 4 MiB.
        let big = expectFailure(transport, request(server, "/bytes?n=\((4 << 20) + 1)"))
        #expect(big?.kind == .tooLarge)
        #expect(try transport.perform(request(server, "/bytes?n=\(4 << 20)")).body.count == 4 << 20)
    }

    /// A declared length over the cap is refused before any of the body is read or buffered
    /// (devpanel's `huge` fault made every channel buffer 4 MiB at once: 52 MB of RSS).
    @Test func aDeclaredLengthOverTheCapIsRefusedBeforeTheBody() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let start = Date()
        // `/drip` announces 100 kB and sends a byte every 20 ms: reading 1,001 bytes takes 20 s.
        let error = expectFailure(CurlTransport(), request(server, "/drip", maxResponseBytes: 1000))
        #expect(error?.kind == .tooLarge)
        #expect(error?.message == "response larger than 1000 bytes refused")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func aServerThatNeverAnswersTimesOut() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let start = ContinuousClock().now
        let error = expectFailure(CurlTransport(), request(server, "/hang", totalTimeout: 0.5))
        let elapsed = elapsedSeconds(since: start)
        #expect(error?.kind == .timeout)
        #expect(error.map { !$0.message.isEmpty } == true)
        #expect(elapsed >= 0.45 && elapsed < 2.0, "took \(elapsed) s")
    }

    @Test func aClosedPortIsRefused() throws {
        let closed = try ClosedPort()
        defer { closed.close() }
        let start = ContinuousClock().now
        let request = HTTPRequest(url: "http://127.0.0.1:\(closed.port)/", connectTimeout: 2, totalTimeout: 5,
                                  tls: .loopbackSelfSigned)
        let error = expectFailure(CurlTransport(), request)
        #expect(error?.kind == .refused)
        #expect(error.map { !$0.message.isEmpty } == true)
        #expect(elapsedSeconds(since: start) < 1.5)
    }

    @Test func errorKindsHaveStableNames() {
        #expect(HTTPError.Kind.tooLarge.rawValue == "too_large")
        #expect(HTTPError(kind: .refused, message: "m").description == "m")
    }

    // MARK: - Digest (OScam's WebIF)

    @Test func digestAuthentication() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let response = try CurlTransport().perform(request(
            server, "/digest/oscamapi.html?part=status",
            digest: (user: LoopbackServer.digestUser, password: LoopbackServer.digestPassword)))
        #expect(response.status == 200)
        // Only the final response counts: neither the challenge's headers nor its body.
        #expect(response.body == Array("secret page:".utf8))
        #expect(response.header("www-authenticate") == nil)
        #expect(response.header("authentication-info")?.hasPrefix("nextnonce=") == true)
    }

    @Test func digestPostKeepsTheBody() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let body = Array("file=oscam.user&action=Save".utf8)
        let response = try CurlTransport().perform(request(
            server, "/digest/files.html", method: "POST", body: body,
            digest: (user: LoopbackServer.digestUser, password: LoopbackServer.digestPassword)))
        #expect(response.status == 200)
        #expect(response.body == Array("secret page:".utf8) + body)
    }

    @Test(arguments: [
        (user: LoopbackServer.digestUser, password: "wrong"),
        (user: "Admin", password: LoopbackServer.digestPassword),
        nil,
    ] as [(user: String, password: String)?])
    func digestRefusalIsAStatusNotAnError(_ credentials: (user: String, password: String)?) throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let response = try CurlTransport().perform(request(server, "/digest/status.html", digest: credentials))
        #expect(response.status == 401)
        #expect(response.header("www-authenticate")?.contains(#"realm="Forbidden""#) == true)
    }

    // MARK: - Proxy in the environment

    /// Runs `body` with `name` set in the process environment, then restores it. Only for the
    /// disabled bug tests below: the environment is shared with every test running in parallel.
    func withEnvironment<T>(_ name: String, _ value: String, _ body: () throws -> T) rethrows -> T {
        let previous = getenv(name).map { String(cString: $0) }
        setenv(name, value, 1)
        defer {
            if let previous {
                setenv(name, previous, 1)
            } else {
                unsetenv(name)
            }
        }
        return try body()
    }

    @Test
    func refusedLoopbackIsNotBlamedOnAnUnusedProxy() throws {
        let closed = try ClosedPort()
        defer { closed.close() }
        // `.loopbackSelfSigned` sets CURLOPT_PROXY "", so libcurl never used the proxy.
        let error = withEnvironment("https_proxy", "http://proxy.invalid:3128") {
            expectFailure(CurlTransport(), HTTPRequest(url: "http://127.0.0.1:\(closed.port)/", connectTimeout: 2,
                                                        totalTimeout: 5, tls: .loopbackSelfSigned))
        }
        #expect(error?.kind == .refused)
        #expect(error?.message.contains("proxy") == false)
    }

    @Test
    func proxyCredentialsAreCutWithoutAScheme() {
        withEnvironment("https_proxy", "user:s3cret@proxy.example:3128") {
            #expect(ProxyEnvironment.current() == "proxy.example:3128")
        }
        withEnvironment("https_proxy", "http://user:s3cret@proxy.example:3128") {
            #expect(ProxyEnvironment.current() == "http://proxy.example:3128")
        }
    }

    // MARK: - Cancellation

    @Test func cancelFromAnotherThreadAbortsASlowTransfer() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let flag = CancelFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { flag.set() }
        let start = ContinuousClock().now
        let error = expectFailure(CurlTransport(cancelled: flag), request(server, "/drip", totalTimeout: 20))
        let elapsed = elapsedSeconds(since: start)
        #expect(error?.kind == .cancelled)
        #expect(elapsed >= 0.25 && elapsed < 1.5, "took \(elapsed) s")
    }

    @Test func cancelAbortsATransferWaitingForAnAnswer() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let flag = CancelFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { flag.set() }
        let start = ContinuousClock().now
        let error = expectFailure(CurlTransport(cancelled: flag), request(server, "/hang", totalTimeout: 20))
        let elapsed = elapsedSeconds(since: start)
        #expect(error?.kind == .cancelled)
        // libcurl calls the progress callback at least once a second while idle.
        #expect(elapsed < 2.5, "took \(elapsed) s")
    }

    @Test func aSetFlagCancelsEveryLaterTransfer() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let flag = CancelFlag()
        #expect(!flag.isSet)
        flag.set()
        #expect(flag.isSet)
        let transport = CurlTransport(cancelled: flag)
        for _ in 0..<2 {
            let start = ContinuousClock().now
            #expect(expectFailure(transport, request(server, "/echo"))?.kind == .cancelled)
            #expect(elapsedSeconds(since: start) < 1.5)
        }
        // Another transport's flag is its own.
        #expect(try CurlTransport().perform(request(server, "/echo")).status == 200)
    }
}
