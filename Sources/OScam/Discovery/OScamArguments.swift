/// The parts of an OScam command line that discovery needs (OSCAM.md §1.1).
///
/// Parsed the way OScam's own `getopt_long` call reads it, with the option string
/// `aB:bc:d:g:hI:p:r:Sst:uVw:` and the matching long options: attached (`-c/etc/oscam`) and
/// separate values, `--config-dir=DIR` and `--config-dir DIR`, unambiguous long-option prefixes,
/// clustered flags (`-bc DIR`), `--` ending the options, non-options skipped (GNU permutation)
/// and a later option overriding an earlier one. Unknown options are ignored, as OScam does
/// after printing a warning.
public struct OScamArguments: Sendable, Equatable {
    /// `-c` / `--config-dir`, exactly as given (not normalised, possibly relative).
    public var configDir: String?
    /// `-t` / `--temp-dir`, exactly as given.
    public var tempDir: String?
    /// `-B` / `--pidfile`, exactly as given.
    public var pidFile: String?
    /// `-r` / `--restart` read the way OScam reads it (`atoi`: non-numbers are 0); `nil` when not
    /// given, which means the default restart mode 1 (watchdog).
    public var restartMode: Int?
    /// Whether `-b` / `--daemon` was given.
    public var daemon: Bool

    /// Creates an argument set; every field defaults to "not given".
    public init(
        configDir: String? = nil, tempDir: String? = nil, pidFile: String? = nil, restartMode: Int? = nil,
        daemon: Bool = false
    ) {
        self.configDir = configDir
        self.tempDir = tempDir
        self.pidFile = pidFile
        self.restartMode = restartMode
        self.daemon = daemon
    }

    /// Whether OScam runs with a restart watchdog (a parent process supervising the worker).
    public var hasWatchdog: Bool { (restartMode ?? 1) != 0 }

    // MARK: - Parsing

    private static let shortOptions = "aB:bc:d:g:hI:p:r:Sst:uVw:"

    private static let longOptions: [(name: String, option: Character, takesValue: Bool)] = [
        ("config-dir", "c", true), ("temp-dir", "t", true), ("pidfile", "B", true), ("daemon", "b", false),
        ("restart", "r", true), ("debug", "d", true), ("syslog-ident", "I", true), ("show-sensitive", "S", false),
        ("pending-ecm", "p", true), ("wait", "w", true), ("crash-dump", "a", false),
        ("capture-segfaults", "s", false), ("gcollect", "g", true), ("build-info", "V", false), ("help", "h", false),
    ]

    /// Parses a full argv, `argv[0]` included. Every element after `argv[0]` is read as getopt
    /// would, so an interpreter line such as `python3 /opt/oscam -c /etc/oscam` works too (the
    /// script path is a non-option and is skipped).
    public static func parse(_ argv: [String]) -> OScamArguments {
        var result = OScamArguments()
        var index = 1
        while index < argv.count {
            let argument = argv[index]
            index += 1
            if argument == "--" { break }
            if argument.hasPrefix("--") {
                let body = argument.dropFirst(2)
                let name = body.prefix(while: { $0 != "=" })
                let inlineValue = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
                guard let option = longOption(named: name) else { continue }
                if option.takesValue {
                    if let inlineValue {
                        result.apply(option.option, inlineValue)
                    } else if index < argv.count {
                        result.apply(option.option, argv[index])
                        index += 1
                    }
                } else if inlineValue == nil {
                    result.apply(option.option, nil)
                }
                continue
            }
            guard argument.hasPrefix("-"), argument.count > 1 else { continue }
            var cluster = argument.dropFirst()
            while let option = cluster.first {
                cluster = cluster.dropFirst()
                guard option != ":", let takesValue = takesValue(option) else { continue }
                if !takesValue {
                    result.apply(option, nil)
                    continue
                }
                if !cluster.isEmpty {
                    result.apply(option, String(cluster))
                } else if index < argv.count {
                    result.apply(option, argv[index])
                    index += 1
                }
                break
            }
        }
        return result
    }

    /// `nil` for a character that is not an option, else whether the option takes a value.
    private static func takesValue(_ option: Character) -> Bool? {
        guard let position = shortOptions.firstIndex(of: option) else { return nil }
        let next = shortOptions.index(after: position)
        return next < shortOptions.endIndex && shortOptions[next] == ":"
    }

    /// getopt_long's matching: an exact name, else a prefix of exactly one option.
    private static func longOption(named name: Substring) -> (name: String, option: Character, takesValue: Bool)? {
        guard !name.isEmpty else { return nil }
        if let exact = longOptions.first(where: { $0.name == name }) { return exact }
        let candidates = longOptions.filter { $0.name.hasPrefix(name) }
        return candidates.count == 1 ? candidates[0] : nil
    }

    private mutating func apply(_ option: Character, _ value: String?) {
        switch option {
        case "c": configDir = value
        case "t": tempDir = value
        case "B": pidFile = value
        case "r": restartMode = value.map(Self.atoi)
        case "b": daemon = true
        default: break
        }
    }

    /// C's `atoi`: optional leading whitespace and sign, then as many digits as there are; 0 when
    /// there are none. Saturates instead of overflowing.
    static func atoi(_ text: String) -> Int {
        var characters = Substring(text).drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" })
        var sign = 1
        if let first = characters.first, first == "-" || first == "+" {
            sign = first == "-" ? -1 : 1
            characters = characters.dropFirst()
        }
        var value = 0
        for character in characters {
            guard let digit = character.wholeNumberValue, DiscoveryText.isDigit(character) else { break }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return sign > 0 ? Int(Int32.max) : Int(Int32.min) }
            value = sum
        }
        return sign * value
    }
}
