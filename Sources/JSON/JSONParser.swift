/// A strict RFC 8259 JSON parser over raw bytes.
///
/// Strict where a checkpoint header must be: invalid UTF-8, unescaped control characters,
/// trailing data, leading zeros, lone surrogates and duplicate object keys are errors, each
/// reported with its byte offset. Nesting is limited (default 64) so hostile input cannot
/// exhaust the stack.
public struct JSONParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        var p = JSONParser(bytes: bytes.bindMemory(to: UInt8.self), maxDepth: maxDepth)
        p.skipWhitespace()
        let v = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos != p.bytes.count { throw JSONError(offset: p.pos, message: "trailing data after the JSON value") }
        return v
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        let r: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { buf in
            do throws(JSONError) { return .success(try parse(buf, maxDepth: maxDepth)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var pos = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func fail(_ message: String, at offset: Int? = nil) -> JSONError {
        JSONError(offset: offset ?? pos, message: message)
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard pos < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character '\(printable(bytes[pos]))'")
        }
    }

    private func printable(_ c: UInt8) -> String {
        (0x20..<0x7F).contains(c) ? String(UnicodeScalar(c)) : "\\x" + String(c, radix: 16)
    }

    private mutating func expectLiteral(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw fail("unexpected end of JSON") }
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        for i in 0..<n where bytes[pos + i] != w[i] { throw fail("invalid literal") }
        pos += n
    }

    private mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        pos += 1
        var members: [(String, JSONValue)] = []
        var seen = Set<String>()
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of JSON inside an object") }
            guard bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = pos
            let key = try parseString()
            if !seen.insert(key).inserted { throw fail("duplicate key \"\(key)\"", at: keyOffset) }
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':' after key") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append((key, value))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of JSON inside an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw fail("expected ',' or '}' in object")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of JSON inside an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']' in array")
        }
    }

    private mutating func parseNumber() throws(JSONError) -> String {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count, isDigit(bytes[pos]) { throw fail("leading zero in number") }
        } else {
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number: digit expected after '.'") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number: digit expected in exponent") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }

    @inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private mutating func parseString() throws(JSONError) -> String {
        let start = pos
        pos += 1
        // Fast path: plain ASCII without escapes.
        var i = pos
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[pos..<i]), as: UTF8.self)
                pos = i + 1
                return s
            }
            if c == UInt8(ascii: "\\") || c >= 0x80 || c < 0x20 { break }
            i += 1
        }
        var out: [UInt8] = Array(UnsafeBufferPointer(rebasing: bytes[pos..<i]))
        pos = i
        while true {
            guard pos < bytes.count else { throw fail("unterminated string", at: start) }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; break }
            if c < 0x20 { throw fail("unescaped control character in string") }
            if c == UInt8(ascii: "\\") {
                pos += 1
                guard pos < bytes.count else { throw fail("unterminated string", at: start) }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    // Surrogate errors are reported at the backslash of the escape that has no partner.
                    let escapeStart = pos - 2
                    var scalar = try parseHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("lone UTF-16 surrogate in \\u escape", at: escapeStart)
                        }
                        pos += 2
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low < 0xE000 else {
                            throw fail("lone UTF-16 surrogate in \\u escape (not followed by a low surrogate)", at: escapeStart)
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("lone UTF-16 surrogate in \\u escape", at: escapeStart)
                    }
                    out.append(contentsOf: Array(String(UnicodeScalar(scalar)!).utf8))
                default: throw fail("invalid escape '\\\(printable(e))'", at: pos - 2)
                }
                continue
            }
            if c < 0x80 { out.append(c); pos += 1; continue }
            let n = try validUTF8Sequence(at: pos)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[pos..<pos + n]))
            pos += n
        }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func parseHex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// Length of the well-formed UTF-8 sequence starting at `i` (RFC 3629: no overlongs, no
    /// surrogates, nothing above U+10FFFF), or an error naming the offset.
    private func validUTF8Sequence(at i: Int) throws(JSONError) -> Int {
        let b0 = bytes[i]
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            i + k < bytes.count && bytes[i + k] >= lo && bytes[i + k] <= hi
        }
        switch b0 {
        case 0xC2...0xDF: if cont(1) { return 2 }
        case 0xE0: if cont(1, 0xA0, 0xBF) && cont(2) { return 3 }
        case 0xE1...0xEC, 0xEE...0xEF: if cont(1) && cont(2) { return 3 }
        case 0xED: if cont(1, 0x80, 0x9F) && cont(2) { return 3 }
        case 0xF0: if cont(1, 0x90, 0xBF) && cont(2) && cont(3) { return 4 }
        case 0xF1...0xF3: if cont(1) && cont(2) && cont(3) { return 4 }
        case 0xF4: if cont(1, 0x80, 0x8F) && cont(2) && cont(3) { return 4 }
        default: break
        }
        throw fail("invalid UTF-8", at: i)
    }
}
