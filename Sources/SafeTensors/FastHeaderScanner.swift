import JSON

/// A fast path for the common shape of safetensors headers and index files: ASCII names without
/// escapes, plain integers, the three known fields. It builds `TensorInfo`s directly, with no
/// intermediate JSON tree, which matters when a checkpoint has ~90,000 entries (DeepSeek-V3:
/// 163 headers and an 8.9 MB index).
///
/// It accepts only what the strict path (`JSONParser` + the checks in `SafeTensorsHeader`)
/// accepts, with the same result; on anything else — escapes, non-ASCII, floats, unknown or
/// repeated fields, duplicate names, any invalid entry — it returns nil and the caller takes the
/// strict path, which produces the precise error.
struct FastHeaderScanner {
    private let b: UnsafeBufferPointer<UInt8>
    private var pos = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        b = bytes.bindMemory(to: UInt8.self)
    }

    /// Tensors in document order, `__metadata__`, and the name → position map; nil → strict path.
    static func header(_ json: UnsafeRawBufferPointer) -> (tensors: [TensorInfo], metadata: [(String, String)]?)? {
        var s = FastHeaderScanner(json)
        return s.scanHeader()
    }

    /// `weight_map` pairs and `metadata` members of an index file; nil → strict path.
    static func index(_ json: UnsafeRawBufferPointer) -> (weightMap: [(String, String)], metadata: [(String, JSONValue)])? {
        var s = FastHeaderScanner(json)
        return s.scanIndex()
    }

    // MARK: lexing

    private mutating func ws() {
        while pos < b.count, b[pos] == 0x20 || b[pos] == 0x0A || b[pos] == 0x0D || b[pos] == 0x09 { pos += 1 }
    }

    private mutating func eat(_ c: UInt8) -> Bool {
        ws()
        guard pos < b.count, b[pos] == c else { return false }
        pos += 1
        return true
    }

    /// A string of printable ASCII without escapes: its byte range (excluding quotes).
    private mutating func simpleString() -> Range<Int>? {
        ws()
        guard pos < b.count, b[pos] == 0x22 else { return nil }
        let start = pos + 1
        var i = start
        while i < b.count {
            let c = b[i]
            if c == 0x22 { pos = i + 1; return start..<i }
            if c < 0x20 || c >= 0x7F || c == 0x5C { return nil }
            i += 1
        }
        return nil
    }

    private func text(_ r: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)
    }

    private func equals(_ r: Range<Int>, _ s: StaticString) -> Bool {
        guard r.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for k in 0..<r.count where b[r.lowerBound + k] != p[k] { return false }
        return true
    }

    /// A non-negative integer without sign, fraction, exponent or leading zero, below 10^18.
    private mutating func plainInt() -> Int? {
        ws()
        let start = pos
        var v = 0
        while pos < b.count, b[pos] >= 0x30, b[pos] <= 0x39 {
            if pos - start >= 18 { return nil }  // leave long numbers to the strict path (no overflow)
            v = v * 10 + Int(b[pos] - 0x30)
            pos += 1
        }
        let n = pos - start
        if n == 0 || n > 18 || (n > 1 && b[start] == 0x30) { return nil }
        if pos < b.count, b[pos] == 0x2E || b[pos] == 0x65 || b[pos] == 0x45 { return nil }
        return v
    }

    private mutating func intArray() -> [Int]? {
        guard eat(0x5B) else { return nil }
        var out: [Int] = []
        if eat(0x5D) { return out }
        while true {
            guard let v = plainInt() else { return nil }
            out.append(v)
            if eat(0x2C) { continue }
            if eat(0x5D) { return out }
            return nil
        }
    }

    private static let dtypes: [(StaticString, DType)] = DType.allCases.map { d in
        switch d {
        case .bool: return ("BOOL", d)
        case .u8: return ("U8", d)
        case .i8: return ("I8", d)
        case .i16: return ("I16", d)
        case .u16: return ("U16", d)
        case .f16: return ("F16", d)
        case .bf16: return ("BF16", d)
        case .i32: return ("I32", d)
        case .u32: return ("U32", d)
        case .f32: return ("F32", d)
        case .f64: return ("F64", d)
        case .i64: return ("I64", d)
        case .u64: return ("U64", d)
        case .c64: return ("C64", d)
        case .f8e4m3: return ("F8_E4M3", d)
        case .f8e5m2: return ("F8_E5M2", d)
        case .f8e4m3fnuz: return ("F8_E4M3FNUZ", d)
        case .f8e5m2fnuz: return ("F8_E5M2FNUZ", d)
        case .f8e8m0: return ("F8_E8M0", d)
        case .f6e2m3: return ("F6_E2M3", d)
        case .f6e3m2: return ("F6_E3M2", d)
        case .f4: return ("F4", d)
        }
    }

    // MARK: header

    private mutating func scanHeader() -> (tensors: [TensorInfo], metadata: [(String, String)]?)? {
        guard eat(0x7B) else { return nil }
        var tensors: [TensorInfo] = []
        var metadata: [(String, String)]?
        if eat(0x7D) { ws(); return pos == b.count ? (tensors, nil) : nil }
        while true {
            guard let key = simpleString(), eat(0x3A) else { return nil }
            if equals(key, "__metadata__") {
                guard metadata == nil, let m = stringMap() else { return nil }
                metadata = m
            } else {
                guard let t = entry(name: text(key)) else { return nil }
                tensors.append(t)
            }
            if eat(0x2C) { continue }
            if eat(0x7D) { break }
            return nil
        }
        ws()
        return pos == b.count ? (tensors, metadata) : nil
    }

    /// `{"k": "v", ...}` of simple strings with unique keys.
    private mutating func stringMap() -> [(String, String)]? {
        guard eat(0x7B) else { return nil }
        var out: [(String, String)] = []
        if eat(0x7D) { return out }
        var seen = Set<String>()
        while true {
            guard let k = simpleString(), eat(0x3A), let v = simpleString() else { return nil }
            let key = text(k)
            guard seen.insert(key).inserted else { return nil }
            out.append((key, text(v)))
            if eat(0x2C) { continue }
            if eat(0x7D) { return out }
            return nil
        }
    }

    /// One tensor entry, fully validated (dtype known, whole byte size equal to the range).
    private mutating func entry(name: String) -> TensorInfo? {
        guard eat(0x7B) else { return nil }
        var dtype: DType?
        var shape: [Int]?
        var offsets: [Int]?
        repeat {
            guard let k = simpleString(), eat(0x3A) else { return nil }
            if equals(k, "dtype") {
                guard dtype == nil, let v = simpleString() else { return nil }
                guard let d = FastHeaderScanner.dtypes.first(where: { equals(v, $0.0) })?.1 else { return nil }
                dtype = d
            } else if equals(k, "shape") {
                guard shape == nil, let v = intArray() else { return nil }
                shape = v
            } else if equals(k, "data_offsets") {
                guard offsets == nil, let v = intArray(), v.count == 2 else { return nil }
                offsets = v
            } else {
                return nil
            }
        } while eat(0x2C)
        guard eat(0x7D), let dtype, let shape, let offsets else { return nil }
        var elements = 1
        for n in shape {
            let (m, o) = elements.multipliedReportingOverflow(by: n)
            if o { return nil }
            elements = m
        }
        let begin = offsets[0], end = offsets[1]
        guard end >= begin, let needed = dtype.byteCount(elements: elements), needed == end - begin else { return nil }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    // MARK: index

    private mutating func scanIndex() -> (weightMap: [(String, String)], metadata: [(String, JSONValue)])? {
        guard eat(0x7B) else { return nil }
        var weightMap: [(String, String)]?
        var metadata: [(String, JSONValue)]?
        repeat {
            guard let k = simpleString(), eat(0x3A) else { return nil }
            if equals(k, "weight_map") {
                guard weightMap == nil, let m = fileMap() else { return nil }
                weightMap = m
            } else if equals(k, "metadata") {
                guard metadata == nil, let m = scalarMap() else { return nil }
                metadata = m
            } else {
                return nil
            }
        } while eat(0x2C)
        guard eat(0x7D) else { return nil }
        ws()
        guard pos == b.count, let weightMap else { return nil }
        return (weightMap, metadata ?? [])
    }

    /// The weight map; file names repeat, so equal consecutive names share one String. Duplicate
    /// tensor names are left to the caller's check.
    private mutating func fileMap() -> [(String, String)]? {
        guard eat(0x7B) else { return nil }
        var out: [(String, String)] = []
        if eat(0x7D) { return out }
        var lastRange = 0..<0
        var lastFile = ""
        while true {
            guard let k = simpleString(), eat(0x3A), let v = simpleString() else { return nil }
            if !(v.count == lastRange.count && b[v].elementsEqual(b[lastRange])) {
                lastFile = text(v)
                lastRange = v
            }
            out.append((text(k), lastFile))
            if eat(0x2C) { continue }
            if eat(0x7D) { return out }
            return nil
        }
    }

    /// `{"k": "v" | integer, ...}` with unique keys.
    private mutating func scalarMap() -> [(String, JSONValue)]? {
        guard eat(0x7B) else { return nil }
        var out: [(String, JSONValue)] = []
        if eat(0x7D) { return out }
        var seen = Set<String>()
        while true {
            guard let k = simpleString(), eat(0x3A) else { return nil }
            let key = text(k)
            guard seen.insert(key).inserted else { return nil }
            ws()
            if pos < b.count, b[pos] == 0x22 {
                guard let v = simpleString() else { return nil }
                out.append((key, .string(text(v))))
            } else {
                guard let v = plainInt() else { return nil }
                out.append((key, .int(v)))
            }
            if eat(0x2C) { continue }
            if eat(0x7D) { return out }
            return nil
        }
    }
}
