/// The sections OScam's oscam.conf parser knows (OSCAM.md §4.1), in its write order.
public let oscamConfSections: [String] = [
    "global", "anticasc", "cache", "lcd", "camd33", "cs357x", "cs378x", "newcamd", "radegast", "serial",
    "gbox", "cccam", "pandora", "scam", "streamrelay", "dvbapi", "monitor", "webif",
]

extension ConfigDocument {
    /// Everything in the file that OScam would ignore, misread or lose, one entry per finding,
    /// in line order. Messages name the line and never a value.
    public var problems: [ConfigProblem] {
        var found: [ConfigProblem] = []
        func add(_ line: Int, _ severity: ConfigProblem.Severity, _ message: String) {
            found.append(ConfigProblem(path: path, line: line, severity: severity, message: message))
        }
        let record = file.recordSection
        var lineNumber = 0
        var seenUsers: [String: Int] = [:]
        for block in blocks where !block.removed {
            var keysInBlock: [String: Int] = [:]
            var firstLine = 0
            var hasIdentity = false
            var user: String?
            for line in block.lines {
                lineNumber += 1
                if firstLine == 0 {
                    firstLine = lineNumber
                }
                if lineNumber == 1, line.bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
                    add(1, .error, "file starts with a UTF-8 byte order mark, so OScam does not recognise line 1")
                }
                if line.isOverlong {
                    add(lineNumber, .error,
                        "line is longer than \(LineSyntax.maxChunk) bytes; OScam splits it and reads the rest as new lines")
                }
                if !line.bytes.allSatisfy({ $0 < 0x80 }) && String(validating: line.bytes, as: UTF8.self) == nil {
                    add(lineNumber, .warning, "line is not valid UTF-8")
                }
                // Only overlong lines need every fgets piece classified; the others are read by
                // their tag and key alone, without building value strings.
                let kinds: [LineKind] = line.isOverlong ? line.kinds
                    : line.tag == .invalid ? [.invalid] : line.tag == .setting ? [.setting(key: line.settingKey ?? "", value: "")] : []
                for kind in kinds {
                    switch kind {
                    case .invalid:
                        add(lineNumber, .warning, "line is not a comment, a section header or a key = value; OScam ignores it")
                    case .header where line.isOverlong && kind != line.kind:
                        add(lineNumber, .error, "a section header hides inside an overlong line")
                    case .setting(let key, _):
                        if block.header == nil && file != .conf {
                            add(lineNumber, .warning, "setting before the first [\(record ?? "")] header; OScam ignores it")
                        }
                        if key.hasPrefix(";") {
                            add(lineNumber, .warning, "';' does not start a comment in OScam; this line is read as an unknown key")
                        } else if key.hasPrefix("\t") {
                            add(lineNumber, .warning, "line starts with a TAB, which OScam keeps in the key, so the setting is ignored")
                        } else if key.isEmpty {
                            add(lineNumber, .warning, "line has no key before '='; OScam ignores it")
                        }
                        if line.bytes.firstIndex(of: LineSyntax.equals).map({ eq in
                            line.bytes[(eq + 1)...].first == LineSyntax.tab
                        }) == true {
                            add(lineNumber, .warning, "value starts with a TAB, which OScam keeps as part of the value")
                        }
                        if let earlier = keysInBlock[key], file != .conf {
                            add(earlier, .warning, "key '\(printable(key))' is set again on line \(lineNumber), which wins")
                        }
                        keysInBlock[key] = lineNumber
                        if key == "user" || key == "label" {
                            hasIdentity = true
                        }
                        if key == "user", case .setting(_, let value) = line.kind {
                            user = value
                        }
                    default:
                        break
                    }
                }
            }
            guard let header = block.header else {
                continue
            }
            let name = normalized(header)
            switch file {
            case .conf:
                if !oscamConfSections.contains(name) {
                    add(firstLine, .warning, "unknown section [\(printable(header))]; OScam ignores its settings")
                }
            case .user, .server:
                guard name == record else {
                    add(firstLine, .warning,
                        "section [\(printable(header))] is not [\(record ?? "")]; OScam starts an empty record for it")
                    continue
                }
                if !hasIdentity {
                    add(firstLine, .warning, "[\(name)] has no \(file == .user ? "user" : "label"); OScam ignores it")
                }
                if file == .user, let user, !user.isEmpty {
                    if let first = seenUsers[user] {
                        add(firstLine, .warning,
                            "account '\(printable(user))' was already defined on line \(first); OScam renames this one")
                    } else {
                        seenUsers[user] = firstLine
                    }
                }
            }
        }
        if file == .conf {
            found += duplicateConfKeys()
        }
        return found.sorted { ($0.line, $0.message) < ($1.line, $1.message) }
    }

    /// A key set twice in the same oscam.conf section, even across repeated headers.
    private func duplicateConfKeys() -> [ConfigProblem] {
        var found: [ConfigProblem] = []
        var bySection: [String: [ConfigSetting]] = [:]
        for section in sections() {
            bySection[section.name, default: []] += section.settings
        }
        for (name, settings) in bySection {
            var lastLine: [String: Int] = [:]
            for setting in settings {
                lastLine[setting.key] = setting.line
            }
            for setting in settings where lastLine[setting.key] != setting.line {
                found.append(ConfigProblem(
                    path: path, line: setting.line, severity: .warning,
                    message: "key '\(printable(setting.key))' in [\(printable(name))] is set again on line "
                        + "\(lastLine[setting.key] ?? 0), which wins"))
            }
        }
        return found
    }

    /// Whether the agent may edit this file: a line longer than OScam's buffer makes "what OScam
    /// reads" and "what the file says" differ, so edits are refused until a person fixes it.
    var hasOverlongLine: Bool {
        blocks.contains { $0.lines.contains(where: \.isOverlong) }
    }
}

/// A key or header name made safe for a one-line message: control bytes shown as `?` and long
/// names cut, so a hostile file cannot forge log lines.
func printable(_ text: String, limit: Int = 40) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(limit) {
        out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F ? "?" : scalar)
    }
    return text.unicodeScalars.count > limit ? out + "…" : out
}
