/// Serialises `JSONValue` either compactly (`{"a":1}`, as safetensors headers are written) or
/// indented like Python's `json.dumps(indent=2)`, which is how config.json files are written.
///
/// The text is built as UTF-8 bytes (`compactBytes`, `prettyBytes`: what files are written
/// from); `compact` and `pretty` return the same text as a String.
public enum JSONWriter {
    public static func compact(_ v: JSONValue) -> String {
        String(decoding: compactBytes(v), as: UTF8.self)
    }

    public static func pretty(_ v: JSONValue, indent: Int = 2) -> String {
        String(decoding: prettyBytes(v, indent: indent), as: UTF8.self)
    }

    /// `compact(v)` as UTF-8 bytes.
    public static func compactBytes(_ v: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(v, into: &out, indent: nil, level: 0)
        return out
    }

    /// `pretty(v, indent:)` as UTF-8 bytes (with the final newline).
    public static func prettyBytes(_ v: JSONValue, indent: Int = 2) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(v, into: &out, indent: indent, level: 0)
        out.append(0x0A)
        return out
    }

    /// The bytes `compact(v)` would have, without building them.
    public static func compactLength(_ v: JSONValue) -> Int {
        switch v {
        case .null: return 4
        case let .bool(b): return b ? 4 : 5
        case let .number(text): return text.utf8.count
        case let .string(s): return stringLength(s)
        case let .array(items): return 2 + max(0, items.count - 1) + items.reduce(0) { $0 + compactLength($1) }
        case let .object(members):
            return 2 + max(0, members.count - 1) + members.reduce(0) { $0 + stringLength($1.0) + 1 + compactLength($1.1) }
        }
    }

    private static func write(_ v: JSONValue, into out: inout [UInt8], indent: Int?, level: Int) {
        switch v {
        case .null: append("null", &out)
        case let .bool(b): append(b ? "true" : "false", &out)
        case let .number(text): append(text, &out)
        case let .string(s): writeString(s, into: &out)
        case let .array(items):
            if items.isEmpty { out.append(0x5B); out.append(0x5D); return }
            out.append(0x5B)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(0x2C) }
                newline(&out, indent, level + 1)
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out.append(0x5D)
        case let .object(members):
            if members.isEmpty { out.append(0x7B); out.append(0x7D); return }
            out.append(0x7B)
            for (i, (k, item)) in members.enumerated() {
                if i > 0 { out.append(0x2C) }
                newline(&out, indent, level + 1)
                writeString(k, into: &out)
                out.append(0x3A)
                if indent != nil { out.append(0x20) }
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out.append(0x7D)
        }
    }

    @inline(__always)
    private static func append(_ s: String, _ out: inout [UInt8]) {
        var s = s
        s.withUTF8 { out.append(contentsOf: $0) }
    }

    private static func newline(_ out: inout [UInt8], _ indent: Int?, _ level: Int) {
        guard let indent else { return }
        out.append(0x0A)
        out.append(contentsOf: repeatElement(0x20, count: indent * level))
    }

    private static func needsEscape(_ u: UInt8) -> Bool { u < 0x20 || u == 0x22 || u == 0x5C }

    private static func plain(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { b in !b.contains(where: needsEscape) }
    }

    /// Length of the literal `writeString` writes.
    private static func stringLength(_ s: String) -> Int {
        if plain(s) { return s.utf8.count + 2 }
        var out: [UInt8] = []
        writeString(s, into: &out)
        return out.count
    }

    /// Writes a JSON string literal; non-ASCII is kept as UTF-8 (not `\u` escaped).
    public static func writeString(_ s: String, into out: inout String) {
        var b: [UInt8] = []
        writeString(s, into: &b)
        out += String(decoding: b, as: UTF8.self)
    }

    /// Writes a JSON string literal as UTF-8 bytes.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        var s = s
        s.withUTF8 { b in
            // Runs with nothing to escape are copied whole.
            var start = 0
            for i in 0..<b.count where needsEscape(b[i]) {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
                start = i + 1
                switch b[i] {
                case 0x22: out.append(0x5C); out.append(0x22)
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x0A: out.append(0x5C); out.append(0x6E)
                case 0x0D: out.append(0x5C); out.append(0x72)
                case 0x09: out.append(0x5C); out.append(0x74)
                case 0x08: out.append(0x5C); out.append(0x62)
                case 0x0C: out.append(0x5C); out.append(0x66)
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b[i] >> 4)], hex[Int(b[i] & 15)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<b.count]))
        }
        out.append(0x22)
    }
}
