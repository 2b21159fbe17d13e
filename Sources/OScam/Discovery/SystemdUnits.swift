// MARK: - Unit file syntax

/// One `Key=value` line of a unit file, after line continuations were joined.
public struct SystemdDirective: Sendable, Equatable {
    /// The section the line is in, without brackets, e.g. `Service`.
    public var section: String
    /// The key, case-sensitive as in systemd.
    public var key: String
    /// The value with surrounding whitespace removed; empty for a reset (`ExecStart=`).
    public var value: String

    /// Creates a directive.
    public init(section: String, key: String, value: String) {
        self.section = section
        self.key = key
        self.value = value
    }

    /// Splits unit-file text into directives: `#` and `;` comment lines are skipped, a line
    /// ending in `\` continues on the next one (the backslash becomes a space, and comment lines
    /// inside a continuation are skipped, as systemd does), `[Section]` lines switch the section.
    public static func parse(_ text: String) -> [SystemdDirective] {
        var directives: [SystemdDirective] = []
        var section = ""
        func handle(_ logicalLine: String) {
            let logical = DiscoveryText.trim(logicalLine)
            if logical.isEmpty || logical.hasPrefix("#") || logical.hasPrefix(";") { return }
            if logical.hasPrefix("[") {
                if logical.hasSuffix("]") { section = String(logical.dropFirst().dropLast()) }
                return
            }
            guard let equals = logical.firstIndex(of: "=") else { return }
            let key = DiscoveryText.trim(logical[..<equals])
            let value = DiscoveryText.trim(logical[logical.index(after: equals)...])
            guard !key.isEmpty else { return }
            directives.append(SystemdDirective(section: section, key: String(key), value: String(value)))
        }
        var pending: String?
        for rawLine in DiscoveryText.lines(text) {
            let line = DiscoveryText.trim(rawLine)
            // Comment lines never continue, and are skipped inside a continuation.
            if line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasSuffix("\\") {
                pending = (pending ?? "") + line.dropLast() + " "
            } else if let started = pending {
                handle(started + line)
                pending = nil
            } else {
                handle(String(line))
            }
        }
        // A continuation running into the end of the file still counts, as in systemd.
        if let pending { handle(pending) }
        return directives
    }
}

/// The `[Service]` settings discovery needs, built up by applying a unit file and then its
/// drop-ins in order. An empty assignment resets a list, as in systemd.
public struct SystemdServiceSettings: Sendable, Equatable {
    /// Every `ExecStart=` value in effect, raw (prefixes, quotes and specifiers untouched).
    public var execStart: [String]
    /// `WorkingDirectory=`, raw.
    public var workingDirectory: String?
    /// `Environment=` assignments in effect.
    public var environment: [String: String]
    /// `EnvironmentFile=` values in effect, raw (a leading `-` marks an optional file).
    public var environmentFiles: [String]

    /// Empty settings.
    public init(
        execStart: [String] = [], workingDirectory: String? = nil, environment: [String: String] = [:],
        environmentFiles: [String] = []
    ) {
        self.execStart = execStart
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.environmentFiles = environmentFiles
    }

    /// The command that starts the service: the last `ExecStart=` in effect (`nil` if none).
    public var effectiveExecStart: String? { execStart.last }

    /// Applies the `[Service]` lines of a unit file or drop-in on top of these settings.
    public mutating func apply(_ text: String) {
        for directive in SystemdDirective.parse(text) where directive.section == "Service" {
            let value = directive.value
            switch directive.key {
            case "ExecStart":
                if value.isEmpty { execStart = [] } else { execStart.append(value) }
            case "WorkingDirectory":
                workingDirectory = value.isEmpty ? nil : value
            case "Environment":
                if value.isEmpty {
                    environment = [:]
                } else {
                    for word in SystemdExecCommand.splitWords(value) ?? [] {
                        guard let equals = word.firstIndex(of: "="), equals > word.startIndex else { continue }
                        environment[String(word[..<equals])] = String(word[word.index(after: equals)...])
                    }
                }
            case "EnvironmentFile":
                if value.isEmpty { environmentFiles = [] } else { environmentFiles.append(value) }
            default:
                break
            }
        }
    }

    /// Parses an environment file (`KEY=value` lines, `#`/`;` comments, optional quotes).
    public static func parseEnvironmentFile(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for rawLine in DiscoveryText.lines(text, keepingEmpty: false) {
            var line = DiscoveryText.trim(rawLine)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("export ") { line = DiscoveryText.trim(line.dropFirst("export ".count)) }
            guard let equals = line.firstIndex(of: "="), equals > line.startIndex else { continue }
            let key = DiscoveryText.trim(line[..<equals])
            var value = DiscoveryText.trim(line[line.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = value.dropFirst().dropLast()
            }
            result[String(key)] = String(value)
        }
        return result
    }
}

// MARK: - Specifiers

/// systemd's `%` specifiers for one unit name, for a system manager (OSCAM agents never look at
/// user units).
public struct SystemdSpecifiers: Sendable, Equatable {
    /// The full unit name, e.g. `oscam@main.service`.
    public var unitName: String

    /// Specifiers for `unitName`.
    public init(unitName: String) { self.unitName = unitName }

    /// The name without the `.service` suffix (`%N`).
    public var nameWithoutSuffix: String {
        guard let dot = unitName.lastIndex(of: ".") else { return unitName }
        return String(unitName[..<dot])
    }

    /// The part before `@`, or the whole name without suffix (`%p`).
    public var prefix: String {
        let base = nameWithoutSuffix
        guard let at = base.firstIndex(of: "@") else { return base }
        return String(base[..<at])
    }

    /// The part between `@` and the suffix (`%i`), empty for non-instances.
    public var instance: String {
        let base = nameWithoutSuffix
        guard let at = base.firstIndex(of: "@") else { return "" }
        return String(base[base.index(after: at)...])
    }

    /// Expands the specifiers in `word`; unknown ones are left as they are.
    public func expand(_ word: String) -> String {
        guard word.contains("%") else { return word }
        var output = ""
        var characters = word.makeIterator()
        while let character = characters.next() {
            guard character == "%" else {
                output.append(character)
                continue
            }
            guard let specifier = characters.next() else {
                output.append("%")
                break
            }
            switch specifier {
            case "%": output.append("%")
            case "n": output += unitName
            case "N": output += nameWithoutSuffix
            case "p": output += prefix
            case "P": output += Self.unescape(prefix)
            case "i": output += instance
            case "I": output += Self.unescape(instance)
            case "f": output += "/" + Self.unescapePath(instance.isEmpty ? prefix : instance)
            case "t": output += "/run"
            case "S": output += "/var/lib"
            case "C": output += "/var/cache"
            case "L": output += "/var/log"
            case "E": output += "/etc"
            case "T": output += "/tmp"
            case "V": output += "/var/tmp"
            default:
                output.append("%")
                output.append(specifier)
            }
        }
        return output
    }

    /// Undoes unit-name escaping: `\xNN` becomes the byte NN.
    public static func unescape(_ text: String) -> String {
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "\\"), index + 3 < source.count, source[index + 1] == UInt8(ascii: "x"),
               let value = UInt8(String(decoding: source[(index + 2)...(index + 3)], as: UTF8.self), radix: 16) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Undoes path escaping (`systemd-escape --path`): `-` becomes `/`, then `\xNN` is decoded.
    public static func unescapePath(_ text: String) -> String {
        unescape(String(text.map { $0 == "-" ? "/" : $0 }))
    }
}

// MARK: - ExecStart

/// A parsed `ExecStart=` command.
public struct SystemdExecCommand: Sendable, Equatable {
    /// The executable as written (absolute, or a bare name systemd looks up in its search path).
    public var path: String
    /// The arguments, `argv[0]` included (which differs from ``path`` with the `@` prefix).
    public var argv: [String]

    /// Creates a command.
    public init(path: String, argv: [String]) {
        self.path = path
        self.argv = argv
    }

    /// Parses one `ExecStart=` value: strips the `-@:+!|` prefixes, splits words with systemd's
    /// quoting and C escapes, expands specifiers and then environment variables (`$VAR` as a whole
    /// word splits into several, `${VAR}` substitutes in place; unset variables are empty).
    /// Returns `nil` for an empty command or unbalanced quotes.
    public static func parse(
        _ value: String, specifiers: SystemdSpecifiers, environment: [String: String] = [:]
    ) -> SystemdExecCommand? {
        var rest = DiscoveryText.trim(value)
        var separateArgv0 = false
        while let first = rest.first, "-@:+!|".contains(first) {
            if first == "@" { separateArgv0 = true }
            rest = rest.dropFirst()
        }
        guard let rawWords = splitWords(String(rest)) else { return nil }
        var words: [String] = []
        for rawWord in rawWords {
            let word = specifiers.expand(rawWord)
            if word.count > 1, word.hasPrefix("$"), !word.hasPrefix("${"),
               word.dropFirst().allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                let expanded = environment[String(word.dropFirst())] ?? ""
                words += expanded.split(whereSeparator: DiscoveryText.isSpace).map(String.init)
            } else {
                words.append(substituteBraced(word, environment: environment))
            }
        }
        guard let path = words.first else { return nil }
        let argv = separateArgv0 ? Array(words.dropFirst()) : words
        return SystemdExecCommand(path: path, argv: argv)
    }

    /// Splits a command line into words the way systemd does: whitespace separates words, single
    /// and double quotes group (anywhere in a word), and backslash escapes (`\\`, `\"`, `\'`, `\n`,
    /// `\t`, `\r`, `\s`, `\xNN`, octal `\NNN`) are decoded; an unknown escape keeps the character.
    /// Returns `nil` when a quote is not closed.
    public static func splitWords(_ text: String) -> [String]? {
        var words: [String] = []
        var current: [UInt8] = []
        var inWord = false
        var quote: UInt8?
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\\") {
                inWord = true
                guard index < bytes.count else { break }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "n"): current.append(0x0A)
                case UInt8(ascii: "t"): current.append(0x09)
                case UInt8(ascii: "r"): current.append(0x0D)
                case UInt8(ascii: "s"): current.append(0x20)
                case UInt8(ascii: "a"): current.append(0x07)
                case UInt8(ascii: "b"): current.append(0x08)
                case UInt8(ascii: "f"): current.append(0x0C)
                case UInt8(ascii: "v"): current.append(0x0B)
                case UInt8(ascii: "x"):
                    if index + 1 < bytes.count,
                       let value = UInt8(String(decoding: bytes[index...(index + 1)], as: UTF8.self), radix: 16) {
                        current.append(value)
                        index += 2
                    } else {
                        current.append(escaped)
                    }
                case UInt8(ascii: "0")...UInt8(ascii: "7"):
                    if index + 1 < bytes.count,
                       let value = UInt8(String(decoding: bytes[(index - 1)...(index + 1)], as: UTF8.self), radix: 8) {
                        current.append(value)
                        index += 2
                    } else {
                        current.append(escaped)
                    }
                default:
                    current.append(escaped)
                }
                continue
            }
            if let open = quote {
                if byte == open { quote = nil } else { current.append(byte) }
                continue
            }
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                quote = byte
                inWord = true
                continue
            }
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == 0x0A || byte == 0x0D {
                if inWord {
                    words.append(String(decoding: current, as: UTF8.self))
                    current = []
                    inWord = false
                }
                continue
            }
            current.append(byte)
            inWord = true
        }
        if quote != nil { return nil }
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        return words
    }

    private static func substituteBraced(_ word: String, environment: [String: String]) -> String {
        guard word.contains("${") else { return word }
        var output = ""
        var rest = Substring(word)
        while let start = DiscoveryText.firstRange(of: "${", in: rest) {
            output += rest[..<start.lowerBound]
            let afterOpen = rest[start.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}") else {
                output += rest[start.lowerBound...]
                return output
            }
            output += environment[String(afterOpen[..<close])] ?? ""
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        return output + rest
    }
}

// MARK: - Units

/// A systemd service whose `ExecStart=` runs an OScam binary.
public struct SystemdUnit: Sendable, Equatable {
    /// The unit name: `oscam.service`, an instance `oscam@main.service`, or a template `oscam@.service`.
    public var name: String
    /// The unit file in effect (for an instance without a file of its own: the template's file).
    public var fragmentPath: String
    /// The drop-in files applied, in the order they were applied.
    public var dropInPaths: [String]
    /// Whether some `*.wants/` or `*.requires/` directory links to this name.
    public var isEnabled: Bool
    /// The command in effect, specifiers and environment expanded.
    public var command: SystemdExecCommand
    /// `WorkingDirectory=` with specifiers expanded, when it is an absolute path.
    public var workingDirectory: String?

    /// Creates a unit value.
    public init(
        name: String, fragmentPath: String, dropInPaths: [String] = [], isEnabled: Bool = false,
        command: SystemdExecCommand, workingDirectory: String? = nil
    ) {
        self.name = name
        self.fragmentPath = fragmentPath
        self.dropInPaths = dropInPaths
        self.isEnabled = isEnabled
        self.command = command
        self.workingDirectory = workingDirectory
    }

    /// Whether this is a template (`name@.service`), which runs nothing by itself.
    public var isTemplate: Bool { name.hasSuffix("@.service") }

    /// The OScam options in ``command``.
    public var arguments: OScamArguments { OScamArguments.parse(command.argv) }

    /// The unit file, plus the unit name when the file is a template's:
    /// `/lib/systemd/system/oscam@.service (oscam@main.service)`.
    public var provenanceDetail: String {
        DiscoveryPath.basename(fragmentPath) == name ? fragmentPath : "\(fragmentPath) (\(name))"
    }
}

/// What a scan of the systemd unit directories found.
public struct SystemdScanResult: Sendable, Equatable {
    /// OScam services that can run: plain units and template instances, sorted by name.
    public var units: [SystemdUnit]
    /// OScam templates (`oscam@.service`), sorted by name, recorded whether or not instances exist.
    public var templates: [SystemdUnit]
    /// Directories or files that could not be read, and commands that could not be parsed.
    public var problems: [DiscoveryProblem]

    /// Creates a scan result.
    public init(units: [SystemdUnit] = [], templates: [SystemdUnit] = [], problems: [DiscoveryProblem] = []) {
        self.units = units
        self.templates = templates
        self.problems = problems
    }
}

/// Finds OScam services in systemd unit directories.
///
/// Directories are given highest priority first (`/etc/systemd/system` before
/// `/lib/systemd/system`): a unit file in an earlier directory hides one of the same name in a
/// later one, as does a drop-in file of the same name. Masked units (linked to `/dev/null`) and
/// aliases (links to another unit found here) are skipped.
public struct SystemdUnitScanner: Sendable {
    /// The unit directories, highest priority first.
    public var directories: [String]
    private let fileSystem: any DiscoveryFileSystem

    /// Creates a scanner over `directories` (highest priority first).
    public init(directories: [String], fileSystem: any DiscoveryFileSystem = RealFileSystem()) {
        self.directories = directories
        self.fileSystem = fileSystem
    }

    /// Scans the directories.
    public func scan() -> SystemdScanResult {
        var fragments: [String: String] = [:]
        var dropInDirectories: [String: [String]] = [:]
        var enabled: Set<String> = []
        var problems: [DiscoveryProblem] = []

        for directory in directories {
            let names: [String]
            do {
                names = try fileSystem.listDirectory(directory)
            } catch {
                if error.code != .notFound { problems.append(DiscoveryProblem(error: error)) }
                continue
            }
            for name in names.sorted() {
                let path = DiscoveryPath.join(directory, name)
                if name.hasSuffix(".service") {
                    if fragments[name] == nil && !fileSystem.isDirectory(path) { fragments[name] = path }
                } else if name.hasSuffix(".service.d") {
                    dropInDirectories[String(name.dropLast(2)), default: []].append(path)
                } else if name.hasSuffix(".wants") || name.hasSuffix(".requires") {
                    for entry in (try? fileSystem.listDirectory(path)) ?? [] where entry.hasSuffix(".service") {
                        enabled.insert(entry)
                    }
                }
            }
        }

        var candidates = Set(fragments.keys)
        for name in enabled where Self.templateName(of: name) != nil { candidates.insert(name) }

        var units: [SystemdUnit] = []
        var templates: [SystemdUnit] = []
        for name in candidates.sorted() {
            guard let unit = load(
                name: name, fragments: fragments, dropInDirectories: dropInDirectories, enabled: enabled,
                problems: &problems)
            else { continue }
            if unit.isTemplate { templates.append(unit) } else { units.append(unit) }
        }
        return SystemdScanResult(units: units, templates: templates, problems: problems)
    }

    /// `oscam@.service` for an instance name such as `oscam@main.service`, else `nil`.
    static func templateName(of name: String) -> String? {
        guard name.hasSuffix(".service"), let at = name.firstIndex(of: "@") else { return nil }
        let instance = name[name.index(after: at)..<name.index(name.endIndex, offsetBy: -".service".count)]
        guard !instance.isEmpty else { return nil }
        return name[...at] + ".service"
    }

    private func load(
        name: String, fragments: [String: String], dropInDirectories: [String: [String]], enabled: Set<String>,
        problems: inout [DiscoveryProblem]
    ) -> SystemdUnit? {
        let template = Self.templateName(of: name)
        if let own = fragments[name], isMasked(own) { return nil }
        guard let fragment = fragments[name] ?? template.flatMap({ fragments[$0] }), !isMasked(fragment) else {
            return nil
        }
        if let target = fileSystem.readLink(fragment) {
            let targetName = DiscoveryPath.basename(target)
            if targetName != name, targetName != template, targetName.hasSuffix(".service"),
               fragments[targetName] != nil {
                return nil
            }
        }

        var settings = SystemdServiceSettings()
        do {
            settings.apply(try fileSystem.readText(fragment))
        } catch {
            problems.append(DiscoveryProblem(error: error))
            return nil
        }
        var dropIns: [String: String] = [:]
        for unitName in [name] + (template.map { [$0] } ?? []) {
            for directory in dropInDirectories[unitName] ?? [] {
                for file in (try? fileSystem.listDirectory(directory)) ?? [] where file.hasSuffix(".conf") {
                    if dropIns[file] == nil { dropIns[file] = DiscoveryPath.join(directory, file) }
                }
            }
        }
        var dropInPaths: [String] = []
        for file in dropIns.keys.sorted() {
            guard let path = dropIns[file] else { continue }
            do {
                settings.apply(try fileSystem.readText(path))
                dropInPaths.append(path)
            } catch {
                problems.append(DiscoveryProblem(error: error))
            }
        }

        guard let execStart = settings.effectiveExecStart else { return nil }
        let specifiers = SystemdSpecifiers(unitName: name)
        var environment = settings.environment
        if execStart.contains("$") {
            for rawFile in settings.environmentFiles {
                let optional = rawFile.hasPrefix("-")
                let path = specifiers.expand(String(optional ? rawFile.dropFirst() : Substring(rawFile)))
                do {
                    let values = SystemdServiceSettings.parseEnvironmentFile(try fileSystem.readText(path))
                    environment.merge(values) { _, new in new }
                } catch {
                    if !(optional && error.code == .notFound) { problems.append(DiscoveryProblem(error: error)) }
                }
            }
        }
        guard let command = SystemdExecCommand.parse(execStart, specifiers: specifiers, environment: environment)
        else {
            if execStart.lowercased().contains("oscam") {
                problems.append(DiscoveryProblem(path: fragment, message: "ExecStart of \(name) could not be parsed"))
            }
            return nil
        }
        guard Discovery.isOScamName(DiscoveryPath.basename(command.path)) else { return nil }

        var workingDirectory: String?
        if let raw = settings.workingDirectory {
            let expanded = specifiers.expand(raw.hasPrefix("-") ? String(raw.dropFirst()) : raw)
            if expanded.hasPrefix("/") { workingDirectory = expanded }
        }
        return SystemdUnit(
            name: name, fragmentPath: fragment, dropInPaths: dropInPaths, isEnabled: enabled.contains(name),
            command: command, workingDirectory: workingDirectory)
    }

    private func isMasked(_ path: String) -> Bool {
        fileSystem.readLink(path) == "/dev/null"
    }
}
