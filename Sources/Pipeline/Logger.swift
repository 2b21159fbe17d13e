#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Where log lines go. The real one writes to stderr (systemd's journal takes it); tests keep
/// the lines in memory to assert on them.
public protocol LogOutput: Sendable {
    func write(_ line: String)
}

public struct StandardErrorOutput: LogOutput {
    public init() {}

    public func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(2, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written <= 0 {
                    return
                }
                offset += written
            }
        }
    }
}

/// Keeps every line, for tests.
public final class MemoryLogOutput: LogOutput {
    private let storage = Mutex<[String]>([])

    public init() {}

    public func write(_ line: String) {
        storage.withLock { $0.append(line) }
    }

    public var lines: [String] {
        storage.withLock { $0 }
    }
}

/// One line per event: `level=info msg="..." key=value`, keys dotted by convention.
///
/// Values are quoted when needed and control characters escaped, so a hostile file name cannot
/// forge a log line. Never pass a secret: there is no place in this type that would hide it, on
/// purpose — secrets never reach a logger.
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warning, error

        public var name: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }

        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.name == name || (name == "warn" && $0 == .warning) }) else {
                return nil
            }
            self = level
        }

        public static func < (lhs: Level, rhs: Level) -> Bool {
            lhs.rawValue < rhs.rawValue
        }
    }

    public let level: Level
    private let output: any LogOutput

    public init(level: Level = .info, output: any LogOutput = StandardErrorOutput()) {
        self.level = level
        self.output = output
    }

    public func log(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        guard level >= self.level else {
            return
        }
        var line = "level=\(level.name) msg=\(Self.quoted(message))"
        for (key, value) in fields {
            line += " \(key)=\(Self.quoted(value))"
        }
        output.write(line)
    }

    public func debug(_ message: String, _ fields: [(String, String)] = []) { log(.debug, message, fields) }
    public func info(_ message: String, _ fields: [(String, String)] = []) { log(.info, message, fields) }
    public func warning(_ message: String, _ fields: [(String, String)] = []) { log(.warning, message, fields) }
    public func error(_ message: String, _ fields: [(String, String)] = []) { log(.error, message, fields) }

    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value != 0x7F && scalar != "\"" && scalar != "=" && scalar != "\\"
        }
        if plain {
            return value
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
