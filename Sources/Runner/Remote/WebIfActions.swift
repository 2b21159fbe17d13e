import Collectors
import FoundationEssentials
import OScam
import Platform

/// The WebIF calls commands need (OSCAM.md §7.4, §7.5), over the same loopback address and
/// Digest credentials the `webif` collector uses. Every response body is treated as secret:
/// only the fields named here are decoded, and no body is ever logged or put in a result.
struct WebIfActions: Sendable {
    enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case transport(HTTPError)
        case status(Int)
        case readonly
        case unexpected(String)

        var description: String {
            switch self {
            case .transport(let error): "the WebIF did not answer (\(error.kind.rawValue)): \(error.message)"
            case .status(401): "the WebIF refused the credentials in oscam.conf (HTTP 401)"
            case .status(403): "the WebIF refused 127.0.0.1 (HTTP 403: httpallowed)"
            case .status(let code): "the WebIF answered HTTP \(code)"
            case .readonly: "the WebIF is in read-only mode (httpreadonly)"
            case .unexpected(let what): "the WebIF's answer was not as expected: \(what)"
            }
        }
    }

    struct Status: Sendable, Equatable {
        let startTime: String?
        let readonly: Bool
    }

    let settings: WebIfSettings
    let http: any HTTPTransport
    var timeout: Double = 10

    private var base: String {
        let host = WebIfCollector.connectHost(settings.bindAddress, allowed: settings)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(settings.tls ? "https" : "http")://\(hostPart):\(settings.port)"
    }

    func get(_ pathAndQuery: String, timeout: Double? = nil) throws(Failure) -> [UInt8] {
        let host = WebIfCollector.connectHost(settings.bindAddress, allowed: settings)
        let loopback = IPAddress(host)?.isLoopback ?? false
        let seconds = timeout ?? self.timeout
        let request = HTTPRequest(
            url: base + pathAndQuery, connectTimeout: min(seconds, 3), totalTimeout: seconds,
            maxResponseBytes: 8 << 20, tls: loopback ? .loopbackSelfSigned : .verify(caFile: nil, pin: nil),
            digest: settings.authRequired ? (settings.user?.reveal() ?? "", settings.password?.reveal() ?? "") : nil)
        let response: HTTPResponse
        do {
            response = try http.perform(request)
        } catch {
            throw .transport(error)
        }
        guard response.status == 200 else {
            throw .status(response.status)
        }
        return response.body
    }

    /// The status API's header: start time (changes when a new worker starts) and read-only.
    func status(timeout: Double? = nil) throws(Failure) -> Status {
        let body = try get("/oscamapi.json?part=status", timeout: timeout)
        guard let header = try? JSONDecoder().decode(Envelope.self, from: Data(body)).oscam else {
            throw .unexpected("the status API did not return OScam's JSON")
        }
        return Status(startTime: header.starttime, readonly: header.readonly == "1")
    }

    /// `userstats&action=reinit`: OScam re-reads oscam.user and lists the accounts it now has,
    /// as `usermd5` ids ("id_" + MD5 of the user name).
    func reloadUsers() throws(Failure) -> Set<String> {
        let body = try get("/oscamapi.json?part=userstats&action=reinit")
        guard let header = try? JSONDecoder().decode(Envelope.self, from: Data(body)).oscam else {
            throw .unexpected("the userstats API did not return OScam's JSON")
        }
        if header.readonly == "1" {
            throw .readonly
        }
        return Set((header.users ?? []).compactMap { $0.user?.usermd5 })
    }

    /// `config.html?part=<page>&action=execute&key=value…`: OScam applies the values in memory
    /// and rewrites oscam.conf from memory.
    func saveConfig(page: String, _ pairs: [(String, String)]) throws(Failure) {
        var query = "/config.html?part=" + Self.formEncode(page) + "&action=execute"
        for (key, value) in pairs {
            query += "&" + Self.formEncode(key) + "=" + Self.formEncode(value)
        }
        let text = String(decoding: try get(query), as: UTF8.self)
        if text.contains("readonly mode") {
            throw .readonly
        }
        guard text.contains("Configuration was saved") else {
            throw .unexpected("config.html did not confirm the save")
        }
    }

    /// `shutdown.html?action=Restart`: the watchdog starts a new worker that re-reads every file.
    /// Not blocked by read-only mode (OSCAM.md §7.6).
    func restart() throws(Failure) {
        _ = try get("/shutdown.html?action=Restart")
    }

    static func userID(_ name: String) -> String {
        "id_" + Crypto.md5Hex(Array(name.utf8))
    }

    /// Percent-encoding for a query value: everything but RFC 3986's unreserved characters.
    static func formEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E:
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(digits[Int(byte >> 4)])
                out.unicodeScalars.append(digits[Int(byte & 0x0F)])
            }
        }
        return out
    }

    /// Only the fields the agent uses; everything else in OScam's JSON is skipped undecoded.
    private struct Envelope: Decodable {
        let oscam: Header

        struct Header: Decodable {
            let starttime: String?
            let readonly: String?
            let users: [UserItem]?
        }

        struct UserItem: Decodable {
            let user: User?
        }

        struct User: Decodable {
            let usermd5: String?
        }
    }
}
