import CCurl
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How to check the server's certificate.
public enum TLSPolicy: Sendable, Equatable {
    /// Full verification: the system's CAs, or `caFile` trusted alone; plus an optional
    /// public-key pin (`sha256//BASE64`) on top.
    case verify(caFile: String?, pin: String?)
    /// For OScam's own WebIF on a loopback address only: its certificate is self-signed and lives
    /// in one file with its private key, which the agent must not read. The caller guarantees the
    /// URL's host is a loopback address.
    case loopbackSelfSigned
}

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    public var connectTimeout: Double
    public var totalTimeout: Double
    public var maxResponseBytes: Int
    public var tls: TLSPolicy
    /// HTTP Digest credentials (OScam's WebIF); the password is used by libcurl only.
    public var digest: (user: String, password: String)?

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                connectTimeout: Double = 10, totalTimeout: Double = 30, maxResponseBytes: Int = 4 << 20,
                tls: TLSPolicy = .verify(caFile: nil, pin: nil), digest: (user: String, password: String)? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
        self.tls = tls
        self.digest = digest
    }
}

public struct HTTPResponse: Sendable {
    public let status: Int
    /// Header names lower-cased, in arrival order (the last response's headers after a Digest
    /// challenge).
    public let headers: [(String, String)]
    public let body: [UInt8]
    public let seconds: Double

    public init(status: Int, headers: [(String, String)], body: [UInt8], seconds: Double) {
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds
    }

    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.last { $0.0 == wanted }?.1
    }
}

/// A failed transfer, classified so the caller can say what the operator should check. The
/// message is libcurl's own text plus the proxy when one was used; never a body or credential.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case refused, timeout, tls, tooLarge = "too_large", resolve, proxy, cancelled, other
    }

    public let kind: Kind
    public let message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String {
        message
    }
}

/// Something that performs one HTTP exchange. The real one is libcurl; tests record requests.
public protocol HTTPTransport: Sendable {
    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse
}

/// libcurl, one easy handle per request (the agent makes a few requests a minute; a shared
/// handle would save nothing worth its state).
public struct CurlTransport: HTTPTransport {
    private static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()

    /// Set to abandon every transfer in flight at its next progress callback (SIGTERM).
    public let cancelled: CancelFlag
    /// With `reuseConnections`, one handle kept across requests (one at a time), so libcurl
    /// keeps the connection and the TLS session to the panel alive between heartbeats.
    private let kept: KeptHandle?

    public init(cancelled: CancelFlag = CancelFlag(), reuseConnections: Bool = false) {
        self.cancelled = cancelled
        _ = Self.initialized
        kept = reuseConnections ? KeptHandle() : nil
    }

    public func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        guard let kept else {
            guard let handle = curl_easy_init() else {
                throw HTTPError(kind: .other, message: "libcurl could not create a handle")
            }
            defer { curl_easy_cleanup(handle) }
            return try perform(request, on: handle)
        }
        return try kept.lock.withLock { _ throws(HTTPError) -> HTTPResponse in
            guard let handle = kept.handle else {
                throw HTTPError(kind: .other, message: "libcurl could not create a handle")
            }
            // Options go back to their defaults; the connection cache and TLS sessions stay.
            curl_easy_reset(handle)
            return try perform(request, on: handle)
        }
    }

    private func perform(_ request: HTTPRequest, on handle: UnsafeMutableRawPointer) throws(HTTPError) -> HTTPResponse {
        let box = TransferBox(limit: request.maxResponseBytes, cancelled: cancelled)
        let unmanaged = Unmanaged.passRetained(box)
        defer { unmanaged.release() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            let setup = configure(handle, request, box: unmanaged, headers: &headerList, errors: errorPointer.baseAddress)
            guard setup == CURLE_OK else {
                return setup
            }
            // A POST without a body still says `Content-Length: 0` (RFC 9110 §8.6).
            if let body = request.body ?? (request.method == "GET" ? nil : []) {
                return body.withUnsafeBufferPointer { buffer in
                    _ = myo_setopt_ptr(handle, CURLOPT_POSTFIELDS, buffer.baseAddress)
                    _ = myo_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(buffer.count))
                    return curl_easy_perform(handle)
                }
            }
            return curl_easy_perform(handle)
        }
        let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard code == CURLE_OK else {
            throw classify(code, detail: detail, box: box, request: request)
        }
        var status = 0
        _ = myo_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var seconds = 0.0
        _ = myo_getinfo_double(handle, CURLINFO_TOTAL_TIME, &seconds)
        return HTTPResponse(status: status, headers: box.headers, body: box.body, seconds: seconds)
    }

    private func configure(
        _ handle: UnsafeMutableRawPointer, _ request: HTTPRequest, box: Unmanaged<TransferBox>,
        headers: inout UnsafeMutablePointer<curl_slist>?, errors: UnsafeMutablePointer<CChar>?
    ) -> CURLcode {
        var result = CURLE_OK
        func check(_ code: CURLcode) {
            if result == CURLE_OK && code != CURLE_OK {
                result = code
            }
        }
        check(myo_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errors))
        check(request.url.withCString { myo_setopt_ptr(handle, CURLOPT_URL, $0) })
        check(myo_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(myo_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        check(request.url.hasPrefix("https://") ? myo_setopt_long(handle, CURLOPT_PROTOCOLS, MYO_PROTO_HTTPS)
              : myo_setopt_long(handle, CURLOPT_PROTOCOLS, MYO_PROTO_HTTP | MYO_PROTO_HTTPS))
        check(myo_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000)))
        check(myo_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(request.totalTimeout * 1000)))
        check(request.method.withCString { myo_setopt_ptr(handle, CURLOPT_CUSTOMREQUEST, $0) })
        if request.method == "GET" {
            check(myo_setopt_long(handle, CURLOPT_HTTPGET, 1))
            check(myo_setopt_ptr(handle, CURLOPT_CUSTOMREQUEST, nil))
        }
        // Never ask for compression: the panel never compresses, and OScam's gzip is not needed.
        check(myo_setopt_ptr(handle, CURLOPT_ACCEPT_ENCODING, nil))
        for (name, value) in request.headers + [("Expect", "")] {
            headers = curl_slist_append(headers, "\(name): \(value)")
        }
        check(myo_setopt_ptr(handle, CURLOPT_HTTPHEADER, headers))
        switch request.tls {
        case .verify(let caFile, let pin):
            check(myo_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
            check(myo_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
            if let caFile {
                // Trusted alone: without clearing CAPATH, Debian's libcurl would also trust
                // every CA in /etc/ssl/certs.
                check(caFile.withCString { myo_setopt_ptr(handle, CURLOPT_CAINFO, $0) })
                check(myo_setopt_ptr(handle, CURLOPT_CAPATH, nil))
            }
            if let pin {
                check(pin.withCString { myo_setopt_ptr(handle, CURLOPT_PINNEDPUBLICKEY, $0) })
            }
        case .loopbackSelfSigned:
            check(myo_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0))
            check(myo_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0))
            check(myo_setopt_ptr(handle, CURLOPT_PROXY, ""))
        }
        if let digest = request.digest {
            check(myo_setopt_long(handle, CURLOPT_HTTPAUTH, MYO_CURLAUTH_DIGEST))
            check(digest.user.withCString { myo_setopt_ptr(handle, CURLOPT_USERNAME, $0) })
            check(digest.password.withCString { myo_setopt_ptr(handle, CURLOPT_PASSWORD, $0) })
        }
        // A declared length over the cap ends the transfer before any of the body is buffered; the
        // write callback still counts the bytes of a body without (or lying about) its length.
        check(myo_setopt_off(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.maxResponseBytes)))
        let context = box.toOpaque()
        check(myo_setopt_ptr(handle, CURLOPT_WRITEDATA, context))
        check(myo_setopt_write(handle, curlWrite))
        check(myo_setopt_ptr(handle, CURLOPT_HEADERDATA, context))
        check(myo_setopt_header(handle, curlHeader))
        check(myo_setopt_ptr(handle, CURLOPT_XFERINFODATA, context))
        check(myo_setopt_xferinfo(handle, curlProgress))
        check(myo_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
        return result
    }

    private func classify(_ code: CURLcode, detail: String, box: TransferBox, request: HTTPRequest) -> HTTPError {
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        // Only a request that could have gone through the proxy may blame it.
        let proxy: String?
        if case .verify = request.tls {
            proxy = ProxyEnvironment.proxy(for: request.url)
        } else {
            proxy = nil
        }
        switch code {
        case CURLE_WRITE_ERROR where box.overflowed, CURLE_FILESIZE_EXCEEDED:
            return HTTPError(kind: .tooLarge, message: "response larger than \(box.limit) bytes refused")
        case CURLE_ABORTED_BY_CALLBACK:
            return HTTPError(kind: .cancelled, message: "transfer abandoned on shutdown")
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPError(kind: .timeout, message: text)
        case CURLE_COULDNT_CONNECT:
            return HTTPError(kind: proxy != nil ? .proxy : .refused,
                             message: proxy.map { "\(text) (through proxy \($0))" } ?? text)
        case CURLE_COULDNT_RESOLVE_PROXY:
            return HTTPError(kind: .proxy, message: proxy.map { "\(text) (proxy \($0))" } ?? text)
        case CURLE_COULDNT_RESOLVE_HOST:
            return HTTPError(kind: .resolve, message: text)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_CERTPROBLEM:
            return HTTPError(kind: .tls, message: text)
        default:
            return HTTPError(kind: .other, message: text)
        }
    }
}

/// One libcurl handle used by one request at a time and cleaned up with its owner.
final class KeptHandle: Sendable {
    nonisolated(unsafe) let handle: UnsafeMutableRawPointer?
    let lock = Mutex<Void>(())

    init() {
        handle = curl_easy_init()
    }

    deinit {
        if let handle {
            curl_easy_cleanup(handle)
        }
    }
}

/// The proxy libcurl will use, as the operator set it, for error messages: a dead proxy
/// otherwise looks like a dead panel. Credentials in the proxy URL are cut out.
public enum ProxyEnvironment {
    /// The https proxy from the environment, whatever the URL.
    public static func current() -> String? {
        proxySetting(names: ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]).map(withoutCredentials)
    }

    /// The proxy libcurl uses for `url`: by scheme (`https_proxy` or `http_proxy`, then
    /// `all_proxy`), none when the host matches `no_proxy`.
    public static func proxy(for url: String) -> String? {
        let https = url.hasPrefix("https://")
        let names = (https ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy"]) + ["all_proxy", "ALL_PROXY"]
        guard let proxy = proxySetting(names: names) else {
            return nil
        }
        let host = hostOf(url)
        let exceptions = (variable("no_proxy") ?? variable("NO_PROXY") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: " ").lowercased()
        }
        for entry in exceptions where !entry.isEmpty {
            if entry == "*" {
                return nil
            }
            let suffix = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            if host == suffix || host.hasSuffix("." + suffix) {
                return nil
            }
        }
        return withoutCredentials(proxy)
    }

    static func proxySetting(names: [String]) -> String? {
        names.lazy.compactMap(variable).first { !$0.isEmpty }
    }

    static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// `http://user:pw@host:port` → `http://host:port`; also without a scheme.
    static func withoutCredentials(_ value: String) -> String {
        guard let at = value.lastIndex(of: "@") else {
            return value
        }
        if let scheme = value.firstRange(of: "://"), scheme.upperBound <= at {
            return String(value[..<scheme.upperBound]) + String(value[value.index(after: at)...])
        }
        return String(value[value.index(after: at)...])
    }

    static func hostOf(_ url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.firstRange(of: "://") {
            rest = rest[scheme.upperBound...]
        }
        rest = rest.prefix { $0 != "/" && $0 != "?" }
        if let at = rest.lastIndex(of: "@") {
            rest = rest[rest.index(after: at)...]
        }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<close]).lowercased()
        }
        return String(rest.prefix { $0 != ":" }).lowercased()
    }
}

/// A flag set from a signal handler's thread and read by transfers in flight.
public final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    public func set() {
        value.store(true, ordering: .relaxed)
    }

    public var isSet: Bool {
        value.load(ordering: .relaxed)
    }
}

/// State shared with libcurl's C callbacks for one transfer.
final class TransferBox {
    let limit: Int
    let cancelled: CancelFlag
    var body: [UInt8] = []
    var headers: [(String, String)] = []
    var overflowed = false

    init(limit: Int, cancelled: CancelFlag) {
        self.limit = limit
        self.cancelled = cancelled
    }
}

private func curlWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let data else {
        return 0
    }
    let box = Unmanaged<TransferBox>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    if box.body.count + length > box.limit {
        box.overflowed = true
        return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
        box.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
    }
    return length
}

private func curlHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let data else {
        return 0
    }
    let box = Unmanaged<TransferBox>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
        String(decoding: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        // A new response (after a Digest challenge or a 100): only the last one's headers count.
        box.headers.removeAll()
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
        box.headers.append((name, value))
        if name == "content-length", let length = Int(value), length > 0, length <= box.limit {
            // One allocation of the announced size instead of doublings (and their copies).
            box.body.reserveCapacity(length)
        }
    }
    return length
}

private func curlProgress(_ context: UnsafeMutableRawPointer?, _: curl_off_t, _: curl_off_t, _: curl_off_t, _: curl_off_t) -> Int32 {
    guard let context else {
        return 0
    }
    return Unmanaged<TransferBox>.fromOpaque(context).takeUnretainedValue().cancelled.isSet ? 1 : 0
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) {
            slice = slice.dropFirst()
        }
        while let last = slice.last, set.contains(last) {
            slice = slice.dropLast()
        }
        return String(slice)
    }
}
