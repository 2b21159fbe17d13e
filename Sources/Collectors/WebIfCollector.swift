import Dispatch
import FoundationEssentials
import OScam
import Pipeline
import Platform
import Synchronization

/// `webif`: for each instance, how its WebIF is exposed (from oscam.conf) and whether the agent
/// reaches it: one GET of `/oscamapi.json?part=status` over loopback, with Digest auth when
/// credentials are set. Only the response's header fields (version, start time, readonly) are
/// read; the body also lists clients and their addresses and is dropped unread otherwise, never
/// logged, never forwarded.
public struct WebIfCollector: Collector {
    public let name = "webif"
    public let needs: Set<Capability> = [.oscamFiles, .webifNetwork]

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        let instances = context.discovery.instances
        let results = Mutex<[String: WebIfStatus]>([:])
        DispatchQueue.concurrentPerform(iterations: instances.count) { index in
            let instance = instances[index]
            let status = probe(instance, context: context, deadline: deadline)
            results.withLock { $0[instance.id] = status }
        }
        var contribution = Contribution()
        for (id, status) in results.withLock({ $0 }) {
            var report = InstanceReport(id: id)
            report.webif = status
            contribution.instances[id] = report
        }
        return contribution
    }

    func probe(_ instance: DiscoveredInstance, context: CollectContext, deadline: ContinuousClock.Instant) -> WebIfStatus {
        let settings: WebIfSettings
        if let webif = context.loaded(.conf, of: instance.id)?.analysis.webif {
            settings = webif
        } else if case .failure(let error)? = context.files[instance.id]?[.conf]?.result, error.kind == .missing {
            settings = .defaultsWithoutConf
        } else {
            return WebIfStatus(enabled: false, host: nil, port: nil, tls: false, state: "unknown", reachable: false,
                               httpStatus: nil, latencyMS: nil, version: nil, startedAt: nil, readonly: nil,
                               posture: WebIfPosture(loopbackOnly: false, allowsLoopback: false, credentialsSet: false,
                                                     readonly: false, tls: false, bindsAll: false))
        }
        let host = Self.connectHost(settings.bindAddress, allowed: settings)
        let posture = WebIfPosture(
            loopbackOnly: settings.loopbackOnly, allowsLoopback: settings.allowsLoopback,
            credentialsSet: settings.authRequired, readonly: settings.readonly, tls: settings.tls,
            bindsAll: Self.bindsAll(settings.bindAddress))
        var status = WebIfStatus(
            enabled: settings.enabled, host: settings.enabled ? host : nil, port: settings.enabled ? settings.port : nil,
            tls: settings.tls, state: "disabled", reachable: false, httpStatus: nil, latencyMS: nil, version: nil,
            startedAt: nil, readonly: settings.readonly, posture: posture)
        guard settings.enabled else {
            return status
        }
        let remaining = ContinuousClock().now.duration(to: deadline)
        let seconds = min(context.webifTimeout, Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18)
        guard seconds > 0.1 else {
            status.state = "timeout"
            return status
        }
        let loopback = IPAddress(host)?.isLoopback ?? false
        let scheme = settings.tls ? "https" : "http"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let request = HTTPRequest(
            url: "\(scheme)://\(hostPart):\(settings.port)/oscamapi.json?part=status",
            connectTimeout: min(seconds, 3), totalTimeout: seconds, maxResponseBytes: 4 << 20,
            tls: loopback ? .loopbackSelfSigned : .verify(caFile: nil, pin: nil),
            digest: settings.authRequired
                ? (settings.user?.reveal() ?? "", settings.password?.reveal() ?? "") : nil)
        let response: HTTPResponse
        do {
            response = try context.http.perform(request)
        } catch {
            status.state = switch error.kind {
            case .refused: "refused"
            case .timeout: "timeout"
            case .tls: "tls_error"
            case .tooLarge: "bad_response"
            default: "unreachable"
            }
            return status
        }
        status.httpStatus = response.status
        status.latencyMS = Int((response.seconds * 1000).rounded())
        switch response.status {
        case 200:
            break
        case 401:
            status.state = "unauthorized"
            return status
        case 403:
            status.state = "forbidden"
            return status
        default:
            status.state = "http_error"
            return status
        }
        guard let header = try? JSONDecoder().decode(StatusEnvelope.self, from: Data(response.body)).oscam else {
            status.state = "bad_response"
            return status
        }
        status.state = "ok"
        status.reachable = true
        status.version = header.version.map { version in
            header.commit.map { $0.isEmpty ? version : "\(version)@\($0)" } ?? version
        }
        status.startedAt = header.starttime
        status.readonly = header.readonly.map { $0 == "1" } ?? settings.readonly
        return status
    }

    /// Where to connect: the bind address when it is a specific one; otherwise the loopback
    /// address `httpallowed` admits (127.0.0.1, else ::1), so the call is not refused with 403.
    public static func connectHost(_ bind: String?, allowed settings: WebIfSettings? = nil) -> String {
        if let bind, !bindsAll(bind) {
            return bind
        }
        guard let settings, let v4 = IPAddress("127.0.0.1"), let v6 = IPAddress("::1") else {
            return "127.0.0.1"
        }
        if !settings.allowed.contains(where: { $0.contains(v4) }) && settings.allowed.contains(where: { $0.contains(v6) }) {
            return "::1"
        }
        return "127.0.0.1"
    }

    static func bindsAll(_ bind: String?) -> Bool {
        guard let bind else {
            return true
        }
        return bind.isEmpty || bind == "0.0.0.0" || bind == "::" || bind == "[::]"
    }

    /// Only the header of OScam's status JSON; the rest (clients, addresses) is never decoded.
    struct StatusEnvelope: Decodable {
        let oscam: Header

        struct Header: Decodable {
            let version: String?
            let commit: String?
            let starttime: String?
            let readonly: String?
        }
    }
}
