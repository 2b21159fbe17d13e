import OScam
import Pipeline

/// `instances`: each discovered instance's identity (where it lives, how it was found, its
/// version), a summary of its oscam.conf (ports, allow-listed `[global]` settings), the problems
/// in its files, and the files' fingerprints.
public struct InstancesCollector: Collector {
    public let name = "instances"
    public let needs: Set<Capability> = [.oscamFiles]

    /// `[global]` settings that are safe and useful to report: timing and behaviour, never paths,
    /// addresses, names or credentials.
    public static let globalAllowList: [String] = [
        "clienttimeout", "fallbacktimeout", "clientmaxidle", "nice", "netprio", "bindwait", "waitforcards",
        "waitforcards_extra_delay", "preferlocalcards", "dropdups", "block_same_ip", "block_same_name",
        "failbantime", "failbancount", "disablelog", "maxlogsize", "loghistorylines", "lb_mode", "lb_save",
        "reload_useraccounts", "reload_readers", "readerrestartseconds", "suppresscmd08",
    ]

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        var contribution = Contribution()
        for problem in context.discovery.problems {
            contribution.failures.append(CollectorFailure(collector: name, instance: nil, error: problem.description))
        }
        for instance in context.discovery.instances {
            var report = InstanceReport(id: instance.id)
            report.identity = InstanceIdentity(
                name: instance.name, configDir: instance.configDir, tempDir: instance.tempDir,
                pidFile: instance.pidFile, binary: instance.binary, unit: instance.unit,
                discoveredBy: instance.provenance.map { .init(source: $0.source.rawValue, detail: $0.detail) },
                version: instance.versionFile?.version)
            var files: [String: FileFingerprint] = [:]
            var problems: [FileProblem] = []
            for (file, loaded) in (context.files[instance.id] ?? [:]).sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                switch loaded.result {
                case .success(let value):
                    files[file.rawValue] = value.fingerprint
                    problems += value.analysis.problems.map {
                        FileProblem(file: file.rawValue, line: $0.line, severity: $0.severity.rawValue, message: $0.message)
                    }
                case .failure(let error) where error.kind == .missing && file != .conf:
                    // oscam.user and oscam.server are optional; their absence is not an error.
                    continue
                case .failure(let error):
                    contribution.failures.append(CollectorFailure(collector: name, instance: instance.id,
                                                                  error: error.description))
                }
            }
            report.files = files
            let conf = context.document(.conf, of: instance.id)
            let ports = context.loaded(.conf, of: instance.id)?.analysis.listeners?.flatMap { listener in
                listener.ports.map { port in
                    PortInfo(section: listener.section, transport: listener.transport.rawValue, port: port.port,
                             caid: port.caid.map { hex4($0) }, providers: port.providers.map { hex6($0) })
                }
            } ?? []
            var global: [String: String] = [:]
            for key in Self.globalAllowList {
                if let value = conf?.value(key, inSection: "global"), !value.isEmpty {
                    global[key] = value
                }
            }
            report.config = ConfigSummary(ports: ports, global: global, problems: problems)
            contribution.instances[instance.id] = report
        }
        return contribution
    }
}

func hex4(_ value: UInt16) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

func hex6(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
}
