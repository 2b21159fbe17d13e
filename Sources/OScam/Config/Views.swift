/// An `[account]` of oscam.user as OScam loads it, without its secrets (`pwd`, `hostname`).
public struct Account: Sendable, Equatable {
    public let user: String
    public let enabled: Bool
    public let groups: [Int]
    public let caids: [CAIDEntry]
    public let idents: [IdentEntry]
    /// `YYYY-MM-DD`, normalised from OScam's two accepted forms.
    public let expdate: String?
    /// Line of the `[account]` header.
    public let line: Int
}

/// An account's reportable fields in OScam's own notation: what the `accounts` collector sends.
/// `ConfigDocument.analyze()` derives it from the typed view `Account`; the collectors' reading
/// `FileAnalysis(scanning:file:path:)` builds it straight from the file's bytes, and a test holds
/// the two together.
public struct AccountSummary: Sendable, Equatable {
    public let user: String
    public let enabled: Bool
    public let groups: [Int]
    /// `CAIDEntry.text` of each entry.
    public let caids: [String]
    /// `IdentEntry.text` of each entry.
    public let idents: [String]
    /// `YYYY-MM-DD`.
    public let expdate: String?
    /// Line of the `[account]` header.
    public let line: Int
}

extension AccountSummary {
    /// The summary of a typed `Account`: its lists in OScam's notation.
    public init(_ account: Account) {
        self.init(user: account.user, enabled: account.enabled, groups: account.groups,
                  caids: account.caids.map(\.text), idents: account.idents.map(\.text), expdate: account.expdate,
                  line: account.line)
    }
}

/// A `[reader]` of oscam.server, without its secrets (credentials, keys, `device`, card data).
public struct Reader: Sendable, Equatable {
    public enum DeviceKind: String, Sendable, Equatable, Codable {
        /// A remote server reached over the network (`device = host,port`).
        case network
        /// A card in a local reader (`device = /dev/...`).
        case local
        /// A built-in emulator or constant-CW source.
        case emulator
        case unknown
    }

    /// Spaces replaced by `_`, as OScam corrects labels.
    public let label: String
    public let protocolName: String
    public let enabled: Bool
    public let groups: [Int]
    public let caids: [CAIDEntry]
    public let idents: [IdentEntry]
    public let deviceKind: DeviceKind
    public let line: Int

    static let networkProtocols: Set<String> = [
        "camd35", "cs357x", "cs378x", "camd33", "cccam", "cccam_ext", "cccam_mcs", "newcamd", "newcamd525",
        "newcamd524", "radegast", "gbox", "scam", "ghttp", "serial",
    ]
    static let emulatorProtocols: Set<String> = ["emu", "constcw", "drecas"]
    static let localProtocols: Set<String> = [
        "mouse", "internal", "smartreader", "pcsc", "sc8in1", "mp35", "smargo", "stapi", "stinger", "db2com",
    ]
}

/// The `[webif]` settings that decide how the agent reaches OScam's WebIF.
public struct WebIfSettings: Sendable, Equatable {
    /// 0 when the WebIF is off.
    public let port: Int
    /// `httpport = +port`: HTTPS with OScam's own (usually self-signed) certificate.
    public let tls: Bool
    /// `[webif] serverip`, falling back to `[global] serverip`; nil = every address.
    public let bindAddress: String?
    public let user: Secret?
    public let password: Secret?
    /// The parsed `httpallowed`; OScam's default list when oscam.conf is missing entirely.
    public let allowed: [IPRange]
    public let readonly: Bool

    /// Digest auth is active only when both user and password are set (OSCAM.md §4.2).
    public var authRequired: Bool {
        !(user?.isEmpty ?? true) && !(password?.isEmpty ?? true)
    }

    public var enabled: Bool {
        port != 0
    }

    /// `httpallowed` admits the agent's loopback calls.
    public var allowsLoopback: Bool {
        let v4 = IPAddress("127.0.0.1")
        let v6 = IPAddress("::1")
        return allowed.contains { range in
            v4.map(range.contains) == true || v6.map(range.contains) == true
        }
    }

    /// Every allowed address is a loopback address: the WebIF is not reachable from outside.
    public var loopbackOnly: Bool {
        !allowed.isEmpty && allowed.allSatisfy(\.isLoopbackOnly)
    }

    /// What OScam uses when oscam.conf does not exist (OSCAM.md §1.2).
    public static let defaultsWithoutConf = WebIfSettings(
        port: 8888, tls: false, bindAddress: nil, user: nil, password: nil,
        allowed: (try? ListSyntax.ipRanges(
            "127.0.0.1,192.168.0.0-192.168.255.255,10.0.0.0-10.255.255.255,172.16.0.0-172.31.255.255,::1")) ?? [],
        readonly: false)
}

/// One protocol listener OScam opens, from its oscam.conf section.
public struct Listener: Sendable, Equatable {
    public enum Transport: String, Sendable, Equatable, Codable { case tcp, udp }
    /// The oscam.conf section, e.g. `newcamd`, `cs378x`.
    public let section: String
    public let transport: Transport
    public let ports: [ListenerPort]
}

/// Everything the typed views say about one file; which views are set depends on the file.
public struct FileAnalysis: Sendable, Equatable {
    public var problems: [ConfigProblem] = []
    public var accounts: [AccountSummary]?
    public var readers: [Reader]?
    public var webif: WebIfSettings?
    public var listeners: [Listener]?
    /// Every secret value in the file, for the redaction filter.
    public var secrets: [FoundSecret] = []

    public init(problems: [ConfigProblem] = [], accounts: [AccountSummary]? = nil, readers: [Reader]? = nil,
                webif: WebIfSettings? = nil, listeners: [Listener]? = nil) {
        self.problems = problems
        self.accounts = accounts
        self.readers = readers
        self.webif = webif
        self.listeners = listeners
    }
}

/// A typed reading of one OScam file, with every problem the reading found (the document's own
/// and those of list values), each naming the file and line.
public struct View<Value: Sendable>: Sendable {
    public let value: Value
    public let problems: [ConfigProblem]
}

extension ConfigDocument {
    // MARK: - oscam.user

    /// The accounts OScam loads: `[account]` sections with a `user`, the first of duplicate names.
    public func accounts() -> View<[Account]> {
        var builder = RecordBuilder(path: path)
        forEachRecord { builder.addAccount($0) }
        return View(value: builder.accounts, problems: builder.problems)
    }

    // MARK: - oscam.server

    /// The readers OScam loads: `[reader]` sections with a `label`.
    public func readers() -> View<[Reader]> {
        var builder = RecordBuilder(path: path)
        forEachRecord { builder.addReader($0) }
        return View(value: builder.readers, problems: builder.problems)
    }

    // MARK: - oscam.conf

    /// The `[webif]` settings (OSCAM.md §4.2).
    public func webif() -> View<WebIfSettings> {
        var problems: [ConfigProblem] = []
        let webif = ConfigSection(name: "webif", headerLine: nil, settings: settings(inSection: "webif"))
        var port = 0
        var tls = false
        if var raw = webif.value("httpport"), !raw.isEmpty {
            if raw.hasPrefix("+") {
                tls = true
                raw.removeFirst()
            }
            do {
                port = try ListSyntax.port(raw)
            } catch {
                problems.append(problem(webif.line(of: "httpport") ?? 0, "httpport: \(error.message)"))
            }
        }
        let allowed = parseList(webif, "httpallowed", into: &problems, ListSyntax.ipRanges) ?? []
        let bind = [webif.value("serverip"), value("serverip", inSection: "global")]
            .compactMap { $0 }.first { !$0.isEmpty }
        return View(value: WebIfSettings(
            port: port, tls: tls, bindAddress: bind,
            user: webif.value("httpuser").map(Secret.init), password: webif.value("httppwd").map(Secret.init),
            allowed: allowed, readonly: Self.flag(webif.value("httpreadonly"))), problems: problems)
    }

    /// The protocol listeners with a non-zero port, in OScam's section order.
    public func listeners() -> View<[Listener]> {
        var problems: [ConfigProblem] = []
        var listeners: [Listener] = []
        typealias PortParser = (String) throws(ListSyntaxError) -> [ListenerPort]
        let single: PortParser = { (text: String) throws(ListSyntaxError) -> [ListenerPort] in
            [ListenerPort(port: try ListSyntax.port(text))]
        }
        let list: PortParser = { (text: String) throws(ListSyntaxError) -> [ListenerPort] in
            try ListSyntax.portList(text).map { ListenerPort(port: $0) }
        }
        let table: [(section: String, key: String, transport: Listener.Transport, parse: PortParser)] = [
            ("camd33", "port", .tcp, single),
            ("cs357x", "port", .udp, single),
            ("cs378x", "port", .tcp, ListSyntax.camd35Ports),
            ("newcamd", "port", .tcp, ListSyntax.newcamdPorts),
            ("radegast", "port", .tcp, single),
            ("gbox", "port", .udp, list),
            ("cccam", "port", .tcp, list),
            ("pandora", "pand_port", .udp, single),
            ("scam", "port", .tcp, single),
            ("monitor", "port", .udp, single),
            ("cache", "csp_port", .udp, single),
        ]
        for entry in table {
            let section = ConfigSection(name: entry.section, headerLine: nil, settings: settings(inSection: entry.section))
            guard let raw = section.value(entry.key), !raw.isEmpty else {
                continue
            }
            do {
                let ports = try entry.parse(raw).filter { $0.port != 0 }
                if !ports.isEmpty {
                    listeners.append(Listener(section: entry.section, transport: entry.transport, ports: ports))
                }
            } catch {
                problems.append(problem(section.line(of: entry.key) ?? 0, "[\(entry.section)] \(entry.key): \(error)"))
            }
        }
        return View(value: listeners, problems: problems)
    }

    /// Every problem in the file: the document's own and those of its typed views.
    public func allProblems() -> [ConfigProblem] {
        analyze().problems
    }

    /// Every typed view of the file and every problem, each view computed once (a collection
    /// cycle needs all of them; a 5,000-account file should be walked once, not per question).
    public func analyze() -> FileAnalysis {
        var found = problems
        var analysis = FileAnalysis()
        switch file {
        case .user, .server:
            // One walk over the records feeds the typed view and the secret list.
            var builder = RecordBuilder(path: path)
            var secrets = SecretCollector(file: file)
            let record = file.recordSection
            forEachSection { section in
                secrets.add(section)
                guard section.name == record else {
                    return
                }
                if file == .user {
                    builder.addAccount(section)
                } else {
                    builder.addReader(section)
                }
            }
            if file == .user {
                analysis.accounts = builder.accounts.map(AccountSummary.init)
            } else {
                analysis.readers = builder.readers
            }
            analysis.secrets = secrets.found
            found += builder.problems
        case .conf:
            let webif = webif()
            let listeners = listeners()
            analysis.webif = webif.value
            analysis.listeners = listeners.value
            analysis.secrets = secretValues()
            found += webif.problems + listeners.problems
        }
        analysis.problems = found.sorted { ($0.line, $0.message) < ($1.line, $1.message) }
        return analysis
    }

    // MARK: - Helpers

    func parseList<T>(
        _ section: ConfigSection, _ key: String, into problems: inout [ConfigProblem],
        _ parse: (String) throws(ListSyntaxError) -> T
    ) -> T? {
        section.parsed(key, path: path, into: &problems, parse)
    }

    func problem(_ line: Int, _ message: String) -> ConfigProblem {
        ConfigProblem(path: path, line: line, severity: .error, message: message)
    }

    /// OScam's reading of a 0/1 setting: a number other than 0 is on; anything else is off.
    static func flag(_ value: String?) -> Bool {
        guard let value, let number = Int(value) else {
            return false
        }
        return number != 0
    }

    static let badExpdate = "expdate is not YYYY-MM-DD or YYYY/MM/DD"

    static func normalisedDate(_ raw: String) -> String? {
        let parts = raw.split(omittingEmptySubsequences: false) { $0 == "-" || $0 == "/" }
        guard parts.count == 3, parts[0].count == 4, parts[1].count <= 2, parts[2].count <= 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...31).contains(day), year >= 1970 else {
            return nil
        }
        return "\(year)-" + pad2(month) + "-" + pad2(day)
    }

    private static func pad2(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }

    /// `normalisedDate` on ASCII bytes, where a `Character` is a byte: the same rules on bytes,
    /// without building the pieces (the collectors' reading of every account's date).
    static func normalisedDate(ascii raw: ArraySlice<UInt8>) -> String? {
        func isSeparator(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/")
        }
        guard let first = raw.firstIndex(where: isSeparator),
              let second = raw[(first + 1)...].firstIndex(where: isSeparator),
              !raw[(second + 1)...].contains(where: isSeparator),
              first - raw.startIndex == 4, second - first - 1 <= 2, raw.endIndex - second - 1 <= 2,
              let year = asciiInt(raw[..<first]), let month = asciiInt(raw[(first + 1)..<second]),
              let day = asciiInt(raw[(second + 1)...]),
              (1...12).contains(month), (1...31).contains(day), year >= 1970 else {
            return nil
        }
        // A year of four characters that is at least 1970 has four digits.
        return NotationText.string(capacity: 10) { out in
            out.appendDecimal(year, width: 4)
            out.append(UInt8(ascii: "-"))
            out.appendDecimal(month, width: 2)
            out.append(UInt8(ascii: "-"))
            out.appendDecimal(day, width: 2)
        }
    }

    /// `Int(_:)` of a short ASCII decimal: an optional sign, then at least one digit.
    private static func asciiInt(_ digits: ArraySlice<UInt8>) -> Int? {
        var rest = digits
        var sign = 1
        if let first = rest.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first == UInt8(ascii: "-") ? -1 : 1
            rest = rest.dropFirst()
        }
        guard !rest.isEmpty, rest.count <= 18, rest.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            return nil
        }
        return sign * rest.reduce(0) { $0 * 10 + Int($1 - 48) }
    }
}

extension ConfigSection {
    /// The parsed value of `key` (the setting that wins), nil when it is not set. A value the
    /// parser rejects becomes an error on its line, named by the key, and gives nil.
    func parsed<T>(
        _ key: String, path: String, into problems: inout [ConfigProblem],
        _ parse: (String) throws(ListSyntaxError) -> T
    ) -> T? {
        guard let raw = value(key) else {
            return nil
        }
        do {
            return try parse(raw)
        } catch {
            problems.append(ConfigProblem(path: path, line: line(of: key) ?? headerLine ?? 0, severity: .error,
                                          message: "\(key): \(error)"))
            return nil
        }
    }
}

/// Builds accounts or readers one record at a time.
struct RecordBuilder {
    /// The file's path, for problems.
    let path: String
    var problems: [ConfigProblem] = []
    var accounts: [Account] = []
    var readers: [Reader] = []
    private var seen: Set<String> = []

    init(path: String) {
        self.path = path
    }

    mutating func addAccount(_ record: ConfigSection) {
        guard let user = record.value("user"), !user.isEmpty, let line = record.headerLine else {
            return
        }
        guard seen.insert(user).inserted else {
            return
        }
        let groups = record.parsed("group", path: path, into: &problems, ListSyntax.groups) ?? []
        let caids = record.parsed("caid", path: path, into: &problems, ListSyntax.caids) ?? []
        let idents = record.parsed("ident", path: path, into: &problems, ListSyntax.idents) ?? []
        var expdate: String?
        if let raw = record.value("expdate"), !raw.isEmpty {
            expdate = ConfigDocument.normalisedDate(raw)
            if expdate == nil {
                problems.append(ConfigProblem(path: path, line: record.line(of: "expdate") ?? line, severity: .error,
                                              message: ConfigDocument.badExpdate))
            }
        }
        accounts.append(Account(
            user: user, enabled: !ConfigDocument.flag(record.value("disabled")), groups: groups, caids: caids,
            idents: idents, expdate: expdate, line: line))
    }

    mutating func addReader(_ record: ConfigSection) {
        guard let rawLabel = record.value("label"), !rawLabel.isEmpty, let line = record.headerLine else {
            return
        }
        let protocolName = LineSyntax.lowercased(Array((record.value("protocol") ?? "").utf8)[...])
        let kind: Reader.DeviceKind =
            Reader.networkProtocols.contains(protocolName) ? .network
            : Reader.localProtocols.contains(protocolName) ? .local
            : Reader.emulatorProtocols.contains(protocolName) ? .emulator : .unknown
        readers.append(Reader(
            label: String(rawLabel.map { $0 == " " ? "_" : $0 }),
            protocolName: protocolName,
            enabled: record.value("enable").map { Int($0) ?? 1 != 0 } ?? true,
            groups: record.parsed("group", path: path, into: &problems, ListSyntax.groups) ?? [],
            caids: record.parsed("caid", path: path, into: &problems, ListSyntax.caids) ?? [],
            idents: record.parsed("ident", path: path, into: &problems, ListSyntax.idents) ?? [],
            deviceKind: kind, line: line))
    }
}
