/// A key and the value to give it.
public struct KeyValue: Sendable, Equatable, Hashable {
    public let key: String
    public let value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// One change to an OScam file, as the panel's `apply_config` command describes it
/// (PANEL-API.md "apply_config").
public enum ConfigEdit: Sendable, Equatable {
    /// oscam.user: create the account or change it; `unset` keys are removed.
    case upsertAccount(user: String, set: [KeyValue], unset: [String])
    /// oscam.user: remove every account with this user name.
    case deleteAccount(user: String)
    /// oscam.conf: give `key` in `section` this value, adding the key or section when missing.
    case set(section: String, key: String, value: String)
    /// oscam.conf: remove `key` from `section` (every occurrence, so no older duplicate wins).
    case unset(section: String, key: String)
}

extension ConfigDocument {
    /// The most edits one call accepts (PANEL-API.md).
    public static let maxEdits = 1000
    /// Longest value accepted: well inside OScam's 16383-byte line buffer.
    public static let maxValueBytes = 8192

    /// Checks every edit, then applies all of them or none.
    ///
    /// Validation happens before anything changes: key and section names, user names and values
    /// that could inject a line or a section are refused, and so is any edit to a file whose
    /// content OScam reads differently from how it is written (a line longer than its buffer).
    /// After the edits the document must not have gained an error-level problem.
    ///
    /// - Returns: the `section.key` or `account:user` names that changed, in edit order; empty
    ///   when the edits left the file byte-identical.
    @discardableResult
    public mutating func apply(_ edits: [ConfigEdit]) throws(ConfigEditError) -> [String] {
        guard edits.count <= Self.maxEdits else {
            throw ConfigEditError(code: .tooManyEdits, path: path,
                                  message: "\(edits.count) edits in one command; at most \(Self.maxEdits) are accepted")
        }
        for (index, edit) in edits.enumerated() {
            try validate(edit, index: index)
        }
        guard !hasOverlongLine else {
            throw ConfigEditError(code: .unsafeFile, path: path,
                                  message: "file has a line longer than \(LineSyntax.maxChunk) bytes; fix it by hand first")
        }
        let before = serialized()
        let errorsBefore = Set(problems.filter { $0.severity == .error }.map(\.message))
        var copy = self
        var index = copy.accountIndex()
        var changed: [String] = []
        for edit in edits {
            if let name = copy.perform(edit, index: &index) {
                changed.append(name)
            }
        }
        copy.blocks.removeAll { $0.removed }
        let newErrors = copy.problems.filter { $0.severity == .error && !errorsBefore.contains($0.message) }
        if let first = newErrors.first {
            throw ConfigEditError(code: .wouldNotParse, path: path,
                                  message: "the edited file would not parse cleanly (line \(first.line): \(first.message))")
        }
        if copy.serialized() == before {
            return []
        }
        self = copy
        return changed
    }

    // MARK: - Validation

    private func validate(_ edit: ConfigEdit, index: Int) throws(ConfigEditError) {
        if let (code, message) = problem(with: edit) {
            throw ConfigEditError(code: code, path: path, editIndex: index, message: message)
        }
    }

    private func problem(with edit: ConfigEdit) -> (ConfigEditError.Code, String)? {
        switch edit {
        case .upsertAccount(let user, let set, let unset):
            guard file == .user else {
                return (.wrongFile, "account edits apply to oscam.user only")
            }
            if let problem = Self.checkUser(user) {
                return (.invalidUser, problem)
            }
            for pair in set {
                if let problem = Self.checkName(pair.key, what: "key") {
                    return (.invalidKey, problem)
                }
                if pair.key == "user" {
                    return (.invalidKey, "the user name cannot be set; delete the account and create a new one")
                }
                if let problem = Self.checkValue(pair.value) {
                    return (.invalidValue, "value of '\(pair.key)' \(problem)")
                }
            }
            for key in unset {
                if let problem = Self.checkName(key, what: "key") {
                    return (.invalidKey, problem)
                }
                if key == "user" {
                    return (.invalidKey, "the user name cannot be unset; delete the account instead")
                }
            }
            return nil
        case .deleteAccount(let user):
            guard file == .user else {
                return (.wrongFile, "account edits apply to oscam.user only")
            }
            return Self.checkUser(user).map { (.invalidUser, $0) }
        case .set(let section, let key, let value):
            if let problem = checkConfTarget(section: section, key: key) {
                return problem
            }
            return Self.checkValue(value).map { (.invalidValue, "value of '\(key)' \($0)") }
        case .unset(let section, let key):
            return checkConfTarget(section: section, key: key)
        }
    }

    private func checkConfTarget(section: String, key: String) -> (ConfigEditError.Code, String)? {
        guard file == .conf else {
            return (.wrongFile, "set and unset apply to oscam.conf only")
        }
        if let problem = Self.checkName(section, what: "section") {
            return (.invalidSection, problem)
        }
        guard oscamConfSections.contains(section) else {
            return (.invalidSection, "[\(section)] is not a section OScam reads from oscam.conf")
        }
        if let problem = Self.checkName(key, what: "key") {
            return (.invalidKey, problem)
        }
        return nil
    }

    /// Section and key names: `[a-z0-9_]+` (PANEL-API.md), which also rules out `=`, `[` and
    /// every byte that could start a new line.
    static func checkName(_ name: String, what: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            return "\(what) name must be 1 to 64 characters"
        }
        let allowed = name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
        return allowed ? nil : "\(what) name '\(printable(name))' may only hold a-z, 0-9 and _"
    }

    /// User names: 1–63 bytes (OScam's `char[64]`), no control bytes, none of `[ ] = , #`, no
    /// surrounding spaces (OScam would trim them, so the name would not round-trip).
    static func checkUser(_ user: String) -> String? {
        let bytes = Array(user.utf8)
        guard !bytes.isEmpty, bytes.count <= 63 else {
            return "user name must be 1 to 63 bytes"
        }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return "user name contains a control character"
        }
        if bytes.contains(where: { "[]=,#".utf8.contains($0) }) {
            return "user name contains one of [ ] = , #"
        }
        if bytes.first == LineSyntax.space || bytes.last == LineSyntax.space {
            return "user name starts or ends with a space"
        }
        return nil
    }

    /// Values: no control bytes (TAB included: OScam would keep a leading one and trim a trailing
    /// one; a newline would inject a line), no surrounding spaces (trimmed by OScam), bounded.
    static func checkValue(_ value: String) -> String? {
        let bytes = Array(value.utf8)
        if bytes.count > maxValueBytes {
            return "is longer than \(maxValueBytes) bytes"
        }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return "contains a control character"
        }
        if bytes.first == LineSyntax.space || bytes.last == LineSyntax.space {
            return "starts or ends with a space"
        }
        return nil
    }

    // MARK: - Applying

    /// User name → indices of the `[account]` blocks that carry it, in file order.
    private func accountIndex() -> [String: [Int]] {
        guard file == .user else {
            return [:]
        }
        var index: [String: [Int]] = [:]
        for (position, block) in blocks.enumerated() where isRecord(block) {
            if let user = effectiveValue("user", in: block) {
                index[user, default: []].append(position)
            }
        }
        return index
    }

    private func isRecord(_ block: Block) -> Bool {
        guard let header = block.header, !block.removed else {
            return false
        }
        return normalized(header) == file.recordSection
    }

    private func effectiveValue(_ key: String, in block: Block) -> String? {
        var found: String?
        for line in block.lines {
            for case .setting(let name, let value) in line.kinds where name == key {
                found = value
            }
        }
        return found
    }

    private mutating func perform(_ edit: ConfigEdit, index: inout [String: [Int]]) -> String? {
        switch edit {
        case .upsertAccount(let user, let set, let unset):
            if let target = index[user]?.first {
                var changed = false
                for pair in set {
                    changed = setKey(pair.key, to: pair.value, inBlocks: [target]) || changed
                }
                for key in unset {
                    changed = removeKey(key, inBlocks: [target]) || changed
                }
                return changed ? "account:\(user)" : nil
            }
            // As for an existing account, `set` goes first and `unset` after it, so a key named
            // in both ends up absent whether or not the account was there before.
            let position = appendBlock(header: file.recordSection ?? "account",
                                       settings: [KeyValue("user", user)] + set.filter { !unset.contains($0.key) })
            index[user] = [position]
            return "account:\(user)"
        case .deleteAccount(let user):
            guard let positions = index[user] else {
                return nil
            }
            for position in positions.reversed() {
                removeRecord(at: position)
            }
            index[user] = nil
            return "account:\(user)"
        case .set(let section, let key, let value):
            let targets = confBlocks(section)
            if targets.isEmpty {
                appendBlock(header: section, settings: [KeyValue(key, value)])
                return "\(section).\(key)"
            }
            return setKey(key, to: value, inBlocks: targets) ? "\(section).\(key)" : nil
        case .unset(let section, let key):
            return removeKey(key, inBlocks: confBlocks(section)) ? "\(section).\(key)" : nil
        }
    }

    /// Blocks that make up oscam.conf section `name`, in file order; for `global` that includes
    /// the lines before the first header when they hold settings.
    private func confBlocks(_ name: String) -> [Int] {
        blocks.indices.filter { position in
            let block = blocks[position]
            guard !block.removed else {
                return false
            }
            if let header = block.header {
                return header == name
            }
            return name == "global" && block.lines.contains { $0.isSetting }
        }
    }

    /// Sets `key` in the last of `targets` that has it (the occurrence OScam keeps), or adds it
    /// after the last setting of the last target. Returns whether a byte changed.
    private mutating func setKey(_ key: String, to value: String, inBlocks targets: [Int]) -> Bool {
        for position in targets.reversed() {
            if let row = blocks[position].lines.lastIndex(where: { $0.settingKey == key }) {
                let old = blocks[position].lines[row]
                let updated = Line(bytes: Self.replacingValue(in: Array(old.bytes), with: value), hasNewline: old.hasNewline)
                blocks[position].lines[row] = updated
                return updated != old
            }
        }
        guard let position = targets.last else {
            return false
        }
        let style = LineStyle(block: blocks[position], fallback: allSettingLines(), crlf: usesCRLF)
        var block = blocks[position]
        let row = (block.lines.lastIndex { $0.isSetting } ?? 0) + 1
        if row == block.lines.count, let last = block.lines.last, !last.hasNewline {
            block.lines[row - 1] = terminated(last)
            block.lines.insert(Line(bytes: style.line(key: key, value: value), hasNewline: false), at: row)
        } else {
            block.lines.insert(Line(bytes: style.line(key: key, value: value), hasNewline: true), at: row)
        }
        blocks[position] = block
        return true
    }

    private mutating func removeKey(_ key: String, inBlocks targets: [Int]) -> Bool {
        var changed = false
        for position in targets {
            let before = blocks[position].lines.count
            blocks[position].lines.removeAll { $0.settingKey == key }
            changed = changed || blocks[position].lines.count != before
        }
        return changed
    }

    /// Adds a new section at the end of the file, laid out like the last section of the same
    /// kind, separated by one blank line.
    @discardableResult
    private mutating func appendBlock(header: String, settings: [KeyValue]) -> Int {
        let sameKind = blocks.lastIndex { isRecord($0) || ($0.header == header && !$0.removed) }
        let template = sameKind.map { blocks[$0] }
        let style = LineStyle(block: template ?? Block(header: nil, lines: []), fallback: allSettingLines(), crlf: usesCRLF)
        let headerText = template?.header.map { normalized($0) == normalized(header) ? $0 : header } ?? header
        let lastPosition = blocks.lastIndex { !$0.lines.isEmpty }
        if let lastPosition, let lastRow = blocks[lastPosition].lines.indices.last {
            blocks[lastPosition].lines[lastRow] = terminated(blocks[lastPosition].lines[lastRow])
            if !blocks[lastPosition].lines[lastRow].isBlank {
                blocks[lastPosition].lines.append(Line(bytes: style.ending, hasNewline: true))
            }
        }
        var lines = [Line(bytes: Array("[\(headerText)]".utf8) + style.ending, hasNewline: true)]
        for pair in settings {
            lines.append(Line(bytes: style.line(key: pair.key, value: pair.value), hasNewline: true))
        }
        blocks.append(Block(header: headerText, lines: lines))
        return blocks.count - 1
    }

    /// Removes a record from its header to its last setting, with the comments between; the
    /// comments and blank lines after its last setting stay (they usually introduce the next
    /// section), minus one blank line where two would now meet. Lines before the header are
    /// never touched.
    private mutating func removeRecord(at position: Int) {
        var block = blocks[position]
        let lastSetting = block.lines.lastIndex { $0.isSetting } ?? 0
        var rest = Array(block.lines[(lastSetting + 1)...])
        let previous = blocks[..<position].lastIndex { !$0.lines.isEmpty }
        let previousEndsBlank = previous.flatMap { blocks[$0].lines.last?.isBlank } ?? true
        if previousEndsBlank, rest.first?.isBlank == true {
            rest.removeFirst()
        }
        block.lines = rest
        block.removed = rest.isEmpty
        if !rest.isEmpty {
            // What stays is no longer a section of its own: it joins the previous block.
            if let previous {
                blocks[previous].lines += rest
            } else {
                blocks[0].lines += rest
            }
            block.lines = []
            block.removed = true
        }
        blocks[position] = block
    }

    /// The file's last line, given the newline it lacked (with `\r` in a CRLF file) so that a
    /// line can follow it.
    private func terminated(_ line: Line) -> Line {
        guard !line.hasNewline else {
            return line
        }
        let bytes = usesCRLF && line.bytes.last != LineSyntax.cr ? Array(line.bytes) + [LineSyntax.cr] : Array(line.bytes)
        return Line(bytes: bytes, hasNewline: true)
    }

    /// Most terminated lines end in CR LF: new lines do too.
    private var usesCRLF: Bool {
        var crlf = 0
        var total = 0
        for block in blocks {
            for line in block.lines where line.hasNewline {
                total += 1
                crlf += line.bytes.last == LineSyntax.cr ? 1 : 0
            }
        }
        return crlf * 2 > total
    }

    private func allSettingLines() -> [Line] {
        blocks.filter { !$0.removed }.flatMap { $0.lines.filter { $0.isSetting } }
    }

    /// `key = old` → `key = new`, keeping everything up to the value and the whitespace after it.
    static func replacingValue(in bytes: [UInt8], with value: String) -> [UInt8] {
        guard let eq = bytes.firstIndex(of: LineSyntax.equals) else {
            return bytes
        }
        var valueStart = eq + 1
        while valueStart < bytes.count, bytes[valueStart] == LineSyntax.space || bytes[valueStart] == LineSyntax.tab {
            valueStart += 1
        }
        var valueEnd = bytes.count
        while valueEnd > valueStart, LineSyntax.isTrimmable(bytes[valueEnd - 1]) {
            valueEnd -= 1
        }
        var prefix = Array(bytes[...eq])
        if valueStart > eq + 1 {
            // OScam strips whitespace after `=` only when it starts with a space; a leading TAB
            // would become part of the new value, so such a run becomes one space.
            prefix += bytes[eq + 1] == LineSyntax.space ? Array(bytes[(eq + 1)..<valueStart]) : [LineSyntax.space]
        }
        return prefix + Array(value.utf8) + Array(bytes[valueEnd...])
    }
}

/// How a section lays out its `key = value` lines, so that an added line looks like its
/// neighbours: the indent, the column of `=` when the keys are padded (OScam pads to 30), the
/// spacing around `=`, and CRLF endings.
struct LineStyle {
    var indent: [UInt8] = []
    var column: Int?
    var gap: [UInt8] = [LineSyntax.space]
    var afterEquals: [UInt8] = [LineSyntax.space]
    /// `\r` for CRLF files, else empty: appended to every new line's content.
    var ending: [UInt8] = []

    init(block: ConfigDocument.Block, fallback: [ConfigDocument.Line], crlf: Bool) {
        // Only lines OScam reads as a real setting are a model: no leading TAB, a key, no `;`.
        func isModel(_ line: ConfigDocument.Line) -> Bool {
            guard let key = line.settingKey, let first = key.first else {
                return false
            }
            return line.bytes.first != LineSyntax.tab && first != "\t" && first != ";"
        }
        var samples = block.lines.filter(isModel)
        if samples.isEmpty {
            samples = fallback.filter(isModel)
        }
        ending = crlf ? [LineSyntax.cr] : []
        guard let last = samples.last.map({ Array($0.bytes) }), let eq = last.firstIndex(of: LineSyntax.equals) else {
            return
        }
        let bytes = last
        var keyStart = 0
        while keyStart < eq, bytes[keyStart] == LineSyntax.space || bytes[keyStart] == LineSyntax.tab {
            keyStart += 1
        }
        var keyEnd = eq
        while keyEnd > keyStart, bytes[keyEnd - 1] == LineSyntax.space || bytes[keyEnd - 1] == LineSyntax.tab {
            keyEnd -= 1
        }
        indent = Array(bytes[..<keyStart])
        gap = Array(bytes[keyEnd..<eq])
        var after = eq + 1
        while after < bytes.count, bytes[after] == LineSyntax.space || bytes[after] == LineSyntax.tab {
            after += 1
        }
        afterEquals = Array(bytes[(eq + 1)..<after])
        if !afterEquals.allSatisfy({ $0 == LineSyntax.space }) || (afterEquals.isEmpty && after == bytes.count) {
            // A TAB after `=` may end up in the value (OScam strips leading whitespace only when
            // it starts with a space), so new lines use one space instead.
            afterEquals = [LineSyntax.space]
        }
        // Padded keys (two or more spaces before `=`, as OScam writes them) mean the section
        // aligns its `=` signs: new keys are padded to the column the last padded line uses.
        let padded = samples.map { Array($0.bytes) }.last { line in
            guard let eq = line.firstIndex(of: LineSyntax.equals), eq >= 2 else {
                return false
            }
            return line[eq - 1] == LineSyntax.space && line[eq - 2] == LineSyntax.space
        }
        column = padded.flatMap { $0.firstIndex(of: LineSyntax.equals) }
        if column != nil {
            gap = [LineSyntax.space]
        }
    }

    func line(key: String, value: String) -> [UInt8] {
        var out = indent + Array(key.utf8)
        if let column {
            let width = out.count
            if width < column {
                out += [UInt8](repeating: LineSyntax.space, count: column - width)
            } else if column != 30 {
                // OScam writes keys of 30 characters or more with no padding; others get one space.
                out.append(LineSyntax.space)
            }
        } else {
            out += gap
        }
        out.append(LineSyntax.equals)
        out += afterEquals
        out += Array(value.utf8)
        out += ending
        return out
    }
}
