/// Pure parsers for the `/proc` files the host collectors read; tested on strings.
public enum ProcParsers {
    /// Aggregate CPU jiffies from the `cpu ` line of `/proc/stat`: (busy, total).
    public static func cpuTotals(_ text: String) -> (busy: UInt64, total: UInt64)? {
        for line in text.split(separator: "\n") where line.hasPrefix("cpu ") {
            let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
            guard fields.count >= 4 else {
                return nil
            }
            let total = fields.reduce(0, &+)
            // idle + iowait are not busy time.
            let idle = fields[3] &+ (fields.count > 4 ? fields[4] : 0)
            return (total &- idle, total)
        }
        return nil
    }

    /// `/proc/meminfo` in kB: total and available (MemAvailable, or free + buffers + cached on
    /// kernels before 3.14).
    public static func memory(_ text: String) -> (totalKB: UInt64, availableKB: UInt64)? {
        var values: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let number = parts[1].split(separator: " ").first.flatMap({ UInt64($0) }) else {
                continue
            }
            values[parts[0]] = number
        }
        guard let total = values["MemTotal"] else {
            return nil
        }
        let available = values["MemAvailable"]
            ?? (values["MemFree"] ?? 0) &+ (values["Buffers"] ?? 0) &+ (values["Cached"] ?? 0)
        return (total, min(available, total))
    }

    /// `/proc/loadavg`: the three load averages.
    public static func loadAverages(_ text: String) -> (Double, Double, Double)? {
        let fields = text.split(separator: " ").prefix(3).compactMap { Double($0) }
        guard fields.count == 3, fields.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            return nil
        }
        return (fields[0], fields[1], fields[2])
    }

    /// `ID` and `VERSION_ID` from os-release, unquoted.
    public static func osRelease(_ text: String) -> (id: String, version: String) {
        var id = ""
        var version = ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else {
                continue
            }
            var value = String(parts[1])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            if parts[0] == "ID" {
                id = value
            } else if parts[0] == "VERSION_ID" {
                version = value
            }
        }
        return (id, version)
    }
}
