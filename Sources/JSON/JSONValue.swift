/// A JSON value that keeps what a round trip must not lose: object key order and the exact text
/// of numbers (so `1e-06` in a config.json is written back as `1e-06`, not `1.0e-06`).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's literal text as it appeared (or as produced by `JSONValue.number(_:)`).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order. Keys are unique (the parser rejects duplicates).
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y || (Double(x) != nil && Double(x) == Double(y))
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A number value from an integer.
    public static func int(_ v: Int) -> JSONValue { .number(String(v)) }
    /// A number value from a double (Swift's shortest round-trip text, which is valid JSON);
    /// NaN and infinities, which JSON cannot hold, become `null`.
    public static func double(_ v: Double) -> JSONValue { v.isFinite ? .number("\(v)") : .null }

    // MARK: accessors

    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first(where: { $0.0 == key })?.1
    }

    public var objectMembers: [(String, JSONValue)]? {
        if case let .object(m) = self { return m }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case let .array(a) = self { return a }
        return nil
    }
    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }
    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }
    /// The value as an exact integer, or nil when it is not a number without fraction or exponent
    /// that fits in `Int`.
    public var intValue: Int? {
        guard case let .number(text) = self else { return nil }
        if let i = Int(text) { return i }
        if let d = Double(text), d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }
    public var doubleValue: Double? {
        guard case let .number(text) = self else { return nil }
        return Double(text)
    }

    /// Returns a copy with `key` set to `value` (replacing in place, or appended at the end).
    public func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case var .object(members) = self else { return self }
        if let i = members.firstIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }

    /// Returns a copy without `key`.
    public func removing(_ key: String) -> JSONValue {
        guard case let .object(members) = self else { return self }
        return .object(members.filter { $0.0 != key })
    }
}

