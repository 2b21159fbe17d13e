/// The contents of `<tempdir>/oscam.version`, which OScam writes at startup and removes on a clean
/// shutdown (OSCAM.md §2).
///
/// Parsing is pure and lenient: it never fails, ignores lines it does not know, and accepts the
/// current format as well as the older ones (`Unix starttime`, `Uxstarttime`, `Box type`,
/// `oscam-1.20_svn-r11700`, `1.00  Rev. 4641`).
public struct OScamVersionFile: Sendable, Equatable {
    /// The commit OScam prints when it was built without git metadata.
    public static let placeholderCommit = "a2b4c6d8"

    /// `Unix Starttime` (older: `Unix starttime`, `Uxstarttime`): when the worker wrote the file,
    /// in epoch seconds.
    public var unixStartTime: Int64?
    /// `Starttime`: the same instant as local time text, e.g. `29.11.2026 09:47:09`.
    public var startTime: String?
    /// `Build Date` as text (current format only).
    public var buildDate: String?
    /// `Version` exactly as written, e.g. `2.26.05-11961@5b6fa7ad` or `oscam-1.20_svn-r11700`.
    public var version: String?
    /// The version without the `oscam-` prefix and the commit, e.g. `2.26.05-11961`,
    /// `1.20_svn-r11700`, `1.30-r11772`; very old `1.00  Rev. 4641` becomes `1.00-r4641`.
    public var versionNumber: String?
    /// The revision counter inside the version (11961, 11700, 11772, 4641), when there is one.
    public var revision: Int?
    /// The git commit after `@`, lower-cased; may be ``placeholderCommit``.
    public var commit: String?
    /// `Compiler`, the target triple, e.g. `x86_64-linux-gnu`.
    public var compiler: String?
    /// `Box Type` (older: `Box type`) as written, e.g. `generic (generic)`.
    public var boxType: String?
    /// `PID`: `getppid()` of the worker, i.e. the watchdog PID in restart mode, and the shell or 1
    /// under `-r 0` (OSCAM.md §2.2). It is never the worker; that one is in `oscam.pid`.
    public var pid: Int32?
    /// `TempDir` exactly as given to OScam (possibly without a trailing `/`).
    public var tempDir: String?
    /// `ConfigDir`, always ending in `/`.
    public var configDir: String?
    /// `WebifPort` as a plain number; `0` means the WebIF is disabled. It never shows the `+` that
    /// marks TLS.
    public var webifPort: Int?
    /// The feature lines after the first blank line, by name as written (e.g.
    /// `Web interface support`); `true` iff the value starts with `yes`.
    public var features: [String: Bool]

    /// Whether ``commit`` is OScam's placeholder for builds without git metadata.
    public var isPlaceholderCommit: Bool { commit == Self.placeholderCommit }

    /// Creates a version file value; every field defaults to absent.
    public init(
        unixStartTime: Int64? = nil, startTime: String? = nil, buildDate: String? = nil, version: String? = nil,
        versionNumber: String? = nil, revision: Int? = nil, commit: String? = nil, compiler: String? = nil,
        boxType: String? = nil, pid: Int32? = nil, tempDir: String? = nil, configDir: String? = nil,
        webifPort: Int? = nil, features: [String: Bool] = [:]
    ) {
        self.unixStartTime = unixStartTime
        self.startTime = startTime
        self.buildDate = buildDate
        self.version = version
        self.versionNumber = versionNumber
        self.revision = revision
        self.commit = commit
        self.compiler = compiler
        self.boxType = boxType
        self.pid = pid
        self.tempDir = tempDir
        self.configDir = configDir
        self.webifPort = webifPort
        self.features = features
    }

    // MARK: - Parsing

    /// Parses the text of an `oscam.version` file. Never fails; unknown lines are ignored.
    public static func parse(_ text: String) -> OScamVersionFile {
        var result = OScamVersionFile()
        var inHeader = true
        var sawHeaderLine = false
        for rawLine in DiscoveryText.lines(text) {
            let line = DiscoveryText.trim(rawLine)
            if line.isEmpty {
                // The header ends at the first blank line after some content; very old builds
                // print two blank lines and an `Active modules:` heading, which has no value.
                if sawHeaderLine { inHeader = false }
                continue
            }
            if inHeader {
                sawHeaderLine = true
                result.applyHeaderLine(line)
            } else if let (name, value) = featureLine(line) {
                result.features[name] = value.lowercased().hasPrefix("yes")
            }
        }
        return result
    }

    /// Splits a version string into number, revision and commit, e.g.
    /// `oscam-1.30-r11772@abcd1234` → (`1.30-r11772`, 11772, `abcd1234`).
    public static func parseVersion(_ raw: String) -> (number: String?, revision: Int?, commit: String?) {
        var base = DiscoveryText.trim(raw)
        var commit: String?
        if let at = base.firstIndex(of: "@") {
            let candidate = DiscoveryText.trim(base[base.index(after: at)...])
            if (7...40).contains(candidate.count), candidate.allSatisfy(\.isHexDigit) {
                commit = candidate.lowercased()
            }
            base = DiscoveryText.trim(base[..<at])
        }
        if base.lowercased().hasPrefix("oscam-") { base = base.dropFirst("oscam-".count) }

        // Very old builds: "<CS_VERSION>  Rev. <svn>".
        if let range = DiscoveryText.firstRange(of: "Rev.", in: base) {
            let number = DiscoveryText.trim(base[..<range.lowerBound])
            let svn = DiscoveryText.trim(base[range.upperBound...])
            let revision = DiscoveryText.isDigits(svn) ? Int(svn) : nil
            guard !number.isEmpty else { return (nil, revision, commit) }
            return (revision.map { "\(number)-r\($0)" } ?? String(number), revision, commit)
        }
        guard !base.isEmpty else { return (nil, nil, commit) }

        // The revision is the first dash-separated part after the release that is `<digits>` or
        // `r<digits>`; emu builds append further parts (`-11884-802`), which are not the revision.
        var revision: Int?
        for part in base.split(separator: "-").dropFirst() {
            let digits = part.hasPrefix("r") ? part.dropFirst() : part
            if DiscoveryText.isDigits(digits), let value = Int(digits) {
                revision = value
                break
            }
        }
        return (String(base), revision, commit)
    }

    private mutating func applyHeaderLine(_ line: Substring) {
        guard let colon = line.firstIndex(of: ":") else { return }
        let key = line[..<colon].split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ").lowercased()
        let value = DiscoveryText.trim(line[line.index(after: colon)...])
        let text: String? = value.isEmpty ? nil : String(value)
        switch key {
        case "unix starttime", "uxstarttime": unixStartTime = text.flatMap { Int64($0) }
        case "starttime": startTime = text
        case "build date": buildDate = text
        case "version":
            version = text
            if let text {
                let parsed = Self.parseVersion(text)
                versionNumber = parsed.number
                revision = parsed.revision
                commit = parsed.commit
            }
        case "compiler": compiler = text
        case "box type": boxType = text
        case "pid": pid = text.flatMap { Int32($0) }
        case "tempdir": tempDir = text
        case "configdir": configDir = text.map { $0.hasSuffix("/") ? $0 : $0 + "/" }
        case "webifport": webifPort = text.flatMap { Int($0) }
        default: break
        }
    }

    /// `Name:   value`, or the colon-less `Name     value` of some very old builds.
    private static func featureLine(_ line: Substring) -> (String, Substring)? {
        if let colon = line.firstIndex(of: ":") {
            let name = DiscoveryText.trim(line[..<colon])
            let value = DiscoveryText.trim(line[line.index(after: colon)...])
            guard !name.isEmpty, !value.isEmpty else { return nil }
            return (String(name), value)
        }
        guard let gap = DiscoveryText.lastGap(in: line) else { return nil }
        let name = DiscoveryText.trim(line[..<gap.lowerBound])
        let value = DiscoveryText.trim(line[gap.upperBound...])
        guard !name.isEmpty, !value.isEmpty else { return nil }
        return (String(name), value)
    }
}

// MARK: - Small string helpers

/// Text helpers shared by the discovery parsers. A namespace rather than extensions on `Substring`,
/// so that they cannot clash with helpers elsewhere in the module.
enum DiscoveryText {
    /// Whether `c` is a space, tab, carriage return or newline.
    static func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n" }

    /// The lines of `text`, split at LF, CRLF or a lone CR. (Swift treats CRLF as one
    /// `Character`, so splitting at `"\n"` alone would miss Windows line ends.)
    static func lines(_ text: String, keepingEmpty: Bool = true) -> [Substring] {
        text.split(omittingEmptySubsequences: !keepingEmpty) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
    }

    /// `text` without leading and trailing spaces, tabs, carriage returns and newlines.
    static func trim(_ text: Substring) -> Substring {
        guard let first = text.firstIndex(where: { !isSpace($0) }),
              let last = text.lastIndex(where: { !isSpace($0) }) else { return text[text.endIndex...] }
        return text[first...last]
    }

    /// `text` without leading and trailing whitespace.
    static func trim(_ text: String) -> Substring { trim(Substring(text)) }

    /// Whether `c` is one of the ASCII digits 0-9 (unlike `isNumber`, which accepts any script).
    static func isDigit(_ c: Character) -> Bool { ("0"..."9").contains(c) }

    /// Whether `text` is non-empty and made of ASCII digits only.
    static func isDigits(_ text: Substring) -> Bool { !text.isEmpty && text.allSatisfy(isDigit) }

    /// The range of the first occurrence of `needle` in `text`.
    static func firstRange(of needle: String, in text: Substring) -> Range<Substring.Index>? {
        let pattern = Array(needle)
        guard !pattern.isEmpty else { return nil }
        var index = text.startIndex
        while index < text.endIndex {
            var probe = index
            var matched = 0
            while matched < pattern.count, probe < text.endIndex, text[probe] == pattern[matched] {
                matched += 1
                probe = text.index(after: probe)
            }
            if matched == pattern.count { return index..<probe }
            index = text.index(after: index)
        }
        return nil
    }

    /// The range of the last run of two or more spaces or tabs in `text`.
    static func lastGap(in text: Substring) -> Range<Substring.Index>? {
        var end = text.endIndex
        while end > text.startIndex {
            let before = text.index(before: end)
            if text[before] == " " || text[before] == "\t" {
                var start = before
                while start > text.startIndex {
                    let previous = text.index(before: start)
                    guard text[previous] == " " || text[previous] == "\t" else { break }
                    start = previous
                }
                if text.distance(from: start, to: end) >= 2 { return start..<end }
                end = start
            } else {
                end = before
            }
        }
        return nil
    }
}
