#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Platform

/// A bounded disk spool of encoded snapshots waiting for the panel (PANEL-API.md "Snapshots"):
/// one file per snapshot, named by its zero-padded sequence number so directory order is send
/// order; each written atomically (0600). When the spool would exceed its size limit the oldest
/// snapshots are dropped and counted. The counters live in a small file beside them, so they
/// survive restarts.
public struct SnapshotSpool: Sendable {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        public let isNoSpace: Bool
    }

    public struct Counters: Sendable, Equatable {
        /// Snapshots dropped because the spool was full.
        public var dropped: Int64 = 0
        /// Snapshots the panel refused with a 4xx other than 401/429 (it will never take them).
        public var rejected: Int64 = 0
    }

    public let directory: String
    public let maxBytes: Int

    public init(directory: String, maxBytes: Int) {
        self.directory = directory
        self.maxBytes = maxBytes
    }

    static let suffix = ".snapshot"
    static let countersFile = "counters"

    static func name(for seq: Int64) -> String {
        let digits = String(seq)
        return String(repeating: "0", count: max(0, 19 - digits.count)) + digits + suffix
    }

    /// The spooled snapshots' sequence numbers and sizes, oldest first. Files that are not
    /// spool entries (a temporary left by a crash, anything else) are ignored.
    public func entries() -> [(seq: Int64, size: Int)] {
        guard let names = Files.list(directory) else {
            return []
        }
        var result: [(seq: Int64, size: Int)] = []
        for name in names where name.hasSuffix(Self.suffix) && name.utf8.count == 19 + Self.suffix.utf8.count {
            guard let seq = Int64(name.dropLast(Self.suffix.count)), seq > 0 else {
                continue
            }
            var info = stat()
            guard stat(directory + "/" + name, &info) == 0 else {
                continue
            }
            result.append((seq, Int(info.st_size)))
        }
        return result.sorted { $0.seq < $1.seq }
    }

    /// Adds a snapshot, first dropping the oldest ones until it fits. A snapshot larger than the
    /// whole limit is dropped itself (and counted).
    public func append(_ snapshot: EncodedSnapshot) throws(Failure) {
        try ensureDirectory()
        var entries = entries()
        var total = entries.reduce(0) { $0 + $1.size }
        var dropped: Int64 = 0
        if snapshot.bytes.count > maxBytes {
            try addToCounters(dropped: 1)
            return
        }
        while total + snapshot.bytes.count > maxBytes, let oldest = entries.first {
            unlink(directory + "/" + Self.name(for: oldest.seq))
            total -= oldest.size
            entries.removeFirst()
            dropped += 1
        }
        if dropped > 0 {
            try addToCounters(dropped: dropped)
        }
        do {
            try AtomicFile.write(snapshot.bytes, to: directory + "/" + Self.name(for: snapshot.seq), mode: 0o600)
        } catch {
            throw Failure(description: error.description, isNoSpace: error.isNoSpace)
        }
    }

    /// Up to `limit` of the oldest snapshots, with their bytes. An entry that cannot be read
    /// any more is removed and counted as dropped, so one bad file never blocks the spool.
    public func oldest(_ limit: Int) -> [EncodedSnapshot] {
        var result: [EncodedSnapshot] = []
        for entry in entries() {
            guard result.count < limit else {
                break
            }
            let path = directory + "/" + Self.name(for: entry.seq)
            guard let bytes = Files.read(path, limit: maxBytes + 1) else {
                unlink(path)
                try? addToCounters(dropped: 1)
                continue
            }
            result.append(EncodedSnapshot(seq: entry.seq, bytes: bytes, sha256: Crypto.sha256Hex(bytes)))
        }
        return result
    }

    /// Removes delivered snapshots (every seq up to and including `seq`).
    public func remove(through seq: Int64) {
        for entry in entries() where entry.seq <= seq {
            unlink(directory + "/" + Self.name(for: entry.seq))
        }
    }

    /// Removes snapshots the panel will never take, counting them as rejected.
    public func reject(_ seqs: [Int64]) throws(Failure) {
        for seq in seqs {
            unlink(directory + "/" + Self.name(for: seq))
        }
        try addToCounters(rejected: Int64(seqs.count))
    }

    public func counters() -> Counters {
        guard let bytes = Files.read(directory + "/" + Self.countersFile, limit: 4096) else {
            return Counters()
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var counters = Counters()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int64(parts[1]), value >= 0 else {
                continue
            }
            if parts[0] == "dropped" {
                counters.dropped = value
            } else if parts[0] == "rejected" {
                counters.rejected = value
            }
        }
        return counters
    }

    private func addToCounters(dropped: Int64 = 0, rejected: Int64 = 0) throws(Failure) {
        var counters = counters()
        counters.dropped += dropped
        counters.rejected += rejected
        do {
            try AtomicFile.write(Array("dropped=\(counters.dropped)\nrejected=\(counters.rejected)\n".utf8),
                                 to: directory + "/" + Self.countersFile, mode: 0o600)
        } catch {
            throw Failure(description: error.description, isNoSpace: error.isNoSpace)
        }
    }

    private func ensureDirectory() throws(Failure) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            let code = errno
            throw Failure(description: "\(directory): cannot create the spool: \(String(cString: strerror(code)))",
                          isNoSpace: code == ENOSPC)
        }
    }

    /// The body for `POST /snapshots`: `{"snapshots":[` + the snapshots' bytes joined by `,`
    /// + `]}`, oldest first (PANEL-API.md).
    public static func batchBody(_ snapshots: [EncodedSnapshot]) -> [UInt8] {
        var body = Array("{\"snapshots\":[".utf8)
        for (index, snapshot) in snapshots.enumerated() {
            if index > 0 {
                body.append(UInt8(ascii: ","))
            }
            body += snapshot.bytes
        }
        body += Array("]}".utf8)
        return body
    }
}
