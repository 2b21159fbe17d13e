import Collectors
import OScam
import Pipeline

/// Every secret value the agent knows on this host, for the redaction filter: what the OScam
/// files hold (OSCAM.md §6.2) and, once registered, the agent's own token and key.
struct SecretInventory {
    /// Scrubbed wherever they occur.
    var anywhere: [(rule: String, value: String)] = []
    /// Scrubbed where a string is exactly them.
    var wholeValue: [(rule: String, value: String)] = []

    static func from(files: [String: [OScamFile: LoadedFile]], extra: [(rule: String, value: String)] = [])
        -> SecretInventory {
        var inventory = SecretInventory(anywhere: extra)
        for instanceFiles in files.values {
            for loaded in instanceFiles.values {
                guard case .success(let value) = loaded.result else {
                    continue
                }
                for found in value.analysis.secrets {
                    if found.isLoginName {
                        inventory.wholeValue.append((found.rule, found.value.reveal()))
                    } else {
                        inventory.anywhere.append((found.rule, found.value.reveal()))
                    }
                }
            }
        }
        return inventory
    }

    var all: [(rule: String, value: String)] {
        anywhere + wholeValue
    }
}
