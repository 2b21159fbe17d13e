#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Platform
import Sinks

/// The apply journal of one command: `state_dir/journal/<id>.old` (the file's previous bytes)
/// and `<id>.json` (which file, and the keys already applied live). The metadata is written
/// last, so a journal exists only once everything needed to roll back is on disk.
struct Journal: Sendable {
    struct Entry: Sendable {
        let path: String
        let file: OScamFile
        let instance: String?
        let old: [UInt8]
        let live: [ConfChange]
    }

    let directory: String
    let commandID: String

    init(stateDir: String, commandID: String) {
        directory = stateDir + "/journal"
        self.commandID = commandID
    }

    var metadataPath: String {
        directory + "/" + commandID + ".json"
    }

    private var oldPath: String {
        directory + "/" + commandID + ".old"
    }

    static func all(stateDir: String) -> [Journal] {
        let directory = stateDir + "/journal"
        return (Files.list(directory) ?? []).filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }
            .filter(PanelCommand.isValidID).sorted().map { Journal(stateDir: stateDir, commandID: $0) }
    }

    func begin(path: String, file: OScamFile, instance: String, old: [UInt8]) throws(AtomicFile.Error) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw AtomicFile.Error(path: directory, operation: "create", errno: errno)
        }
        try AtomicFile.write(old, to: oldPath)
        try write(path: path, file: file, instance: instance, oldSHA: Crypto.sha256Hex(old), live: [])
    }

    /// Records the keys about to be sent to OScam live, so a rollback can send the old values.
    func markLive(_ changes: [ConfChange]) {
        guard let entry = load() else {
            return
        }
        try? write(path: entry.path, file: entry.file, instance: entry.instance ?? "", oldSHA: Crypto.sha256Hex(entry.old),
                   live: changes)
    }

    private func write(path: String, file: OScamFile, instance: String, oldSHA: String,
                       live: [ConfChange]) throws(AtomicFile.Error) {
        let json: JSONValue = .members([
            ("path", .string(path)), ("file", .string(file.rawValue)), ("instance", .string(instance)),
            ("old_sha256", .string(oldSHA)), ("live", .array(live.map(\.json))),
        ])
        try AtomicFile.write(json.encoded(), to: metadataPath)
    }

    func load() -> Entry? {
        guard let bytes = Files.read(metadataPath, limit: 1 << 20), case .object(let fields)? = try? StrictJSON.parse(bytes),
              case .string(let path)? = fields["path"], case .string(let fileName)? = fields["file"],
              let file = OScamFile(rawValue: fileName), case .string(let sha)? = fields["old_sha256"],
              let old = Files.read(oldPath, limit: ConfigApplier.maxFileBytes), Crypto.sha256Hex(old) == sha else {
            return nil
        }
        var live: [ConfChange] = []
        if case .array(let items)? = fields["live"] {
            for case .object(let item) in items {
                if case .string(let section)? = item["section"], case .string(let key)? = item["key"] {
                    live.append(ConfChange(section: section, key: key, value: nil))
                }
            }
        }
        var instance: String?
        if case .string(let name)? = fields["instance"], !name.isEmpty {
            instance = name
        }
        return Entry(path: path, file: file, instance: instance, old: old, live: live)
    }

    func discard() {
        unlink(metadataPath)
        unlink(oldPath)
    }
}
