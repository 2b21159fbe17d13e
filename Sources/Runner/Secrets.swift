import Collectors
import OScam
import Pipeline

/// Every secret value the agent knows on this host, for the redaction filter: what the OScam
/// files hold (OSCAM.md §6.2) and, once registered, the agent's own token and key.
enum SecretInventory {
    static func from(files: [String: [OScamFile: LoadedFile]], extra: [(rule: String, value: String)] = [])
        -> [(rule: String, value: String)] {
        var secrets = extra
        for instanceFiles in files.values {
            for loaded in instanceFiles.values {
                guard case .success(let value) = loaded.result else {
                    continue
                }
                for found in value.document.secretValues() {
                    secrets.append((found.rule, found.value.reveal()))
                }
            }
        }
        return secrets
    }
}
