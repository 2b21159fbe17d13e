import Foundation
import Platform
import Testing

/// PANEL-API.md "Test vectors", built from the "Signing" section's definitions with the Crypto
/// primitives alone (there is no signer type yet): proves the primitives and the reading of the
/// document.
@Suite struct PanelSignatureVectorTests {
    static let secretBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    static let serverID = "srv_0123456789abcdef"

    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        /// The lines of the string to sign, without the body hash (appended from `body`).
        let lines: [String]
        let body: String
        let bodySHA256: String
        let signature: String

        var testDescription: String {
            name
        }
    }

    static let vectors = [
        Vector(name: "request",
               lines: ["MYOSICAM-HMAC-SHA256-V1", "POST", "/api/agent/v1/heartbeat", serverID, "1795945629",
                       "00112233445566778899aabbccddeeff"],
               body: #"{"seq":1}"#,
               bodySHA256: "b41e95c43f388d561b146326d84e3a6b9e31c4ef32ab97c04774c31aada3246a",
               signature: "v1=b454ad487f53ac2659ee052659d07e23e1b1a5589875c1fa3262b04c9774b92c"),
        Vector(name: "request, empty body",
               lines: ["MYOSICAM-HMAC-SHA256-V1", "POST", "/api/agent/v1/commands/poll", serverID, "1795945631",
                       "ffeeddccbbaa99887766554433221100"],
               body: "",
               bodySHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               signature: "v1=59605091efde1285306185510baa487f02255b4a079589b57cec5f0adc47b2a1"),
        Vector(name: "response",
               lines: ["MYOSICAM-HMAC-SHA256-V1-RESPONSE", "200", "00112233445566778899aabbccddeeff", "1795945630"],
               body: #"{"commands_pending":false,"heartbeat_interval_s":60,"snapshot_interval_s":300}"#,
               bodySHA256: "24e10a6f89f828c9b9bc59f73eaa1307d8ad409a0df5837ac58490aaf8155b84",
               signature: "v1=7054a048dc2e582b81ef2f6d6f920cb8e45acc20fbb925845f816701bcf11abf"),
    ]

    @Test func secretIsTheBytesZeroToThirtyOne() throws {
        let secret = try #require(Data(base64Encoded: Self.secretBase64))
        #expect(Array(secret) == Array(0...31))
    }

    @Test(arguments: vectors)
    func signature(_ vector: Vector) throws {
        let secret = Array(try #require(Data(base64Encoded: Self.secretBase64)))
        let bodyHash = Crypto.sha256Hex(Array(vector.body.utf8))
        #expect(bodyHash == vector.bodySHA256)
        // Joined with "\n", no trailing newline.
        let stringToSign = (vector.lines + [bodyHash]).joined(separator: "\n")
        #expect(!stringToSign.hasSuffix("\n"))
        let signature = "v1=" + Crypto.hex(Crypto.hmacSHA256(key: secret, message: Array(stringToSign.utf8)))
        #expect(signature == vector.signature)
        #expect(Crypto.constantTimeEqual(Array(signature.utf8), Array(vector.signature.utf8)))

        // A trailing newline, or any change to one line, gives another signature.
        let withNewline = "v1=" + Crypto.hex(Crypto.hmacSHA256(key: secret, message: Array((stringToSign + "\n").utf8)))
        #expect(withNewline != vector.signature)
    }
}
