/// One thing wrong with an OScam file, as the operator should read it: `path:line: message`.
///
/// Messages never contain a value from the file: any line might hold a password.
public struct ConfigProblem: Sendable, Equatable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Equatable, Hashable {
        /// OScam reads the file, but not the way its author probably meant (an unknown section,
        /// a `;` "comment", a duplicate key).
        case warning
        /// OScam loses data or the agent cannot edit the file safely (a BOM before the first
        /// header, a line longer than OScam's buffer, an invalid list).
        case error
    }

    public let path: String
    /// 1-based line number; 0 when the problem concerns the whole file.
    public let line: Int
    public let severity: Severity
    public let message: String

    public init(path: String, line: Int, severity: Severity, message: String) {
        self.path = path
        self.line = line
        self.severity = severity
        self.message = message
    }

    public var description: String {
        line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)"
    }
}

/// An edit the document model refused. Nothing was changed when this is thrown.
///
/// Like `ConfigProblem`, the message never repeats a value: an edit's value is often a password.
public struct ConfigEditError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        case invalidKey = "invalid_key"
        case invalidSection = "invalid_section"
        case invalidUser = "invalid_user"
        case invalidValue = "invalid_value"
        case wrongFile = "wrong_file"
        case tooManyEdits = "too_many_edits"
        case unsafeFile = "unsafe_file"
        case wouldNotParse = "would_not_parse"
    }

    public let code: Code
    public let path: String
    /// Index of the offending edit in the list given to `apply`, when there is one.
    public let editIndex: Int?
    public let message: String

    public init(code: Code, path: String, editIndex: Int? = nil, message: String) {
        self.code = code
        self.path = path
        self.editIndex = editIndex
        self.message = message
    }

    public var description: String {
        if let editIndex {
            return "\(path): edit \(editIndex + 1): \(message)"
        }
        return "\(path): \(message)"
    }
}
