/// Which of OScam's three configuration files a document is. Each has its own case rules and
/// record sections (OSCAM.md §3.1).
public enum OScamFile: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
    case conf = "oscam.conf"
    case user = "oscam.user"
    case server = "oscam.server"

    /// oscam.user and oscam.server lower-case a header before matching it; oscam.conf does not,
    /// so `[Monitor]` there is an unknown section.
    var lowercasesHeaders: Bool {
        self != .conf
    }

    /// The repeated section that holds one record, or nil for oscam.conf.
    public var recordSection: String? {
        switch self {
        case .conf: nil
        case .user: "account"
        case .server: "reader"
        }
    }
}

/// What OScam makes of one line (OSCAM.md §3.1), decided on the bytes as its parser sees them.
public enum LineKind: Sendable, Equatable {
    /// Blank, or shorter than three bytes after trimming: skipped.
    case ignored
    /// First byte after trimming is `#`.
    case comment
    /// `[name]`, with the name exactly as written between the brackets.
    case header(String)
    /// `key = value`, split at the first `=`; the key lower-cased and trimmed, the value trimmed
    /// with OScam's quirk (leading whitespace goes only when the value starts with a space).
    case setting(key: String, value: String)
    /// Three or more bytes, not a comment or header, and no `=`: OScam ignores it.
    case invalid
}

/// OScam's line rules as pure functions over bytes.
enum LineSyntax {
    /// OScam reads lines with `fgets` into a 16384-byte buffer: at most 16383 bytes at a time,
    /// the rest of a longer line becomes a line of its own.
    static let maxChunk = 16383

    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let equals = UInt8(ascii: "=")
    static let hash = UInt8(ascii: "#")
    static let open = UInt8(ascii: "[")
    static let close = UInt8(ascii: "]")

    static func isTrimmable(_ byte: UInt8) -> Bool {
        byte == space || byte == tab || byte == cr || byte == lf
    }

    /// OScam's `trim()`: leading whitespace is removed only when the first byte is a space (so a
    /// leading TAB survives); trailing space, TAB, CR and LF always go.
    static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        if slice.first == space {
            while let first = slice.first, isTrimmable(first) {
                slice = slice.dropFirst()
            }
        }
        while let last = slice.last, isTrimmable(last) {
            slice = slice.dropLast()
        }
        return slice
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// ASCII lower-casing, as C's `tolower` in the C locale does it.
    static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        if !bytes.contains(where: { $0 >= 65 && $0 <= 90 }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return String(decoding: bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// A line's kind without its strings, so a parsed file keeps one byte per line for it.
    enum Tag: UInt8, Sendable, Equatable {
        case ignored, comment, header, setting, invalid
    }

    static func tag(_ chunk: ArraySlice<UInt8>) -> Tag {
        let line = trim(chunk)
        guard line.count >= 3, let first = line.first, let last = line.last else {
            return .ignored
        }
        if first == hash {
            return .comment
        }
        if first == open && last == close {
            return .header
        }
        return line.contains(equals) ? .setting : .invalid
    }

    static func classify(_ chunk: ArraySlice<UInt8>) -> LineKind {
        let line = trim(chunk)
        switch tag(chunk) {
        case .ignored:
            return .ignored
        case .comment:
            return .comment
        case .header:
            return .header(string(line.dropFirst().dropLast()))
        case .invalid:
            return .invalid
        case .setting:
            let eq = line.firstIndex(of: equals) ?? line.endIndex
            let key = trim(line[line.startIndex..<eq])
            let value = trim(line[min(eq + 1, line.endIndex)...])
            return .setting(key: lowercased(key), value: string(value))
        }
    }

    /// The lower-cased key of a setting line, without building its value.
    static func key(_ chunk: ArraySlice<UInt8>) -> String? {
        let line = trim(chunk)
        guard tag(chunk) == .setting, let eq = line.firstIndex(of: equals) else {
            return nil
        }
        return lowercased(trim(line[line.startIndex..<eq]))
    }

    /// Splits one physical line (its content and, when present, its newline) into the pieces
    /// `fgets` would return.
    static func chunks(_ content: ArraySlice<UInt8>, hasNewline: Bool) -> [ArraySlice<UInt8>] {
        let total = content.count + (hasNewline ? 1 : 0)
        if total <= maxChunk {
            return [content]
        }
        var pieces: [ArraySlice<UInt8>] = []
        var start = content.startIndex
        while start < content.endIndex {
            let end = min(start + maxChunk, content.endIndex)
            pieces.append(content[start..<end])
            start = end
        }
        return pieces
    }

    /// The first `fgets` piece of a line.
    static func firstChunk(_ content: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        content.prefix(maxChunk)
    }
}
