/// The snapshot, schema 1: everything the agent reports about the host and its OScam instances
/// (documented field by field in docs/payload.md). No type here can hold a password, key, card
/// data or a subscriber's address; that is the first of the two walls against leaks.
public struct Snapshot: Sendable, Equatable, JSONRepresentable {
    public static let schema = 1

    public var seq: Int64
    public var collectedAt: Int64
    public var agentVersion: String
    /// nil when the `host` collector is disabled (then the key is absent, not empty).
    public var host: HostInfo?
    public var resources: Resources?
    /// Always present: discovery runs whatever the enable list says, because every per-instance
    /// section hangs off an instance. What each entry carries depends on the enabled collectors.
    public var instances: [InstanceReport]
    public var collectorErrors: [CollectorFailure]
    /// Values removed per redaction rule; counts only.
    public var redaction: [String: Int]
    /// Set when account and reader lists were cut to fit the size limit.
    public var truncated: Truncation?

    public init(seq: Int64, collectedAt: Int64, agentVersion: String) {
        self.seq = seq
        self.collectedAt = collectedAt
        self.agentVersion = agentVersion
        instances = []
        collectorErrors = []
        redaction = [:]
    }

    public var json: JSONValue {
        .members([
            ("schema", .int(Int64(Self.schema))),
            ("seq", .int(seq)),
            ("collected_at", .int(collectedAt)),
            ("agent", .members([("version", .string(agentVersion))])),
            ("host", host?.json),
            ("resources", resources?.json),
            ("instances", .array(instances.sorted { $0.id < $1.id }.map(\.json))),
            ("collector_errors", .array(collectorErrors.sorted().map(\.json))),
            ("redaction", .object(redaction.mapValues { .int(Int64($0)) })),
            ("truncated", truncated?.json),
        ])
    }
}

public struct Truncation: Sendable, Equatable, JSONRepresentable {
    public var accounts: Int
    public var readers: Int

    public init(accounts: Int, readers: Int) {
        self.accounts = accounts
        self.readers = readers
    }

    public var json: JSONValue {
        .members([("accounts_total", .int(Int64(accounts))), ("readers_total", .int(Int64(readers)))])
    }
}

/// `host`: what machine this is.
public struct HostInfo: Sendable, Equatable, JSONRepresentable {
    public var hostname: String
    public var osID: String
    public var osVersion: String
    public var kernel: String
    public var arch: String
    public var cpuCount: Int
    public var bootTime: Int64?

    public init(hostname: String, osID: String, osVersion: String, kernel: String, arch: String, cpuCount: Int,
                bootTime: Int64?) {
        self.hostname = hostname
        self.osID = osID
        self.osVersion = osVersion
        self.kernel = kernel
        self.arch = arch
        self.cpuCount = cpuCount
        self.bootTime = bootTime
    }

    public var json: JSONValue {
        .members([
            ("hostname", .string(hostname)), ("os_id", .string(osID)), ("os_version", .string(osVersion)),
            ("kernel", .string(kernel)), ("arch", .string(arch)), ("cpu_count", .int(Int64(cpuCount))),
            ("boot_time", .int(bootTime)),
        ])
    }
}

/// `resources`: host CPU, memory and load.
public struct Resources: Sendable, Equatable, JSONRepresentable {
    public var cpuPercent: Double?
    public var ramTotalMB: Double
    public var ramUsedMB: Double
    public var ramAvailableMB: Double
    public var load1: Double
    public var load5: Double
    public var load15: Double

    public init(cpuPercent: Double?, ramTotalMB: Double, ramUsedMB: Double, ramAvailableMB: Double,
                load1: Double, load5: Double, load15: Double) {
        self.cpuPercent = cpuPercent
        self.ramTotalMB = ramTotalMB
        self.ramUsedMB = ramUsedMB
        self.ramAvailableMB = ramAvailableMB
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
    }

    public var json: JSONValue {
        .members([
            ("cpu_percent", .fixed(cpuPercent)), ("ram_total_mb", .fixed(ramTotalMB)),
            ("ram_used_mb", .fixed(ramUsedMB)), ("ram_available_mb", .fixed(ramAvailableMB)),
            ("load_1", .fixed(load1)), ("load_5", .fixed(load5)), ("load_15", .fixed(load15)),
        ])
    }
}

/// One OScam instance. `id` is always there; each other part comes from one collector and is
/// absent when that collector is disabled.
public struct InstanceReport: Sendable, Equatable, JSONRepresentable {
    public var id: String
    /// From the `instances` collector.
    public var identity: InstanceIdentity?
    public var config: ConfigSummary?
    public var files: [String: FileFingerprint]?
    /// From the `runtime` collector.
    public var runtime: RuntimeInfo?
    /// From the `webif` collector.
    public var webif: WebIfStatus?
    /// From the `accounts` collector.
    public var accounts: [AccountInfo]?
    /// From the `readers` collector.
    public var readers: [ReaderInfo]?

    public init(id: String) {
        self.id = id
    }

    public var json: JSONValue {
        var members: [(String, JSONValue?)] = [("id", .string(id))]
        if let identity {
            members += identity.members
        }
        members += [
            ("config", config?.json),
            ("files", files.map { .object($0.mapValues(\.json)) }),
            ("runtime", runtime?.json),
            ("webif", webif?.json),
            ("accounts", .array(accounts)),
            ("readers", .array(readers)),
        ]
        return .members(members)
    }
}

/// Where an instance lives and how it was found.
public struct InstanceIdentity: Sendable, Equatable {
    public var name: String
    public var configDir: String
    public var tempDir: String?
    public var pidFile: String?
    public var binary: String?
    public var unit: String?
    /// `[source, detail]` pairs, e.g. `("process", "pid 1234")`.
    public var discoveredBy: [Discovered]
    public var version: String?

    public struct Discovered: Sendable, Equatable, JSONRepresentable {
        public var source: String
        public var detail: String

        public init(source: String, detail: String) {
            self.source = source
            self.detail = detail
        }

        public var json: JSONValue {
            .members([("source", .string(source)), ("detail", .string(detail))])
        }
    }

    public init(name: String, configDir: String, tempDir: String?, pidFile: String?, binary: String?, unit: String?,
                discoveredBy: [Discovered], version: String?) {
        self.name = name
        self.configDir = configDir
        self.tempDir = tempDir
        self.pidFile = pidFile
        self.binary = binary
        self.unit = unit
        self.discoveredBy = discoveredBy
        self.version = version
    }

    var members: [(String, JSONValue?)] {
        [
            ("name", .string(name)), ("config_dir", .string(configDir)), ("temp_dir", .string(tempDir)),
            ("pid_file", .string(pidFile)), ("binary", .string(binary)), ("unit", .string(unit)),
            ("discovered_by", .array(discoveredBy)), ("version", .string(version)),
        ]
    }
}

/// A summary of the instance's configuration: counts, listening ports, allow-listed settings and
/// the problems found in its files.
public struct ConfigSummary: Sendable, Equatable, JSONRepresentable {
    /// From the `accounts` collector.
    public var accountCount: Int?
    /// From the `readers` collector.
    public var readerCount: Int?
    /// From the `instances` collector: listening ports, allow-listed `[global]` settings (never
    /// paths, names or credentials) and the problems found in the files.
    public var ports: [PortInfo]?
    public var global: [String: String]?
    public var problems: [FileProblem]?

    public init(accountCount: Int? = nil, readerCount: Int? = nil, ports: [PortInfo]? = nil,
                global: [String: String]? = nil, problems: [FileProblem]? = nil) {
        self.accountCount = accountCount
        self.readerCount = readerCount
        self.ports = ports
        self.global = global
        self.problems = problems
    }

    /// Takes every part `other` has.
    public mutating func merge(_ other: ConfigSummary) {
        accountCount = other.accountCount ?? accountCount
        readerCount = other.readerCount ?? readerCount
        ports = other.ports ?? ports
        global = other.global ?? global
        problems = other.problems ?? problems
    }

    public var json: JSONValue {
        .members([
            ("account_count", .int(accountCount)), ("reader_count", .int(readerCount)),
            ("ports", .array(ports)), ("global", global.map { .object($0.mapValues(JSONValue.string)) }),
            ("problems", .array(problems)),
        ])
    }
}

public struct PortInfo: Sendable, Equatable, JSONRepresentable {
    public var section: String
    public var transport: String
    public var port: Int
    public var caid: String?
    public var providers: [String]

    public init(section: String, transport: String, port: Int, caid: String?, providers: [String]) {
        self.section = section
        self.transport = transport
        self.port = port
        self.caid = caid
        self.providers = providers
    }

    public var json: JSONValue {
        .members([
            ("section", .string(section)), ("transport", .string(transport)), ("port", .int(Int64(port))),
            ("caid", .string(caid)), ("providers", providers.isEmpty ? nil : .strings(providers)),
        ])
    }
}

/// A problem in an OScam file: where it is and what is wrong, never the value.
public struct FileProblem: Sendable, Equatable, JSONRepresentable {
    public var file: String
    public var line: Int
    public var severity: String
    public var message: String

    public init(file: String, line: Int, severity: String, message: String) {
        self.file = file
        self.line = line
        self.severity = severity
        self.message = message
    }

    public var json: JSONValue {
        .members([
            ("file", .string(file)), ("line", .int(Int64(line))), ("severity", .string(severity)),
            ("message", .string(message)),
        ])
    }
}

/// SHA-256, size and modification time of one config file; the panel sends the hash back as
/// `base_sha256` when it edits the file.
public struct FileFingerprint: Sendable, Equatable, JSONRepresentable {
    public var sha256: String
    public var size: Int64
    public var mtime: Int64

    public init(sha256: String, size: Int64, mtime: Int64) {
        self.sha256 = sha256
        self.size = size
        self.mtime = mtime
    }

    public var json: JSONValue {
        .members([("sha256", .string(sha256)), ("size", .int(size)), ("mtime", .int(mtime))])
    }
}

/// `runtime`: is the worker running, since when, and what it costs.
public struct RuntimeInfo: Sendable, Equatable, JSONRepresentable {
    public var state: String
    public var pid: Int32?
    public var watchdogPID: Int32?
    public var uptimeSeconds: Int64?
    public var cpuPercent: Double?
    public var rssMB: Double?
    public var threads: Int?

    public init(state: String, pid: Int32? = nil, watchdogPID: Int32? = nil, uptimeSeconds: Int64? = nil,
                cpuPercent: Double? = nil, rssMB: Double? = nil, threads: Int? = nil) {
        self.state = state
        self.pid = pid
        self.watchdogPID = watchdogPID
        self.uptimeSeconds = uptimeSeconds
        self.cpuPercent = cpuPercent
        self.rssMB = rssMB
        self.threads = threads
    }

    public var json: JSONValue {
        .members([
            ("state", .string(state)), ("pid", .int(pid)), ("watchdog_pid", .int(watchdogPID)),
            ("uptime_s", .int(uptimeSeconds)), ("cpu_percent", .fixed(cpuPercent)), ("rss_mb", .fixed(rssMB)),
            ("threads", .int(threads)),
        ])
    }
}

/// `webif`: how the WebIF is configured and whether the agent reached it.
public struct WebIfStatus: Sendable, Equatable, JSONRepresentable {
    public var enabled: Bool
    public var host: String?
    public var port: Int?
    public var tls: Bool
    /// `ok`, `disabled`, `forbidden` (403), `unauthorized` (401), `refused`, `timeout`,
    /// `tls_error`, `http_error`, `bad_response`, `unreachable`, `unknown` (docs/payload.md).
    public var state: String
    public var reachable: Bool
    public var httpStatus: Int?
    public var latencyMS: Int?
    public var version: String?
    public var startedAt: String?
    public var readonly: Bool?
    public var posture: WebIfPosture

    public init(enabled: Bool, host: String?, port: Int?, tls: Bool, state: String, reachable: Bool,
                httpStatus: Int?, latencyMS: Int?, version: String?, startedAt: String?, readonly: Bool?,
                posture: WebIfPosture) {
        self.enabled = enabled
        self.host = host
        self.port = port
        self.tls = tls
        self.state = state
        self.reachable = reachable
        self.httpStatus = httpStatus
        self.latencyMS = latencyMS
        self.version = version
        self.startedAt = startedAt
        self.readonly = readonly
        self.posture = posture
    }

    public var json: JSONValue {
        .members([
            ("enabled", .bool(enabled)), ("host", .string(host)), ("port", .int(port)), ("tls", .bool(tls)),
            ("state", .string(state)), ("reachable", .bool(reachable)), ("http_status", .int(httpStatus)),
            ("latency_ms", .int(latencyMS)), ("version", .string(version)), ("started_at", .string(startedAt)),
            ("readonly", readonly.map(JSONValue.bool)), ("posture", posture.json),
        ])
    }
}

/// The WebIF's exposure, from oscam.conf alone.
public struct WebIfPosture: Sendable, Equatable, JSONRepresentable {
    /// Every `httpallowed` entry is a loopback address.
    public var loopbackOnly: Bool
    /// `httpallowed` admits 127.0.0.1 or ::1, so the agent can reach it.
    public var allowsLoopback: Bool
    /// Both `httpuser` and `httppwd` are set.
    public var credentialsSet: Bool
    public var readonly: Bool
    public var tls: Bool
    /// Bound to every address (no `serverip`).
    public var bindsAll: Bool

    public init(loopbackOnly: Bool, allowsLoopback: Bool, credentialsSet: Bool, readonly: Bool, tls: Bool,
                bindsAll: Bool) {
        self.loopbackOnly = loopbackOnly
        self.allowsLoopback = allowsLoopback
        self.credentialsSet = credentialsSet
        self.readonly = readonly
        self.tls = tls
        self.bindsAll = bindsAll
    }

    public var json: JSONValue {
        .members([
            ("loopback_only", .bool(loopbackOnly)), ("allows_loopback", .bool(allowsLoopback)),
            ("credentials_set", .bool(credentialsSet)), ("readonly", .bool(readonly)), ("tls", .bool(tls)),
            ("binds_all", .bool(bindsAll)),
        ])
    }
}

/// An account of oscam.user, without `pwd` or `hostname`.
public struct AccountInfo: Sendable, Equatable, JSONRepresentable {
    public var user: String
    public var enabled: Bool
    public var groups: [Int]
    public var caids: [String]
    public var idents: [String]
    public var expdate: String?

    public init(user: String, enabled: Bool, groups: [Int], caids: [String], idents: [String], expdate: String?) {
        self.user = user
        self.enabled = enabled
        self.groups = groups
        self.caids = caids
        self.idents = idents
        self.expdate = expdate
    }

    public var json: JSONValue {
        .members([
            ("user", .string(user)), ("enabled", .bool(enabled)), ("group", .array(groups.map { .int(Int64($0)) })),
            ("caid", .strings(caids)), ("ident", .strings(idents)), ("expdate", .string(expdate)),
        ])
    }
}

/// A reader of oscam.server, without credentials, keys, device or card data.
public struct ReaderInfo: Sendable, Equatable, JSONRepresentable {
    public var label: String
    public var protocolName: String
    public var enabled: Bool
    public var groups: [Int]
    public var caids: [String]
    public var idents: [String]
    public var deviceKind: String

    public init(label: String, protocolName: String, enabled: Bool, groups: [Int], caids: [String],
                idents: [String], deviceKind: String) {
        self.label = label
        self.protocolName = protocolName
        self.enabled = enabled
        self.groups = groups
        self.caids = caids
        self.idents = idents
        self.deviceKind = deviceKind
    }

    public var json: JSONValue {
        .members([
            ("label", .string(label)), ("protocol", .string(protocolName)), ("enabled", .bool(enabled)),
            ("group", .array(groups.map { .int(Int64($0)) })), ("caid", .strings(caids)),
            ("ident", .strings(idents)), ("device_kind", .string(deviceKind)),
        ])
    }
}

/// One collector's failure, reduced to a line that is safe to send.
public struct CollectorFailure: Sendable, Equatable, Comparable, JSONRepresentable {
    public var collector: String
    public var instance: String?
    public var error: String

    public init(collector: String, instance: String?, error: String) {
        self.collector = collector
        self.instance = instance
        self.error = error
    }

    public static func < (lhs: CollectorFailure, rhs: CollectorFailure) -> Bool {
        (lhs.collector, lhs.instance ?? "", lhs.error) < (rhs.collector, rhs.instance ?? "", rhs.error)
    }

    public var json: JSONValue {
        .members([("collector", .string(collector)), ("instance", .string(instance)), ("error", .string(error))])
    }
}

extension Snapshot {
    /// The snapshot as far as "has it changed?" goes (PANEL-API: a snapshot is sent when its
    /// content changed, else hourly). Without the figures that move between any two collections
    /// (the host's CPU, load and memory in use; each OScam's uptime, CPU, RSS and threads; the
    /// WebIF's latency), so a server where nothing happens sends an hourly snapshot, not one
    /// per interval. Each sent snapshot still carries them all. An instance's account and reader
    /// lists are left out when its file fingerprints are there: they are made from those files
    /// alone, so a changed list is a changed fingerprint, and the view stays small enough to
    /// encode every cycle.
    public var changeView: Snapshot {
        var view = self
        view.seq = 0
        view.collectedAt = 0
        if var resources = view.resources {
            resources.cpuPercent = nil
            resources.ramUsedMB = 0
            resources.ramAvailableMB = 0
            resources.load1 = 0
            resources.load5 = 0
            resources.load15 = 0
            view.resources = resources
        }
        for index in view.instances.indices {
            var instance = view.instances[index]
            if var runtime = instance.runtime {
                runtime.uptimeSeconds = nil
                runtime.cpuPercent = nil
                runtime.rssMB = nil
                runtime.threads = nil
                instance.runtime = runtime
            }
            instance.webif?.latencyMS = nil
            if instance.files?.isEmpty == false {
                instance.accounts = instance.accounts.map { _ in [] }
                instance.readers = instance.readers.map { _ in [] }
            }
            view.instances[index] = instance
        }
        return view
    }
}
