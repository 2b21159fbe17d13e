import Platform

/// PANEL-API.md "Signing": every request after registration carries the server id, a timestamp,
/// a fresh nonce and an HMAC-SHA256 over exactly what is sent; every response is verified
/// against the request's nonce before anything in it is used.
public struct PanelSigner: Sendable {
    public static let requestPrefix = "MYOSICAM-HMAC-SHA256-V1"
    public static let responsePrefix = "MYOSICAM-HMAC-SHA256-V1-RESPONSE"

    public let serverID: String
    private let secret: [UInt8]

    public init(serverID: String, secret: [UInt8]) {
        self.serverID = serverID
        self.secret = secret
    }

    /// The string to sign for a request (lines joined by `\n`, no trailing newline).
    public static func requestString(method: String, path: String, serverID: String, timestamp: Int64, nonce: String,
                                     body: [UInt8]) -> String {
        [requestPrefix, method.uppercased(), path, serverID, String(timestamp), nonce, Crypto.sha256Hex(body)]
            .joined(separator: "\n")
    }

    /// The string to sign for a response.
    public static func responseString(status: Int, requestNonce: String, timestamp: Int64, body: [UInt8]) -> String {
        [responsePrefix, String(status), requestNonce, String(timestamp), Crypto.sha256Hex(body)].joined(separator: "\n")
    }

    /// `v1=<64 lowercase hex>`.
    public func signature(_ stringToSign: String) -> String {
        "v1=" + Crypto.hex(Crypto.hmacSHA256(key: secret, message: Array(stringToSign.utf8)))
    }

    /// The four `X-MyOsicam-*` headers for a request whose body is `body` exactly as sent.
    public func headers(method: String, path: String, timestamp: Int64, nonce: String, body: [UInt8]) -> [(String, String)] {
        let text = Self.requestString(method: method, path: path, serverID: serverID, timestamp: timestamp, nonce: nonce,
                                      body: body)
        return [("X-MyOsicam-Server", serverID), ("X-MyOsicam-Timestamp", String(timestamp)),
                ("X-MyOsicam-Nonce", nonce), ("X-MyOsicam-Signature", signature(text))]
    }

    /// Whether a response is the panel's answer to the request that used `requestNonce`: its
    /// timestamp header is a canonical decimal and its signature matches, compared in constant
    /// time. Returns the response timestamp when it verifies.
    public func verifyResponse(status: Int, requestNonce: String, timestampHeader: String?, signatureHeader: String?,
                               body: [UInt8]) -> Int64? {
        guard let timestampHeader, let timestamp = Self.canonicalTimestamp(timestampHeader),
              let signatureHeader, signatureHeader.utf8.count == 67, signatureHeader.hasPrefix("v1=") else {
            return nil
        }
        let expected = signature(Self.responseString(status: status, requestNonce: requestNonce, timestamp: timestamp,
                                                     body: body))
        return Crypto.constantTimeEqual(Array(expected.utf8), Array(signatureHeader.utf8)) ? timestamp : nil
    }

    /// Every time a timestamp header can carry: canonical decimals of at most 18 digits.
    public static let timestampRange: ClosedRange<Int64> = 0...999_999_999_999_999_999

    /// Canonical decimal: digits only, no sign, no leading zeros (PANEL-API.md "Formats").
    public static func canonicalTimestamp(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              bytes.count == 1 || bytes[0] != 48 else {
            return nil
        }
        return Int64(text)
    }

    /// 32 lowercase hex characters from 16 random bytes; nil only if libcrypto cannot provide
    /// randomness, in which case nothing must be sent.
    public static func makeNonce() -> String? {
        Crypto.randomBytes(16).map { Crypto.hex($0) }
    }
}
