/// A JSON syntax error, with the byte offset where parsing stopped.
public struct JSONError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Byte offset into the parsed text.
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(message) at byte \(offset)" }
}
