/// A value that must never be printed, logged or sent: passwords, keys, card data.
///
/// `description` and `debugDescription` always give `<redacted>`, so string interpolation into a
/// log line or an error cannot leak it. The value is reachable only through `reveal()`, which
/// makes every use greppable.
public struct Secret: Sendable, Equatable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    private let value: String

    public init(_ value: String) {
        self.value = value
    }

    /// The secret itself. Call only where the value is used for its purpose (authentication,
    /// building the redaction list), never to print it.
    public func reveal() -> String {
        value
    }

    public var isEmpty: Bool {
        value.isEmpty
    }

    public var description: String {
        "<redacted>"
    }

    public var debugDescription: String {
        "<redacted>"
    }
}
