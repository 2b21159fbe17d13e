import Collectors
import Pipeline

/// Every collector the agent has, in one explicit list: the enable list in
/// `/etc/myosicam/collectors.conf` is checked against it.
enum Registry {
    struct Entry: Sendable {
        let name: String
        let summary: String
        let make: @Sendable () -> any Collector<CollectContext>
    }

    static let all: [Entry] = [
        Entry(name: "host", summary: "hostname, OS, kernel, architecture, CPU count, boot time") { HostCollector() },
        Entry(name: "resources", summary: "host CPU %, RAM total/used/available, load averages") { ResourcesCollector() },
        Entry(name: "instances", summary: "each OScam instance: where it lives, how it was found, version, ports, "
                + "allow-listed [global] settings, file problems and fingerprints") { InstancesCollector() },
        Entry(name: "accounts", summary: "oscam.user accounts: user, enabled, group, caid, ident, expdate (never pwd)")
            { AccountsCollector() },
        Entry(name: "readers", summary: "oscam.server readers: label, protocol, enabled, group, caid, ident, device kind "
                + "(never credentials, keys or device)") { ReadersCollector() },
        Entry(name: "webif", summary: "WebIF exposure from oscam.conf and reachability over loopback (status API only)")
            { WebIfCollector() },
        Entry(name: "runtime", summary: "worker state, PID, uptime, CPU %, RSS, threads") { RuntimeCollector() },
    ]

    static var names: [String] {
        all.map(\.name)
    }

    /// The operator's enable list: one collector name per line, `#` comments. An absent file
    /// enables every collector; an unknown name is a problem naming its line.
    static func enabled(fileText: String?, path: String) -> (names: [String], problems: [AgentConfig.Problem]) {
        guard let fileText else {
            return (names, [])
        }
        var chosen: [String] = []
        var problems: [AgentConfig.Problem] = []
        for (index, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = AgentConfig.stripComment(String(raw)).trimmed
            guard !line.isEmpty else {
                continue
            }
            guard names.contains(line) else {
                problems.append(AgentConfig.Problem(
                    path: path, line: index + 1,
                    message: "unknown collector '\(line)'; known: \(names.joined(separator: ", "))"))
                continue
            }
            if !chosen.contains(line) {
                chosen.append(line)
            }
        }
        return (all.map(\.name).filter(chosen.contains), problems)
    }
}
