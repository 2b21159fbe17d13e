import Pipeline
import Platform
import Sinks
import Testing
import TestSupport

/// PANEL-API.md "Test vectors": secret = bytes 0x00…0x1f, server `srv_0123456789abcdef`.
@Suite struct SigningTests {
    static let signer = PanelSigner(serverID: "srv_0123456789abcdef", secret: Array(0...31))

    @Test func requestVector() {
        let headers = Self.signer.headers(method: "POST", path: "/api/agent/v1/heartbeat", timestamp: 1_795_945_629,
                                          nonce: "00112233445566778899aabbccddeeff", body: Array("{\"seq\":1}".utf8))
        #expect(headers.first { $0.0 == "X-MyOsicam-Signature" }?.1
            == "v1=b454ad487f53ac2659ee052659d07e23e1b1a5589875c1fa3262b04c9774b92c")
        #expect(headers.map(\.0) == ["X-MyOsicam-Server", "X-MyOsicam-Timestamp", "X-MyOsicam-Nonce", "X-MyOsicam-Signature"])
        #expect(headers[0].1 == "srv_0123456789abcdef" && headers[1].1 == "1795945629")
    }

    @Test func requestWithEmptyBodyVector() {
        let text = PanelSigner.requestString(method: "post", path: "/api/agent/v1/commands/poll",
                                             serverID: "srv_0123456789abcdef", timestamp: 1_795_945_631,
                                             nonce: "ffeeddccbbaa99887766554433221100", body: [])
        #expect(text.hasSuffix("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        #expect(text.hasPrefix("MYOSICAM-HMAC-SHA256-V1\nPOST\n"))
        #expect(Self.signer.signature(text) == "v1=59605091efde1285306185510baa487f02255b4a079589b57cec5f0adc47b2a1")
    }

    static let responseBody = Array("{\"commands_pending\":false,\"heartbeat_interval_s\":60,\"snapshot_interval_s\":300}".utf8)

    @Test func responseVectorVerifies() {
        let timestamp = Self.signer.verifyResponse(
            status: 200, requestNonce: "00112233445566778899aabbccddeeff", timestampHeader: "1795945630",
            signatureHeader: "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf", body: Self.responseBody)
        #expect(timestamp == 1_795_945_630)
    }

    @Test(arguments: [
        (200, "00112233445566778899aabbccddeeff", "1795945630", "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abe"),
        (201, "00112233445566778899aabbccddeeff", "1795945630", "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
        (200, "00112233445566778899aabbccddeefe", "1795945630", "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
        (200, "00112233445566778899aabbccddeeff", "1795945631", "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
        (200, "00112233445566778899aabbccddeeff", "01795945630", "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
        (200, "00112233445566778899aabbccddeeff", "1795945630", "v1=7054A048DC2E582B81EF2F6D6F920CB8E45ACC20FBB925845F816701BCF11ABF"),
        (200, "00112233445566778899aabbccddeeff", "1795945630", "v2=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
    ])
    func tamperedOrReplayedResponsesDoNotVerify(_ status: Int, _ nonce: String, _ timestamp: String, _ signature: String) {
        #expect(Self.signer.verifyResponse(status: status, requestNonce: nonce, timestampHeader: timestamp,
                                           signatureHeader: signature, body: Self.responseBody) == nil)
    }

    @Test func aChangedBodyDoesNotVerify() {
        var body = Self.responseBody
        body[body.count - 2] = UInt8(ascii: "1")
        #expect(Self.signer.verifyResponse(
            status: 200, requestNonce: "00112233445566778899aabbccddeeff", timestampHeader: "1795945630",
            signatureHeader: "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf", body: body) == nil)
        #expect(Self.signer.verifyResponse(status: 200, requestNonce: "x", timestampHeader: nil, signatureHeader: nil,
                                           body: body) == nil)
    }

    @Test(arguments: [("0", 0), ("1795945630", 1_795_945_630)] as [(String, Int64)])
    func canonicalTimestamps(_ text: String, _ value: Int64) {
        #expect(PanelSigner.canonicalTimestamp(text) == value)
    }

    @Test(arguments: ["", "-1", "+1", "01", " 1", "1 ", "1e3", "1.0", "99999999999999999999", "١٢"])
    func nonCanonicalTimestamps(_ text: String) {
        #expect(PanelSigner.canonicalTimestamp(text) == nil)
    }

    @Test func noncesAreFreshLowercaseHex() throws {
        let first = try #require(PanelSigner.makeNonce())
        let second = try #require(PanelSigner.makeNonce())
        #expect(first.count == 32 && first != second)
        #expect(first.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
    }
}
