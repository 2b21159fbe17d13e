/// A secret value found in an OScam file, with the rule that found it (for redaction counts).
public struct FoundSecret: Sendable, Equatable, Hashable {
    /// e.g. `oscam.user:pwd`, `oscam.conf:webif.httppwd`, `oscam.conf:newcamd.port_key`.
    public let rule: String
    public let value: Secret
    /// A login name rather than a password or key: scrubbed where it is a whole value, not inside
    /// other strings, since names like `oscam` or `admin` also occur in paths and labels.
    public let isLoginName: Bool

    public init(rule: String, value: Secret, isLoginName: Bool = false) {
        self.rule = rule
        self.value = value
        self.isLoginName = isLoginName
    }
}

/// Which keys of each file hold secrets or card data (OSCAM.md §6.2).
public enum SecretKeys {
    /// Keys whose values are secret wherever they appear.
    static let byFile: [OScamFile: Set<String>] = [
        .user: ["pwd", "hostname"],
        .server: Set([
            "password", "user", "key", "pincode", "boxid", "boxkey", "rsakey", "deskey", "cwpkkey", "aeskeys",
            "ins7e", "ins7e11", "ins2e06", "ins42", "k1_generic", "k1_unique", "tongfang3_deskey",
            "tongfang3_calibsn", "tongfang_boxid", "stbid", "mod1", "mod2", "idird", "cmd0eprov", "key3588",
            "key3460", "key3310", "data50", "mod50", "nuid", "forcepair", "otpcsc", "otacsc", "cwpkcaid",
            "cak63nuid", "cak63cwekey", "stmkeys", "force_ua", "emu_auproviders",
            // Sensitive rather than secret: where the card or the upstream server is.
            "device", "atr", "readnano",
        ]).union((0...16).map { "cwekey\($0)" }),
    ]

    /// oscam.conf keys, qualified by section, whose values are secret.
    ///
    /// `[dvbapi] user` and `[radegast] user` name an oscam.user account; account names are part
    /// of what the snapshot reports, so they are kept out of the typed model but not scrubbed.
    static let conf: Set<String> = [
        "webif.httpuser", "webif.httppwd", "newcamd.key", "camd33.key", "gbox.my_password", "gbox.hostname",
        "pandora.pand_usr", "pandora.pand_pass", "streamrelay.stream_source_auth_user",
        "streamrelay.stream_source_auth_password", "streamrelay.stream_relay_user", "cccam.nodeid",
    ]

    /// Login names (see `FoundSecret.isLoginName`).
    static let loginNames: Set<String> = [
        "oscam.server:user", "oscam.conf:webif.httpuser", "oscam.conf:pandora.pand_usr",
        "oscam.conf:streamrelay.stream_relay_user", "oscam.conf:streamrelay.stream_source_auth_user",
    ]

    /// Any key that names a key, password or secret is treated as one, in any file, so a key
    /// this list does not know (a fork's, a future build's) is still covered.
    static func looksSecret(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        return secretWords.contains { word in
            bytes.count >= word.count && (0...(bytes.count - word.count)).contains { start in
                bytes[start..<(start + word.count)].elementsEqual(word)
            }
        }
    }

    private static let secretWords: [[UInt8]] = ["key", "pwd", "pass", "secret", "token"].map { Array($0.utf8) }
}

extension ConfigDocument {
    /// Every secret value in the file, for the redaction filter: what the typed views leave out,
    /// found again here so that a second, independent wall can scrub it from any payload.
    ///
    /// Flag-like values (`0`, `1`) and empty values carry nothing to hide and are skipped.
    public func secretValues() -> [FoundSecret] {
        var collector = SecretCollector(file: file)
        forEachSection { collector.add($0) }
        return collector.found
    }
}

/// Finds the secret values of one section at a time.
struct SecretCollector {
    let file: OScamFile
    private(set) var found: [FoundSecret] = []
    /// Keys repeat in every record: decide once per key.
    private var looksSecret: [String: Bool] = [:]

    init(file: OScamFile) {
        self.file = file
    }

    mutating func add(_ section: ConfigSection) {
        for setting in section.settings {
            let value = setting.value
            guard Self.mayHoldSecret(value) else {
                continue
            }
            if file == .conf && section.name == "newcamd" && setting.key == "port" {
                for key in ListSyntax.newcamdPortKeys(value) {
                    found.append(FoundSecret(rule: "\(file.rawValue):newcamd.port_key", value: Secret(key)))
                }
                continue
            }
            if let rule = rule(forKey: setting.key, inSection: section.name) {
                found.append(FoundSecret(rule: rule.name, value: Secret(value), isLoginName: rule.isLoginName))
            }
        }
    }

    /// Flag-like values (`0`, `1`) and empty values carry nothing to hide.
    static func mayHoldSecret(_ value: String) -> Bool {
        !value.isEmpty && value != "0" && value != "1"
    }

    /// The redaction rule for the values of `key` in `section`, or nil when they are not secret.
    mutating func rule(forKey key: String, inSection section: String) -> (name: String, isLoginName: Bool)? {
        let named: Bool
        if let known = looksSecret[key] {
            named = known
        } else {
            named = SecretKeys.looksSecret(key)
            looksSecret[key] = named
        }
        let qualified = file == .conf ? "\(section).\(key)" : key
        let listed = file == .conf ? SecretKeys.conf.contains(qualified) : SecretKeys.byFile[file]?.contains(key) ?? false
        guard listed || named else {
            return nil
        }
        let rule = "\(file.rawValue):\(qualified)"
        return (rule, SecretKeys.loginNames.contains(rule))
    }

    /// Adds a secret found outside `add(_:)`, keeping file order.
    mutating func append(_ secret: FoundSecret) {
        found.append(secret)
    }
}
