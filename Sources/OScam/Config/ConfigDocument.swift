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
        var bytes: [UInt8]
        var hasNewline: Bool
        /// What OScam makes of each `fgets` piece of this line; one piece unless the line is longer
        /// than OScam's buffer.
        var kinds: [LineKind]

        init(bytes: [UInt8], hasNewline: Bool) {
            self.bytes = bytes
            self.hasNewline = hasNewline
            kinds = LineSyntax.chunks(bytes, hasNewline: hasNewline).map(LineSyntax.classify)
        }

        var kind: LineKind {
            kinds.first ?? .ignored
        }

        var isOverlong: Bool {
            kinds.count > 1
        }

        var settingKey: String? {
            if case .setting(let key, _) = kind {
                return key
            }
            return nil
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
        var blocks = [Block(header: nil, lines: [])]
        var current: [UInt8] = []
        current.reserveCapacity(128)
        func finish(newline: Bool) {
            let line = Line(bytes: current, hasNewline: newline)
            if case .header(let name) = line.kind {
                blocks.append(Block(header: name, lines: [line]))
            } else {
                blocks[blocks.count - 1].lines.append(line)
            }
            current.removeAll(keepingCapacity: true)
        }
        for byte in bytes {
            if byte == LineSyntax.lf {
                finish(newline: true)
            } else {
                current.append(byte)
            }
        }
        if !current.isEmpty {
            finish(newline: false)
        }
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
        var lineNumber = 0
        for block in blocks where !block.removed {
            let start = lineNumber + 1
            var settings: [ConfigSetting] = []
            for line in block.lines {
                lineNumber += 1
                for kind in line.kinds {
                    if case .setting(let key, let value) = kind {
                        settings.append(ConfigSetting(key: key, value: value, line: lineNumber))
                    }
                }
            }
            if let header = block.header {
                result.append(ConfigSection(name: normalized(header), headerLine: start, settings: settings))
            } else if file == .conf && !settings.isEmpty {
                result.append(ConfigSection(name: "global", headerLine: nil, settings: settings))
            }
        }
        return result
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
        guard let record = file.recordSection else {
            return []
        }
        return sections().filter { $0.name == record }
    }
}
