/// One `key = value` line as OScam reads it.
public struct ConfigSetting: Sendable, Equatable {
    /// Lower-cased and trimmed, exactly as OScam matches it (a leading TAB stays part of it).
    public let key: String
    public let value: String
    /// 1-based line in the file.
    public let line: Int
}

/// One `[section]` of a file with the settings OScam assigns to it, in file order.
public struct ConfigSection: Sendable, Equatable {
    /// The name as OScam matches it: as written in oscam.conf, lower-cased in oscam.user and
    /// oscam.server. The implicit `[global]` before oscam.conf's first header is named `global`.
    public let name: String
    /// 1-based line of the header, nil for oscam.conf's implicit `[global]`.
    public let headerLine: Int?
    public let settings: [ConfigSetting]

    /// The effective value of `key`: the last occurrence wins, as in OScam.
    public func value(_ key: String) -> String? {
        settings.last(where: { $0.key == key })?.value
    }

    /// The line of the setting that wins for `key`.
    public func line(of key: String) -> Int? {
        settings.last(where: { $0.key == key })?.line
    }
}

/// A lossless model of an OScam configuration file.
///
/// Parsing follows OScam's own rules (OSCAM.md §3.1) so that every view says what OScam sees;
/// serializing gives back the exact input bytes until an edit changes something, and an edit
/// changes only the lines it must. The file is kept as blocks: the lines before the first header,
/// then one block per header, so an edit re-reads only its own block.
public struct ConfigDocument: Sendable, Equatable {
    struct Line: Sendable, Equatable {
        /// The line without its newline: a slice of the file's bytes as read (no copy per
        /// line), or of a new array for a line an edit wrote.
        var bytes: ArraySlice<UInt8>
        var hasNewline: Bool
        /// What OScam makes of the first `fgets` piece; strings are built only when asked for.
        private(set) var tag: LineSyntax.Tag
        /// Longer than OScam's buffer, so OScam reads it as several lines.
        private(set) var isOverlong: Bool

        init(bytes: ArraySlice<UInt8>, hasNewline: Bool) {
            self.bytes = bytes
            self.hasNewline = hasNewline
            isOverlong = bytes.count + (hasNewline ? 1 : 0) > LineSyntax.maxChunk
            tag = LineSyntax.tag(LineSyntax.firstChunk(bytes))
        }

        init(bytes: [UInt8], hasNewline: Bool) {
            self.init(bytes: bytes[...], hasNewline: hasNewline)
        }

        /// What OScam makes of each `fgets` piece of this line; one piece unless it is overlong.
        var kinds: [LineKind] {
            isOverlong ? LineSyntax.chunks(bytes, hasNewline: hasNewline).map(LineSyntax.classify) : [kind]
        }

        var kind: LineKind {
            LineSyntax.classify(LineSyntax.firstChunk(bytes))
        }

        var settingKey: String? {
            tag == .setting ? LineSyntax.key(LineSyntax.firstChunk(bytes)) : nil
        }

        var isSetting: Bool {
            tag == .setting
        }

        var isBlank: Bool {
            bytes.allSatisfy(LineSyntax.isTrimmable)
        }
    }

    struct Block: Sendable, Equatable {
        /// The header line's name as written, nil for the lines before the first header.
        var header: String?
        var lines: [Line]
        /// Set when an edit removed the block; its lines are then empty.
        var removed = false
    }

    public let file: OScamFile
    /// Where the file lives, for messages.
    public let path: String
    var blocks: [Block]

    /// Parses `bytes` the way OScam reads `file`. Never fails: what OScam would ignore or
    /// misread is reported through `problems`.
    public init(bytes: some Collection<UInt8>, file: OScamFile, path: String) {
        self.file = file
        self.path = path
        let storage = Array(bytes)
        var blocks = [Block(header: nil, lines: [])]
        var current: [Line] = []
        func finish(_ line: Line) {
            if line.tag == .header, case .header(let name) = line.kind {
                blocks[blocks.count - 1].lines = current
                current = [line]
                blocks.append(Block(header: name, lines: []))
            } else {
                current.append(line)
            }
        }
        var start = 0
        while let newline = storage[start...].firstIndex(of: LineSyntax.lf) {
            finish(Line(bytes: storage[start..<newline], hasNewline: true))
            start = newline + 1
        }
        if start < storage.count {
            finish(Line(bytes: storage[start...], hasNewline: false))
        }
        blocks[blocks.count - 1].lines = current
        self.blocks = blocks
    }

    public init(text: String, file: OScamFile, path: String) {
        self.init(bytes: Array(text.utf8), file: file, path: path)
    }

    /// The file's bytes: identical to the parsed input when nothing was edited.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(blocks.reduce(0) { $0 + $1.lines.reduce(0) { $0 + $1.bytes.count + 1 } })
        for block in blocks {
            for line in block.lines {
                out.append(contentsOf: line.bytes)
                if line.hasNewline {
                    out.append(LineSyntax.lf)
                }
            }
        }
        return out
    }

    /// Number of physical lines.
    public var lineCount: Int {
        blocks.reduce(0) { $0 + $1.lines.count }
    }

    func normalized(_ header: String) -> String {
        file.lowercasesHeaders ? LineSyntax.lowercased(Array(header.utf8)[...]) : header
    }

    // MARK: - Views

    /// Every section in file order. For oscam.conf the lines before the first header form an
    /// implicit `global` section when they hold settings; oscam.user and oscam.server ignore
    /// such lines, so they are not part of any section there.
    public func sections() -> [ConfigSection] {
        var result: [ConfigSection] = []
        forEachSection { result.append($0) }
        return result
    }

    /// Calls `body` with each section in file order, building one section's settings at a time
    /// (a 50,000-account oscam.user never has all its strings in memory at once).
    public func forEachSection(_ body: (ConfigSection) -> Void) {
        var lineNumber = 0
        for block in blocks where !block.removed {
            let start = lineNumber + 1
            var settings: [ConfigSetting] = []
            for line in block.lines {
                lineNumber += 1
                guard line.isSetting || line.isOverlong else {
                    continue
                }
                for kind in line.kinds {
                    if case .setting(let key, let value) = kind {
                        settings.append(ConfigSetting(key: key, value: value, line: lineNumber))
                    }
                }
            }
            if let header = block.header {
                body(ConfigSection(name: normalized(header), headerLine: start, settings: settings))
            } else if file == .conf && !settings.isEmpty {
                body(ConfigSection(name: "global", headerLine: nil, settings: settings))
            }
        }
    }

    /// All settings OScam assigns to oscam.conf section `name`, over every occurrence of the
    /// section in file order (a repeated section keeps setting the same values).
    public func settings(inSection name: String) -> [ConfigSetting] {
        sections().filter { $0.name == name }.flatMap(\.settings)
    }

    /// The effective value of `key` in oscam.conf section `name`: the last one wins.
    public func value(_ key: String, inSection name: String) -> String? {
        settings(inSection: name).last(where: { $0.key == key })?.value
    }

    /// The repeated record sections: `[account]` in oscam.user, `[reader]` in oscam.server.
    public func records() -> [ConfigSection] {
        var result: [ConfigSection] = []
        forEachRecord { result.append($0) }
        return result
    }

    /// Calls `body` with each record section in file order, one at a time.
    public func forEachRecord(_ body: (ConfigSection) -> Void) {
        guard let record = file.recordSection else {
            return
        }
        forEachSection { section in
            if section.name == record {
                body(section)
            }
        }
    }
}
