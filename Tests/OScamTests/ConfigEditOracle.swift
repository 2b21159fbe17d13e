@testable import OScam

/// What must hold for any file and any edit list through parse → edit → write → parse, as a list
/// of what broke. Shared by `ConfigFuzzTests` (seeded generated files) and the libFuzzer harness
/// in `reliability/fuzz/`, which compiles this file too; so it imports no test framework.
enum ConfigEditOracle {
    struct Outcome {
        /// What broke, one line each; empty when every invariant held.
        var violations: [String] = []
        /// Whether `apply` took the edits.
        var applied = false
    }

    /// Checks `edits` on `bytes` read as `file`. `refusals` are the error codes `apply` may throw
    /// for this edit list (the validation codes only where it may hold invalid names or values).
    static func check(_ bytes: [UInt8], file: OScamFile, edits: [ConfigEdit],
                      refusals: Set<ConfigEditError.Code>) -> Outcome {
        var found: [String] = []
        func expect(_ holds: Bool, _ message: @autoclosure () -> String) {
            if !holds {
                found.append(message())
            }
        }
        let original = ConfigDocument(bytes: bytes, file: file, path: file.rawValue)
        expect(original.serialized() == bytes, "round trip must be exact")
        for problem in original.allProblems() {
            expect(isOneLine(problem.message), "a problem message must be one printable line: \(String(reflecting: problem.message))")
        }
        var edited = original
        do {
            try edited.apply(edits)
        } catch {
            expect(edited == original, "a refused edit must change nothing")
            expect(refusals.contains(error.code) || (file == .server && error.code == .wrongFile),
                   "unexpected refusal: \(error)")
            expect(isOneLine(error.message), "a refusal must be one printable line: \(String(reflecting: error.message))")
            return Outcome(violations: found)
        }
        expect(file != .server || edits.isEmpty, "edits to oscam.server must be refused")
        let output = edited.serialized()
        let reparsed = ConfigDocument(bytes: output, file: file, path: file.rawValue)
        expect(reparsed.serialized() == output, "the edited file must round-trip")
        found += lastWords(edits, in: reparsed)
        if !edits.contains(where: { if case .deleteAccount = $0 { true } else { false } }) {
            expect(isSubsequence(comments(original), of: comments(reparsed)), "comments must survive in order")
        }
        if !reordersOnRepeat(edits) {
            var again = reparsed
            expect((try? again.apply(edits)) == [], "the same edits again must change nothing")
        }
        return Outcome(violations: found, applied: true)
    }

    /// What the file must say after `edits`: per user or section, the last word on each key.
    static func lastWords(_ edits: [ConfigEdit], in document: ConfigDocument) -> [String] {
        var found: [String] = []
        var expectedUsers: [String: [String: String?]] = [:]
        var deleted: Set<String> = []
        var expectedConf: [String: (section: String, key: String, value: String?)] = [:]
        for edit in edits {
            switch edit {
            case .upsertAccount(let user, let set, let unset):
                deleted.remove(user)
                for pair in set { expectedUsers[user, default: [:]][pair.key] = .some(pair.value) }
                for key in unset { expectedUsers[user, default: [:]][key] = .some(nil) }
            case .deleteAccount(let user):
                deleted.insert(user)
                expectedUsers[user] = nil
            case .set(let section, let key, let value):
                expectedConf["\(section).\(key)"] = (section, key, value)
            case .unset(let section, let key):
                expectedConf["\(section).\(key)"] = (section, key, nil)
            }
        }
        let records = document.records()
        for user in deleted where records.contains(where: { $0.value("user") == user }) {
            found.append("deleted account still present")
        }
        for (user, expected) in expectedUsers {
            guard let record = records.first(where: { $0.value("user") == user }) else {
                found.append("upserted account missing")
                continue
            }
            for (key, value) in expected where record.value(key) != value {
                found.append("account key \(key) not as edited")
            }
        }
        for (qualified, expected) in expectedConf
        where document.value(expected.key, inSection: expected.section) != expected.value {
            found.append("\(qualified) not as edited")
        }
        return found
    }

    /// Removing and re-adding the same account or key in one list moves it each time the list
    /// runs (and adding then removing may leave the newline an addition needed), so such a list
    /// is not expected to be idempotent.
    static func reordersOnRepeat(_ edits: [ConfigEdit]) -> Bool {
        var touched: Set<String> = []
        var removed: Set<String> = []
        for edit in edits {
            var names: [String] = []
            var removes = false
            switch edit {
            case .deleteAccount(let user): names = ["user:" + user]; removes = true
            case .unset(let section, let key): names = [section + "." + key]; removes = true
            case .set(let section, let key, _): names = [section + "." + key]
            case .upsertAccount(let user, let set, let unset):
                names = ["user:" + user] + set.map { user + "." + $0.key }
                if names.contains(where: removed.contains) { return true }
                for key in unset {
                    if touched.contains(user + "." + key) { return true }
                    removed.insert(user + "." + key)
                    touched.insert(user + "." + key)
                }
            }
            if names.contains(where: removed.contains) || (removes && names.contains(where: touched.contains)) {
                return true
            }
            for name in names {
                touched.insert(name)
                if removes { removed.insert(name) }
            }
        }
        return false
    }

    static func comments(_ document: ConfigDocument) -> [[UInt8]] {
        // A CRLF file's unterminated last line gets its CR LF when a line is added after it.
        document.blocks.flatMap { $0.lines.filter { $0.kind == .comment }.map { $0.bytes.last == 13 ? Array($0.bytes.dropLast()) : Array($0.bytes) } }
    }

    static func isSubsequence(_ small: [[UInt8]], of large: [[UInt8]]) -> Bool {
        var iterator = large.makeIterator()
        return small.allSatisfy { item in
            while let next = iterator.next() {
                if next == item { return true }
            }
            return false
        }
    }

    /// Messages reach logs and the panel: a file or an edit must not be able to forge a line.
    static func isOneLine(_ message: String) -> Bool {
        !message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}
