#if canImport(Glibc)
import Glibc
#endif

extension FileAnalysis {
    /// The collectors' reading of a file: exactly what `ConfigDocument(bytes:file:path:).analyze()`
    /// gives, but oscam.user and oscam.server are read straight from their bytes, in one pass,
    /// building only the strings that end up in the analysis (user names, list values in OScam's
    /// notation, secrets, problem messages). A value repeated across records (a `caid` or `group`
    /// line shared by a thousand accounts) is parsed once and its result shared.
    ///
    /// oscam.conf is small and is read through the document model; so is a file with a line
    /// longer than OScam's buffer, whose pieces only the document model splits the way OScam does.
    /// `FastReadingTests` holds this reading and the document's typed views together on every
    /// fixture and on generated and mutated files.
    public init(scanning bytes: [UInt8], file: OScamFile, path: String) {
        let scanned = file == .conf ? nil : bytes.withUnsafeBufferPointer { buffer in
            var scan = RecordScan(source: bytes, bytes: buffer, file: file, path: path)
            return scan.run()
        }
        if let scanned {
            self = scanned
        } else {
            self = ConfigDocument(bytes: bytes, file: file, path: path).analyze()
        }
    }
}

/// One pass over the lines of oscam.user or oscam.server, following the rules of
/// `ConfigDocument` (blocks, OScam's trim and line kinds, `problems`) and of `analyze()`
/// (`RecordBuilder`, `SecretCollector`). `[account]` records take the byte path; every other
/// section (readers, misplaced sections) is built as a `ConfigSection` and handed to the same
/// builders the document uses.
struct RecordScan {
    /// The file, for values handed to the list parsers as slices (no copy).
    private let source: [UInt8]
    private let bytes: UnsafeBufferPointer<UInt8>
    private let text: ScanBytes
    private let file: OScamFile
    private let path: String
    /// `account` or `reader`.
    private let record: String
    private let recordBytes: [UInt8]

    // MARK: Results
    private var problems: [ConfigProblem] = []
    private var accounts: [AccountSummary] = []
    private var accountProblems: [ConfigProblem] = []
    private var builder: RecordBuilder
    private var secrets: SecretCollector
    /// Users of earlier `[account]` records and their header lines: OScam renames a repeated one,
    /// the views keep the first. Names compare as Swift strings do; in a file of ASCII bytes
    /// only, that is byte equality, and the bytes are looked up without building a string.
    private var seenUsers: [String: Int] = [:]
    private var seenASCIIUsers = ByteStrings()
    private var seenASCIIUserLines: [Int] = []
    /// No byte of the file is above 0x7F: every line is valid UTF-8, and strings are equal
    /// exactly when their bytes are.
    private let isASCII: Bool

    // MARK: Repeated keys and values
    private var keys = ByteStrings()
    private var recentKeys = [Int?](repeating: nil, count: 256)
    /// By key id: what the document derives from the key, and its name.
    private var keyInfo: [Key] = []
    private var keyNames: [String] = []
    private var secretRules: [(name: String, isLoginName: Bool)] = []
    /// Key name → its index in `lastBlock` and `lastLine`. Names compare as Swift strings do, so
    /// two spellings of one name are one key, as in the document's dictionaries.
    private var keyByName: [String: Int] = [:]
    /// Per key name: the block in which it was last set, and on which line.
    private var lastBlock: [Int] = []
    private var lastLine: [Int] = []
    private var groups = ValueCache<Result<[Int], ListSyntaxError>>()
    private var caids = ValueCache<Result<[String], ListSyntaxError>>()
    private var idents = ValueCache<Result<[String], ListSyntaxError>>()
    private var expdates = ValueCache<String?>()
    private var disabled = ValueCache<Bool>()

    // MARK: The current block
    private var blockNumber = 0
    /// The header's name as written (between the brackets), nil before the first header.
    private var header: Range<Int>?
    private var isRecord = false
    private var firstLine = 0
    private var hasIdentity = false
    private var fields = AccountFields()
    /// The settings of a block that is not an `[account]`, for the document's builders.
    private var settings: [ConfigSetting] = []

    /// `bytes` must be `source`'s storage.
    init(source: [UInt8], bytes: UnsafeBufferPointer<UInt8>, file: OScamFile, path: String) {
        self.source = source
        self.bytes = bytes
        text = ScanBytes(buffer: bytes)
        isASCII = text.isASCII(0, bytes.count)
        self.file = file
        self.path = path
        record = file.recordSection ?? ""
        recordBytes = Array(record.utf8)
        builder = RecordBuilder(path: path)
        secrets = SecretCollector(file: file)
    }

    /// The analysis, or nil when a line is longer than OScam's buffer.
    mutating func run() -> FileAnalysis? {
        guard let base = bytes.baseAddress else {
            return FileAnalysis(accounts: file == .user ? [] : nil, readers: file == .server ? [] : nil)
        }
        var start = 0
        var lineNumber = 0
        while start < bytes.count {
            let newline = memchr(base + start, Int32(LineSyntax.lf), bytes.count - start)
                .map { UnsafeRawPointer(base).distance(to: UnsafeRawPointer($0)) }
            let end = newline ?? bytes.count
            guard end - start + (newline == nil ? 0 : 1) <= LineSyntax.maxChunk else {
                return nil
            }
            lineNumber += 1
            line(start, end, number: lineNumber)
            start = end + 1
        }
        finishBlock()

        // The document's problems sorted, then the views', then all sorted: as `analyze()`.
        var found = problems.sorted { ($0.line, $0.message) < ($1.line, $1.message) }
        found += file == .user ? accountProblems : builder.problems
        var analysis = FileAnalysis()
        if file == .user {
            analysis.accounts = accounts
        } else {
            analysis.readers = builder.readers
        }
        analysis.secrets = secrets.found
        analysis.problems = found.sorted { ($0.line, $0.message) < ($1.line, $1.message) }
        return analysis
    }

    // MARK: - Lines

    private mutating func line(_ start: Int, _ end: Int, number: Int) {
        if number == 1, end - start >= 3, text[start] == 0xEF, text[start + 1] == 0xBB, text[start + 2] == 0xBF {
            problem(1, .error, "file starts with a UTF-8 byte order mark, so OScam does not recognise line 1")
        }
        if !isASCII, !text.isASCII(start, end), String(validating: text.slice(start, end), as: UTF8.self) == nil {
            problem(number, .warning, "line is not valid UTF-8")
        }
        let (first, last) = text.trimmed(start, end)
        guard last - first >= 3 else {
            return
        }
        if text[first] == LineSyntax.hash {
            return
        }
        if text[first] == LineSyntax.open && text[last - 1] == LineSyntax.close {
            finishBlock()
            startBlock(header: (first + 1)..<(last - 1), line: number)
            return
        }
        guard let equals = text.index(of: LineSyntax.equals, first, last) else {
            problem(number, .warning, "line is not a comment, a section header or a key = value; OScam ignores it")
            return
        }
        setting(line: start..<end, key: text.trimmed(first, equals), value: text.trimmed(equals + 1, last),
                equals: equals, number: number)
    }

    private mutating func setting(line: Range<Int>, key keyBounds: (Int, Int), value: (Int, Int), equals: Int,
                                  number: Int) {
        let id = keyID(keyBounds.0, keyBounds.1)
        let key = keyInfo[id]
        if header == nil {
            problem(number, .warning, "setting before the first [\(record)] header; OScam ignores it")
        }
        switch key.problem {
        case .startsWithSemicolon?:
            problem(number, .warning, "';' does not start a comment in OScam; this line is read as an unknown key")
        case .startsWithTab?:
            problem(number, .warning, "line starts with a TAB, which OScam keeps in the key, so the setting is ignored")
        case .empty?:
            problem(number, .warning, "line has no key before '='; OScam ignores it")
        case nil:
            break
        }
        if equals + 1 < line.upperBound, text[equals + 1] == LineSyntax.tab {
            problem(number, .warning, "value starts with a TAB, which OScam keeps as part of the value")
        }
        if lastBlock[key.nameID] == blockNumber {
            problem(lastLine[key.nameID], .warning,
                    "key '\(printable(keyNames[id]))' is set again on line \(number), which wins")
        }
        lastBlock[key.nameID] = blockNumber
        lastLine[key.nameID] = number
        if key.field == .user || key.field == .label {
            hasIdentity = true
        }
        guard header != nil else {
            return
        }
        let span = ValueSpan(start: value.0, end: value.1, line: number)
        guard isRecord && file == .user else {
            settings.append(ConfigSetting(key: keyNames[id], value: text.string(span), line: number))
            return
        }
        fields.set(key.field, span)
        if let index = key.secretRule, text.mayHoldSecret(span) {
            let rule = secretRules[index]
            secrets.append(FoundSecret(rule: rule.name, value: Secret(text.string(span)), isLoginName: rule.isLoginName))
        }
    }

    // MARK: - Blocks

    private mutating func startBlock(header name: Range<Int>, line: Int) {
        blockNumber += 1
        header = name
        firstLine = line
        hasIdentity = false
        fields = AccountFields()
        settings.removeAll(keepingCapacity: true)
        isRecord = name.count == recordBytes.count
        var offset = 0
        while isRecord && offset < recordBytes.count {
            let byte = text[name.lowerBound + offset]
            isRecord = (byte >= 65 && byte <= 90 ? byte + 32 : byte) == recordBytes[offset]
            offset += 1
        }
    }

    /// The checks the document makes at the end of a block, and the block's record or section.
    private mutating func finishBlock() {
        guard let header else {
            return
        }
        guard isRecord else {
            let written = String(decoding: text.slice(header.lowerBound, header.upperBound), as: UTF8.self)
            problem(firstLine, .warning,
                    "section [\(printable(written))] is not [\(record)]; OScam starts an empty record for it")
            secrets.add(ConfigSection(name: LineSyntax.lowercased(Array(written.utf8)[...]), headerLine: firstLine,
                                      settings: settings))
            return
        }
        if !hasIdentity {
            problem(firstLine, .warning, "[\(record)] has no \(file == .user ? "user" : "label"); OScam ignores it")
        }
        guard file == .user else {
            let section = ConfigSection(name: record, headerLine: firstLine, settings: settings)
            secrets.add(section)
            builder.addReader(section)
            return
        }
        guard let userSpan = fields.user, userSpan.end > userSpan.start else {
            return
        }
        let user = text.string(userSpan)
        if let first = firstDefinition(of: userSpan, user) {
            problem(firstLine, .warning,
                    "account '\(printable(user))' was already defined on line \(first); OScam renames this one")
            return
        }
        addAccount(user: user)
    }

    /// The header line of the earlier record with this user, or nil after recording this one.
    private mutating func firstDefinition(of span: ValueSpan, _ user: String) -> Int? {
        guard isASCII else {
            if let first = seenUsers[user] {
                return first
            }
            seenUsers[user] = firstLine
            return nil
        }
        let (id, isNew) = seenASCIIUsers.id(of: text.slice(span.start, span.end))
        guard isNew else {
            return seenASCIIUserLines[id]
        }
        seenASCIIUserLines.append(firstLine)
        return nil
    }

    /// `RecordBuilder.addAccount`, from the spans of the record's winning settings.
    private mutating func addAccount(user: String) {
        // The list parsers read ASCII values as bytes; others as the document's strings.
        let ascii = isASCII
        let groups = Self.parsed(fields.group, "group", source, path, &groups, &accountProblems) {
            (value) throws(ListSyntaxError) in
            try ascii ? ListSyntax.groups(bytes: value) : ListSyntax.groups(String(decoding: value, as: UTF8.self))
        } ?? []
        let caids = Self.parsed(fields.caid, "caid", source, path, &caids, &accountProblems) {
            (value) throws(ListSyntaxError) in
            try (ascii ? ListSyntax.caids(bytes: value) : ListSyntax.caids(String(decoding: value, as: UTF8.self)))
                .map(\.text)
        } ?? []
        let idents = Self.parsed(fields.ident, "ident", source, path, &idents, &accountProblems) {
            (value) throws(ListSyntaxError) in
            try (ascii ? ListSyntax.idents(bytes: value) : ListSyntax.idents(String(decoding: value, as: UTF8.self)))
                .map(\.text)
        } ?? []
        var expdate: String?
        if let span = fields.expdate, span.end > span.start {
            expdate = expdates.value(source, span) { value in
                ascii ? ConfigDocument.normalisedDate(ascii: value)
                    : ConfigDocument.normalisedDate(String(decoding: value, as: UTF8.self))
            }
            if expdate == nil {
                accountProblems.append(ConfigProblem(path: path, line: span.line, severity: .error,
                                                     message: ConfigDocument.badExpdate))
            }
        }
        var off = false
        if let span = fields.disabled {
            off = disabled.value(source, span) { ConfigDocument.flag(String(decoding: $0, as: UTF8.self)) }
        }
        accounts.append(AccountSummary(user: user, enabled: !off, groups: groups, caids: caids, idents: idents,
                                       expdate: expdate, line: firstLine))
    }

    /// A list value through its parser, once per distinct text; an error becomes the problem
    /// `ConfigSection.parsed` would report.
    private static func parsed<T>(
        _ span: ValueSpan?, _ key: String, _ source: [UInt8], _ path: String,
        _ cache: inout ValueCache<Result<T, ListSyntaxError>>, _ problems: inout [ConfigProblem],
        _ parse: (ArraySlice<UInt8>) throws(ListSyntaxError) -> T
    ) -> T? {
        guard let span else {
            return nil
        }
        let result = cache.value(source, span) { value -> Result<T, ListSyntaxError> in
            do throws(ListSyntaxError) {
                return .success(try parse(value))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            problems.append(ConfigProblem(path: path, line: span.line, severity: .error, message: "\(key): \(error)"))
            return nil
        }
    }

    // MARK: - Keys

    /// The id of the key written at `start..<end`, with what the document derives from its name.
    private mutating func keyID(_ start: Int, _ end: Int) -> Int {
        // Records repeat a handful of keys: a slot per (length, first and last byte) usually
        // names the key without hashing it.
        let count = end - start
        let recent = count == 0 ? 0 : (count &* 31 &+ Int(text[start]) &* 7 &+ Int(text[end - 1])) & 255
        if let known = recentKeys[recent], keys.matches(known, text.slice(start, end)) {
            return known
        }
        let (id, isNew) = keys.id(of: text.slice(start, end))
        recentKeys[recent] = id
        guard isNew else {
            return id
        }
        let name = LineSyntax.lowercased(Array(text.slice(start, end))[...])
        let nameID: Int
        if let known = keyByName[name] {
            nameID = known
        } else {
            nameID = lastBlock.count
            keyByName[name] = nameID
            lastBlock.append(-1)
            lastLine.append(0)
        }
        var secretRule: Int?
        if let rule = secrets.rule(forKey: name, inSection: record) {
            secretRule = secretRules.count
            secretRules.append(rule)
        }
        let problem: Key.Problem? = name.hasPrefix(";") ? .startsWithSemicolon : name.hasPrefix("\t") ? .startsWithTab
            : name.isEmpty ? .empty : nil
        keyInfo.append(Key(nameID: nameID, field: AccountFields.Field(rawValue: name) ?? .other, problem: problem,
                           secretRule: secretRule))
        keyNames.append(name)
        return id
    }

    /// What the document derives from one spelling of a key (its name is in `keyNames`).
    private struct Key {
        /// The document's checks of a key, in its order: `hasPrefix` as Swift strings answer it.
        enum Problem {
            case startsWithSemicolon, startsWithTab, empty
        }

        /// Index into `lastBlock` / `lastLine`: one per distinct name.
        let nameID: Int
        let field: AccountFields.Field
        let problem: Problem?
        /// Index into `secretRules` when the key's values are secret.
        let secretRule: Int?
    }

    private mutating func problem(_ line: Int, _ severity: ConfigProblem.Severity, _ message: String) {
        problems.append(ConfigProblem(path: path, line: line, severity: severity, message: message))
    }
}

/// The file's bytes and OScam's line rules as index arithmetic: no slices, no copies. Kept apart
/// from `RecordScan` so that calling them never copies the scan's state.
struct ScanBytes {
    let buffer: UnsafeBufferPointer<UInt8>

    subscript(_ index: Int) -> UInt8 {
        buffer[index]
    }

    func slice(_ start: Int, _ end: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: buffer[start..<end])
    }

    func string(_ span: ValueSpan) -> String {
        String(decoding: slice(span.start, span.end), as: UTF8.self)
    }

    /// `SecretCollector.mayHoldSecret` on the value's bytes.
    func mayHoldSecret(_ span: ValueSpan) -> Bool {
        let count = span.end - span.start
        return count > 1 || (count == 1 && buffer[span.start] != UInt8(ascii: "0") && buffer[span.start] != UInt8(ascii: "1"))
    }

    /// `LineSyntax.trim` as bounds.
    func trimmed(_ start: Int, _ end: Int) -> (Int, Int) {
        var first = start
        var last = end
        if first < last && buffer[first] == LineSyntax.space {
            while first < last && LineSyntax.isTrimmable(buffer[first]) {
                first += 1
            }
        }
        while last > first && LineSyntax.isTrimmable(buffer[last - 1]) {
            last -= 1
        }
        return (first, last)
    }

    func index(of byte: UInt8, _ start: Int, _ end: Int) -> Int? {
        var index = start
        while index < end {
            if buffer[index] == byte {
                return index
            }
            index += 1
        }
        return nil
    }

    func isASCII(_ start: Int, _ end: Int) -> Bool {
        guard let base = buffer.baseAddress.map(UnsafeRawPointer.init) else {
            return true
        }
        var index = start
        var bits: UInt64 = 0
        while index + 8 <= end {
            bits |= base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < end {
            bits |= UInt64(buffer[index])
            index += 1
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }
}

/// Where a value lies in the file, and its line.
struct ValueSpan {
    let start: Int
    let end: Int
    let line: Int
}

/// The winning (last) setting of each key an account reads.
struct AccountFields {
    enum Field: String {
        case user, group, caid, ident, expdate, disabled, label, other
    }

    var user: ValueSpan?
    var group: ValueSpan?
    var caid: ValueSpan?
    var ident: ValueSpan?
    var expdate: ValueSpan?
    var disabled: ValueSpan?

    mutating func set(_ field: Field, _ span: ValueSpan) {
        switch field {
        case .user: user = span
        case .group: group = span
        case .caid: caid = span
        case .ident: ident = span
        case .expdate: expdate = span
        case .disabled: disabled = span
        case .label, .other: break
        }
    }
}

/// Distinct byte strings → dense ids, for keys and values that repeat in every record. The bytes
/// are copied once into an arena; lookups hash eight bytes at a time and never allocate.
struct ByteStrings {
    private var arena: [UInt8] = []
    /// id → its bytes' start in `arena`; the end is the next one's start.
    private var starts: [Int] = [0]
    private var hashes: [UInt64] = []
    /// Open addressing: the hash's top 32 bits, then id + 1 (0 when empty), so that a probe
    /// touches one array until the hashes agree. The count is a power of two.
    private var slots = [UInt64](repeating: 0, count: 64)

    var count: Int {
        hashes.count
    }

    /// The id of `key`, and whether it was added by this call.
    mutating func id(of key: UnsafeBufferPointer<UInt8>) -> (id: Int, isNew: Bool) {
        let hash = Self.hash(key)
        let (known, slot) = probe(key, hash)
        if let known {
            return (known, false)
        }
        let id = hashes.count
        arena.append(contentsOf: key)
        starts.append(arena.count)
        hashes.append(hash)
        slots[slot] = Self.entry(hash, id)
        if hashes.count * 2 > slots.count {
            grow()
        }
        return (id, true)
    }

    /// The id of `key` if it is in the table, else the free slot where it would go.
    private func probe(_ key: UnsafeBufferPointer<UInt8>, _ hash: UInt64) -> (id: Int?, slot: Int) {
        let mask = slots.count - 1
        let tag = hash >> 32
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] != 0 {
            let entry = slots[slot]
            if entry >> 32 == tag {
                let id = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
                if hashes[id] == hash && matches(id, key) {
                    return (id, slot)
                }
            }
            slot = (slot + 1) & mask
        }
        return (nil, slot)
    }

    private static func entry(_ hash: UInt64, _ id: Int) -> UInt64 {
        (hash >> 32) << 32 | UInt64(truncatingIfNeeded: id + 1) & 0xFFFF_FFFF
    }

    /// Whether `id` stands for exactly these bytes.
    func matches(_ id: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = starts[id]
        guard starts[id + 1] - start == key.count else {
            return false
        }
        return arena.withUnsafeBufferPointer { stored in
            guard let mine = stored.baseAddress, let other = key.baseAddress else {
                return key.isEmpty
            }
            return shortBytesEqual(mine + start, other, count: key.count)
        }
    }

    /// A multiply-xorshift hash over 8-byte words.
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash = 0x9E37_79B9_7F4A_7C15 ^ UInt64(key.count)
        guard let base = key.baseAddress.map(UnsafeRawPointer.init) else {
            return hash
        }
        var index = 0
        while index + 8 <= key.count {
            hash = (hash ^ base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            hash ^= hash >> 32
            index += 8
        }
        var tail: UInt64 = 0
        if index + 4 <= key.count {
            tail = UInt64(base.loadUnaligned(fromByteOffset: index, as: UInt32.self))
            index += 4
        }
        if index + 2 <= key.count {
            tail = tail << 16 | UInt64(base.loadUnaligned(fromByteOffset: index, as: UInt16.self))
            index += 2
        }
        if index < key.count {
            tail = tail << 8 | UInt64(key[index])
        }
        hash = (hash ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return hash ^ (hash >> 29)
    }

    private mutating func grow() {
        slots = [UInt64](repeating: 0, count: slots.count * 2)
        let mask = slots.count - 1
        for (id, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot] != 0 {
                slot = (slot + 1) & mask
            }
            slots[slot] = Self.entry(hash, id)
        }
    }
}

/// Whether `count` bytes at `first` and `second` are equal: eight at a time, without a call to
/// memcmp, since keys and values are short.
@inline(__always)
func shortBytesEqual(_ first: UnsafePointer<UInt8>, _ second: UnsafePointer<UInt8>, count: Int) -> Bool {
    let left = UnsafeRawPointer(first)
    let right = UnsafeRawPointer(second)
    var index = 0
    while index + 8 <= count {
        guard left.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                == right.loadUnaligned(fromByteOffset: index, as: UInt64.self) else {
            return false
        }
        index += 8
    }
    while index < count {
        guard first[index] == second[index] else {
            return false
        }
        index += 1
    }
    return true
}

/// What a function of a value gave, computed once per distinct value while the values repeat.
struct ValueCache<Value> {
    private var texts = ByteStrings()
    private var values: [Value] = []
    /// The previous lookup: records written from one template repeat a value record after
    /// record, which is then found by comparing it with the previous one in place.
    private var last: (span: ValueSpan, id: Int)?
    /// Values seen beyond this many are not kept, and then only a repeat of the previous value
    /// is found: where few records share a value, keeping and looking up every one would cost
    /// more than it saves.
    private static var limit: Int { 256 }

    mutating func value(_ source: [UInt8], _ span: ValueSpan, _ make: (ArraySlice<UInt8>) -> Value) -> Value {
        let value = source[span.start..<span.end]
        return source.withUnsafeBufferPointer { bytes in
            let slice = UnsafeBufferPointer(rebasing: bytes[span.start..<span.end])
            if let last, last.span.end - last.span.start == slice.count, let base = bytes.baseAddress,
               shortBytesEqual(base + last.span.start, base + span.start, count: slice.count) {
                return values[last.id]
            }
            guard texts.count < Self.limit else {
                return make(value)
            }
            let (id, isNew) = texts.id(of: slice)
            if isNew {
                values.append(make(value))
            }
            last = (span, id)
            return values[id]
        }
    }
}
