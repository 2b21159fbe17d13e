#if canImport(Glibc)
import Glibc
#endif
import OScam
import Pipeline
import Platform
import Sinks

/// `apply_config` (PANEL-API.md): edit oscam.user or oscam.conf through the lossless document
/// model, write it into the same inode under a journal, and make OScam load it live.
///
/// The write: the old and new content go to `state_dir/journal/` first, then the file is
/// rewritten in place (its owner, group, mode and ACL never change, which a rename by the
/// unprivileged agent could not keep). A crash at any instant leaves a journal; the next start
/// puts the old content back and reports the command `failed` (`ConfigApplier.recover`). A
/// backup of the previous file goes to `<config dir>/myosicam-backup/` (the installer creates it
/// for the agent), else to `state_dir/backup/<instance>/`; the newest 10 per file are kept.
struct ConfigApplier: Sendable {
    let stateDir: String
    let http: any HTTPTransport
    let logger: Logger
    var webifTimeout: Double = 10

    static let maxFileBytes = 16 << 20
    static let backupsKept = 10

    struct Outcome: Sendable {
        var result: CommandResult
        /// The file on disk changed: a snapshot should follow at once.
        var changed: Bool
    }

    // MARK: - Apply

    func apply(_ command: PanelCommand, file: OScamFile, base: String?, edits: [ConfigEdit],
               instance: DiscoveredInstance, startedAt: Int64) -> Outcome {
        var result = CommandResult(status: .failed, startedAt: startedAt, finishedAt: startedAt, message: "")
        func finish(_ status: CommandResult.Status, _ message: String, changed: Bool = false) -> Outcome {
            result.status = status
            result.message = message
            result.finishedAt = unixNow()
            return Outcome(result: result, changed: changed)
        }
        let path = DiscoveryPath.join(instance.configDir, file.rawValue)
        guard let old = Files.read(path, limit: Self.maxFileBytes) else {
            return finish(.failed, "\(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        let oldSHA = Crypto.sha256Hex(old)
        result.details["sha256_before"] = .string(oldSHA)
        if let base, base != oldSHA {
            result.details["sha256_after"] = .string(oldSHA)
            return finish(.conflict, "\(file.rawValue) changed since the panel read it (base_sha256 differs); nothing written")
        }
        let oldDocument = ConfigDocument(bytes: old, file: file, path: file.rawValue)
        var document = oldDocument
        let changedNames: [String]
        do {
            changedNames = try document.apply(edits)
        } catch {
            return finish(.rejected, error.description)
        }
        let new = document.serialized()
        guard !changedNames.isEmpty, new != old else {
            result.details.merge(["sha256_after": .string(oldSHA), "reload": .string("none"),
                                  "restart_required": .bool(false), "applied_keys": .array([])]) { $1 }
            return finish(.succeeded, "\(file.rawValue) already had these settings; nothing written")
        }
        let conf = file == .conf ? oldDocument : Self.readConf(instance)
        let plan: ReloadPlan
        switch ReloadPlan.make(instance: instance, conf: conf, http: http, timeout: webifTimeout) {
        case .success(let made): plan = made
        case .failure(let failure):
            result.details["sha256_after"] = .string(oldSHA)
            return finish(.failed, "OScam could not be asked to reload, so nothing was written: \(failure.description)")
        }
        backup(old, file: file, instance: instance, commandID: command.id)
        let journal = Journal(stateDir: stateDir, commandID: command.id)
        do {
            try journal.begin(path: path, file: file, instance: instance.id, old: old)
        } catch {
            return finish(.failed, "the journal could not be written, so nothing was written: \(error.description)")
        }
        PausePoint.reach("apply:journaled")
        do {
            try InPlaceFile.replaceContents(of: path, with: new)
        } catch {
            if !InPlaceFile.leftUntouched(error) {
                restore(old, path: path)
            }
            journal.discard()
            return finish(.failed, "\(file.rawValue) could not be written (\(error.description)); the previous content is kept")
        }
        PausePoint.reach("apply:written")
        var final = new
        switch plan {
        case .none(let restartRequired, let why):
            result.details["reload"] = .string("none")
            result.details["restart_required"] = .bool(restartRequired)
            result.details["applied_keys"] = .array([])
            result.details["sha256_after"] = .string(Crypto.sha256Hex(final))
            return finish(.succeeded, "\(file.rawValue) written; not reloaded: \(why)", changed: true)
        case .live(let webif):
            let reloaded: Result<LiveOutcome, WebIfActions.Failure>
            if file == .user {
                reloaded = reloadUsers(webif, document: document)
            } else {
                reloaded = reloadConf(webif, old: oldDocument, new: document, edits: edits, path: path, journal: journal)
            }
            switch reloaded {
            case .success(let live):
                final = live.finalBytes ?? new
                result.details["reload"] = .string(live.pendingKeys.isEmpty ? "live" : "restart_required")
                result.details["restart_required"] = .bool(!live.pendingKeys.isEmpty)
                result.details["applied_keys"] = .strings(live.appliedKeys)
                if !live.pendingKeys.isEmpty {
                    result.details["pending_keys"] = .strings(live.pendingKeys)
                }
            case .failure(let failure):
                restore(old, path: path)
                if file == .user {
                    // OScam may hold the new accounts already; make it load the restored file.
                    _ = try? webif.reloadUsers()
                }
                journal.discard()
                result.details["sha256_after"] = .string(oldSHA)
                return finish(.failed, "the reload failed (\(failure.description)); the previous \(file.rawValue) was restored",
                              changed: true)
            }
        }
        PausePoint.reach("apply:reloaded")
        result.details["sha256_after"] = .string(Crypto.sha256Hex(final))
        let restartRequired = result.details["restart_required"] == .bool(true)
        return finish(.succeeded, restartRequired ? "\(file.rawValue) written; some keys take effect after a restart of OScam"
                          : "\(file.rawValue) written and loaded by OScam", changed: true)
    }

    /// Removes the journal once the command's result is durably recorded.
    func complete(_ commandID: String) {
        Journal(stateDir: stateDir, commandID: commandID).discard()
    }

    struct LiveOutcome {
        var appliedKeys: [String]
        var pendingKeys: [String]
        /// What the file finally holds when it had to be written again after OScam's rewrite.
        var finalBytes: [UInt8]?
    }

    private func reloadUsers(_ webif: WebIfActions, document: ConfigDocument) -> Result<LiveOutcome, WebIfActions.Failure> {
        let loaded: Set<String>
        do {
            loaded = try webif.reloadUsers()
        } catch {
            return .failure(error)
        }
        let expected = Set((document.accounts().value).map { WebIfActions.userID($0.user) })
        guard loaded == expected else {
            return .failure(.unexpected("OScam now has \(loaded.count) accounts; the file has \(expected.count)"))
        }
        let names = document.accounts().value.map { "account:" + $0.user }
        return .success(LiveOutcome(appliedKeys: Array(Set(names)).sorted(), pendingKeys: []))
    }

    /// Sends the changed keys OScam can take live through config.html, one call per page; then
    /// writes the agent's edited file again over OScam's rewrite, keeping keys that only the
    /// rewrite has (OScam adds some, such as `[cccam] nodeid`).
    private func reloadConf(_ webif: WebIfActions, old: ConfigDocument, new: ConfigDocument, edits: [ConfigEdit],
                            path: String, journal: Journal) -> Result<LiveOutcome, WebIfActions.Failure> {
        let changes = ConfChange.between(old, new)
        var outcome = LiveOutcome(appliedKeys: [], pendingKeys: [])
        var byPage: [(page: String, pairs: [(String, String)], names: [String])] = []
        for change in changes {
            guard let page = ConfLiveness.page(for: change.section), !ConfLiveness.needsRestart(change.section, change.key) else {
                outcome.pendingKeys.append(change.name)
                continue
            }
            if let index = byPage.firstIndex(where: { $0.page == page }) {
                byPage[index].pairs.append((change.key, change.value ?? ""))
                byPage[index].names.append(change.name)
            } else {
                byPage.append((page, [(change.key, change.value ?? "")], [change.name]))
            }
        }
        // The WebIF's own credentials last: the calls before them still authenticate.
        byPage.sort { ($0.page == "webif" ? 1 : 0) < ($1.page == "webif" ? 1 : 0) }
        guard !byPage.isEmpty else {
            return .success(outcome)
        }
        journal.markLive(changes.filter { change in outcome.pendingKeys.contains(change.name) == false })
        var applied: [ConfChange] = []
        for group in byPage {
            do {
                try webif.saveConfig(page: group.page, group.pairs)
            } catch {
                undoLive(webif, changes: applied, old: old)
                return .failure(error)
            }
            applied += changes.filter { group.names.contains($0.name) }
            outcome.appliedKeys += group.names
        }
        PausePoint.reach("apply:live-applied")
        // OScam has rewritten the file from memory. Keep what only its rewrite has, unless this
        // command removed it.
        var merged = new
        let unsetNames = Set(edits.compactMap { edit -> String? in
            if case .unset(let section, let key) = edit {
                return section.lowercased() + "." + key.lowercased()
            }
            return nil
        })
        if let rewritten = Files.read(path, limit: Self.maxFileBytes) {
            let theirs = ConfigDocument(bytes: rewritten, file: .conf, path: OScamFile.conf.rawValue)
            var additions: [ConfigEdit] = []
            for section in theirs.sections() {
                for setting in section.settings where new.value(setting.key, inSection: section.name) == nil
                    && !unsetNames.contains(section.name.lowercased() + "." + setting.key.lowercased()) {
                    additions.append(.set(section: section.name, key: setting.key, value: setting.value))
                }
            }
            for addition in additions {
                // One at a time: a value the model refuses is left out, not the whole merge.
                _ = try? merged.apply([addition])
            }
        }
        let bytes = merged.serialized()
        do {
            try InPlaceFile.replaceContents(of: path, with: bytes)
        } catch {
            undoLive(webif, changes: applied, old: old)
            return .failure(.unexpected("the edited oscam.conf could not be written again over OScam's rewrite: \(error.description)"))
        }
        outcome.finalBytes = bytes
        return .success(outcome)
    }

    /// Puts the old values of keys already applied live back into OScam's memory.
    private func undoLive(_ webif: WebIfActions, changes: [ConfChange], old: ConfigDocument) {
        Self.undo(webif, changes: changes, old: old)
    }

    static func undo(_ webif: WebIfActions, changes: [ConfChange], old: ConfigDocument) {
        var byPage: [String: [(String, String)]] = [:]
        for change in changes {
            guard let page = ConfLiveness.page(for: change.section) else {
                continue
            }
            byPage[page, default: []].append((change.key, old.value(change.key, inSection: change.section) ?? ""))
        }
        for page in byPage.keys.sorted() {
            if let pairs = byPage[page] {
                try? webif.saveConfig(page: page, pairs)
            }
        }
    }

    private func restore(_ old: [UInt8], path: String) {
        do {
            try InPlaceFile.replaceContents(of: path, with: old)
        } catch {
            // The journal still holds the old content; the next start tries again.
            logger.error("could not restore the previous content", [("path", path), ("error", error.description)])
        }
    }

    // MARK: - Backups

    private func backup(_ bytes: [UInt8], file: OScamFile, instance: DiscoveredInstance, commandID: String) {
        let beside = DiscoveryPath.join(instance.configDir, "myosicam-backup")
        let fallback = stateDir + "/backup/" + instance.id
        let name = "\(file.rawValue).\(unixNow()).\(commandID)"
        for directory in [beside, fallback] {
            if directory == fallback {
                _ = mkdir(stateDir + "/backup", 0o700)
                _ = mkdir(fallback, 0o700)
            }
            guard access(directory, W_OK) == 0 else {
                continue
            }
            do {
                try AtomicFile.write(bytes, to: directory + "/" + name)
                prune(directory, prefix: file.rawValue + ".")
                return
            } catch {
                logger.warning("backup not written", [("path", directory + "/" + name), ("error", error.description)])
            }
        }
    }

    /// Keeps the newest `backupsKept` (names sort by time: the unix time has 10 digits until 2286).
    private func prune(_ directory: String, prefix: String) {
        let names = (Files.list(directory) ?? []).filter { $0.hasPrefix(prefix) && !$0.hasPrefix(".") }.sorted()
        for name in names.dropLast(Self.backupsKept) {
            unlink(directory + "/" + name)
        }
    }

    static func readConf(_ instance: DiscoveredInstance) -> ConfigDocument? {
        let path = DiscoveryPath.join(instance.configDir, OScamFile.conf.rawValue)
        return Files.read(path, limit: maxFileBytes).map { ConfigDocument(bytes: $0, file: .conf, path: OScamFile.conf.rawValue) }
    }

    // MARK: - Recovery

    /// At start: every journal left by a crash is rolled back, and its command gets a `failed`
    /// result (unless its result was recorded already, when the journal is just stale).
    func recover(store: CommandStore) {
        for journal in Journal.all(stateDir: stateDir) {
            guard let entry = journal.load() else {
                logger.error("an apply journal cannot be read; left in place for the operator",
                             [("path", journal.metadataPath)])
                continue
            }
            if let record = store.load(journal.commandID), record.phase == .done {
                journal.discard()
                continue
            }
            var restored = true
            if let current = Files.read(entry.path, limit: Self.maxFileBytes), current != entry.old {
                do {
                    try InPlaceFile.replaceContents(of: entry.path, with: entry.old)
                } catch {
                    restored = false
                    logger.error("could not roll back an interrupted edit; will retry at the next start",
                                 [("path", entry.path), ("error", error.description)])
                }
            }
            guard restored else {
                continue
            }
            if let conf = Self.readConfBeside(entry.path) {
                let settings = conf.webif().value
                if settings.enabled && !settings.readonly {
                    // Best effort: OScam may already hold what was rolled back.
                    let actions = WebIfActions(settings: settings, http: http, timeout: webifTimeout)
                    if entry.file == .user {
                        _ = try? actions.reloadUsers()
                    } else if !entry.live.isEmpty {
                        Self.undo(actions, changes: entry.live,
                                  old: ConfigDocument(bytes: entry.old, file: .conf, path: OScamFile.conf.rawValue))
                        // OScam's rewrite replaced the file again: put the old content back once more.
                        try? InPlaceFile.replaceContents(of: entry.path, with: entry.old)
                    }
                }
            }
            var record = store.load(journal.commandID)
                ?? CommandRecord(id: journal.commandID, type: "apply_config", instance: entry.instance, expiresAt: unixNow(),
                                 phase: .running, startedAt: unixNow())
            let sha = Crypto.sha256Hex(entry.old)
            record.phase = .done
            record.result = CommandResult(
                status: .failed, startedAt: record.startedAt, finishedAt: unixNow(),
                message: "the agent stopped while applying this change; the previous \(entry.file.rawValue) was restored",
                details: ["sha256_before": .string(sha), "sha256_after": .string(sha), "reload": .string("none"),
                          "restart_required": .bool(false), "applied_keys": .array([])])
            record.reported = false
            do {
                try store.save(record)
                journal.discard()
                logger.warning("rolled back an edit interrupted by a stop", [("command", journal.commandID), ("path", entry.path)])
            } catch {
                logger.error("could not record the rolled-back command", [("command", journal.commandID),
                                                                          ("error", error.description)])
            }
        }
    }

    private static func readConfBeside(_ path: String) -> ConfigDocument? {
        let conf = DiscoveryPath.join(Files.parent(of: path), OScamFile.conf.rawValue)
        return Files.read(conf, limit: maxFileBytes).map { ConfigDocument(bytes: $0, file: .conf, path: OScamFile.conf.rawValue) }
    }
}

/// How OScam will be made to load a written file, decided before anything is written.
enum ReloadPlan {
    case live(WebIfActions)
    /// Written only; `restartRequired` says whether OScam needs a restart to see it.
    case none(restartRequired: Bool, why: String)

    static func make(instance: DiscoveredInstance, conf: ConfigDocument?, http: any HTTPTransport,
                     timeout: Double) -> Result<ReloadPlan, WebIfActions.Failure> {
        guard instance.state == .running else {
            return .success(.none(restartRequired: false, why: "OScam is not running; it reads the file when it starts"))
        }
        let settings = conf?.webif().value ?? .defaultsWithoutConf
        guard settings.enabled else {
            return .success(.none(restartRequired: true, why: "this instance has no WebIF; restart OScam to load it"))
        }
        guard !settings.readonly else {
            return .success(.none(restartRequired: true, why: "the WebIF is read-only (httpreadonly); restart OScam to load it"))
        }
        let webif = WebIfActions(settings: settings, http: http, timeout: timeout)
        do {
            let status = try webif.status()
            if status.readonly {
                return .success(.none(restartRequired: true, why: "the WebIF is read-only; restart OScam to load it"))
            }
        } catch {
            return .failure(error)
        }
        return .success(.live(webif))
    }
}

/// One oscam.conf key whose effective value differs between two documents.
struct ConfChange: Sendable, Equatable {
    let section: String
    let key: String
    /// nil: removed.
    let value: String?

    var name: String {
        section + "." + key
    }

    var json: JSONValue {
        .members([("section", .string(section)), ("key", .string(key))])
    }

    static func between(_ old: ConfigDocument, _ new: ConfigDocument) -> [ConfChange] {
        var names: [(String, String)] = []
        var seen: Set<String> = []
        for document in [new, old] {
            for section in document.sections() {
                for setting in section.settings where seen.insert(section.name + "." + setting.key).inserted {
                    names.append((section.name, setting.key))
                }
            }
        }
        return names.compactMap { section, key in
            let before = old.value(key, inSection: section)
            let after = new.value(key, inSection: section)
            return before == after ? nil : ConfChange(section: section, key: key, value: after)
        }
    }
}

/// Which oscam.conf keys OScam applies live through config.html (OSCAM.md §7.4), and the page
/// each section is saved through.
enum ConfLiveness {
    static let pages: [String: String] = [
        "global": "global", "anticasc": "anticasc", "cache": "cache", "lcd": "lcd", "camd33": "camd33",
        "cs357x": "camd35", "cs378x": "camd35tcp", "newcamd": "newcamd", "radegast": "radegast", "serial": "serial",
        "gbox": "gbox", "cccam": "cccam", "scam": "scam", "streamrelay": "streamrelay", "dvbapi": "dvbapi",
        "monitor": "monitor", "webif": "webif",
    ]

    /// Sections whose settings are read when their module starts: a change needs a restart.
    static let startupSections: Set<String> = ["camd33", "cs357x", "cs378x", "newcamd", "radegast", "serial", "gbox",
                                               "cccam", "scam", "streamrelay", "dvbapi", "lcd", "pandora"]
    /// Keys read once at start-up in sections that are otherwise live.
    static let startupKeys: Set<String> = [
        "serverip", "port", "httpport", "httpcert", "https_auto_create_cert", "https_force_secure_mode", "pidfile",
        "nice", "netprio", "bindwait", "usrfile", "disableuserfile", "mailfile", "disablemail", "cwlogdir",
        "emmlogdir", "logfile", "csp_port", "csp_serverip", "enableled",
    ]

    static func page(for section: String) -> String? {
        pages[section.lowercased()]
    }

    static func needsRestart(_ section: String, _ key: String) -> Bool {
        startupSections.contains(section.lowercased()) || startupKeys.contains(key.lowercased())
    }
}
