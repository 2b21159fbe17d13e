import Pipeline
import Platform
import Synchronization

/// One signed exchange with the panel (PANEL-API.md "Signing", "Signed responses", "Clock
/// skew"): signs the exact body bytes with a fresh nonce and the corrected clock, verifies the
/// response against that nonce before anything in it is used, keeps the clock offset from every
/// verified response, and on a verified `401 stale_timestamp` retries once with a fresh nonce.
public final class PanelClient: Sendable {
    public static let basePath = "/api/agent/v1"

    /// A verified answer.
    public struct Reply: Sendable {
        public let status: Int
        public let body: [UInt8]
        /// The body as strict JSON, nil when it is not.
        public let json: JSONValue?
        /// `error` of an error body.
        public let errorName: String?
        public let serverTime: Int64
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// No answer: network, TLS, timeout, size cap, proxy.
        case transport(HTTPError)
        /// An answer that is not signed for this request: nothing in it is used. `unsignedRejection`
        /// is set for the unsigned `unknown_server` / `bad_signature` answers that count towards
        /// revocation.
        case unverified(status: Int, unsignedRejection: Bool)
        /// libcrypto could not produce a nonce; nothing was sent.
        case noRandomness

        public var description: String {
            switch self {
            case .transport(let error): error.message
            case .unverified(let status, _): "the panel's answer (HTTP \(status)) is not signed for this request; ignored"
            case .noRandomness: "libcrypto could not produce a nonce; nothing was sent"
            }
        }
    }

    public let baseURL: String
    private let transport: any HTTPTransport
    private let tls: TLSPolicy
    private let signer: PanelSigner
    private let clock: @Sendable () -> Int64
    private let offsetStorage: Mutex<Int64>

    public init(baseURL: String, transport: any HTTPTransport, tls: TLSPolicy, signer: PanelSigner, clockOffset: Int64,
                clock: @escaping @Sendable () -> Int64) {
        self.baseURL = baseURL
        self.transport = transport
        self.tls = tls
        self.signer = signer
        self.clock = clock
        offsetStorage = Mutex(clockOffset)
    }

    /// panel time − local time, in seconds, from the last verified response.
    public var clockOffset: Int64 {
        offsetStorage.withLock { $0 }
    }

    /// Bodies larger than this are sent gzip-compressed (PANEL-API.md "Transport").
    public static let gzipThreshold = 8192

    /// POSTs `body` (encoded JSON) to `path` under `/api/agent/v1`; over 8 KiB it is gzipped
    /// first and the signature covers the compressed bytes exactly as sent.
    public func post(_ path: String, body: [UInt8], totalTimeout: Double = 30) throws(Failure) -> Reply {
        let compressed = body.count > Self.gzipThreshold
        let sent = compressed ? Gzip.compress(body) : body
        let headers = compressed ? [("Content-Encoding", "gzip")] : []
        let reply = try exchange(path, body: sent, extraHeaders: headers, totalTimeout: totalTimeout)
        if reply.status == 401 && reply.errorName == "stale_timestamp" {
            // The offset was just corrected from this verified answer: one retry, new nonce.
            return try exchange(path, body: sent, extraHeaders: headers, totalTimeout: totalTimeout)
        }
        return reply
    }

    private func exchange(_ path: String, body: [UInt8], extraHeaders: [(String, String)],
                          totalTimeout: Double) throws(Failure) -> Reply {
        guard let nonce = PanelSigner.makeNonce() else {
            throw .noRandomness
        }
        let fullPath = Self.basePath + path
        let timestamp = clock() + clockOffset
        let headers = [("Content-Type", "application/json")] + extraHeaders
            + signer.headers(method: "POST", path: fullPath, timestamp: timestamp, nonce: nonce, body: body)
        let request = HTTPRequest(method: "POST", url: baseURL + fullPath, headers: headers, body: body,
                                  connectTimeout: 10, totalTimeout: totalTimeout, maxResponseBytes: 4 << 20, tls: tls)
        let response: HTTPResponse
        do {
            response = try transport.perform(request)
        } catch {
            throw .transport(error)
        }
        let received = clock()
        guard let serverTime = signer.verifyResponse(
            status: response.status, requestNonce: nonce, timestampHeader: response.header("x-myosicam-timestamp"),
            signatureHeader: response.header("x-myosicam-signature"), body: response.body) else {
            let name = response.status == 401 ? Self.errorName(response.body) : nil
            let unsigned = response.header("x-myosicam-signature") == nil
            throw .unverified(status: response.status,
                              unsignedRejection: unsigned && (name == "unknown_server" || name == "bad_signature"))
        }
        offsetStorage.withLock { $0 = serverTime - received }
        // Parsed once: a large answer's tree is the agent's biggest allocation.
        let json = try? StrictJSON.parse(response.body)
        return Reply(status: response.status, body: response.body, json: json,
                     errorName: json.flatMap(Self.errorName), serverTime: serverTime)
    }

    /// `{"error": "<name>"}` with a name of lowercase letters and `_` only.
    public static func errorName(_ body: [UInt8]) -> String? {
        (try? StrictJSON.parse(body)).flatMap(errorName)
    }

    static func errorName(_ json: JSONValue) -> String? {
        guard case .object(let members) = json, case .string(let name)? = members["error"],
              !name.isEmpty, name.utf8.count <= 64, name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || $0 == 95 }) else {
            return nil
        }
        return name
    }
}
