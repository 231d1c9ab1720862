import Diagnostics
import JSON
import SystemIO

/// A validated safetensors header.
///
/// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping tensor
/// names to `{"dtype", "shape", "data_offsets": [begin, end]}` plus an optional `__metadata__`
/// string→string map), then the data buffer. Validation follows the reference implementation:
/// N ≤ 100,000,000 and within the file, strict JSON, known dtypes, byte ranges equal to
/// shape × dtype size, ranges that tile the data buffer exactly (no overlap, no hole, nothing
/// past the end, nothing left over).
public struct SafeTensorsHeader: Sendable {
    /// The largest header the reference implementation accepts.
    public static let maxHeaderSize = 100_000_000
    /// The deepest JSON nesting the reference's parser accepts (serde_json's recursion limit).
    public static let maxJSONDepth = 127

    /// Tensors in data order (ascending offsets).
    public var tensors: [TensorInfo]
    /// `__metadata__` entries in document order, or nil when absent.
    public var metadata: [(String, String)]?
    /// Byte offset of the data buffer in the file: 8 + N.
    public var dataStart: Int
    /// Total file size the header describes: dataStart + data buffer size.
    public var fileSize: Int
    private var indexByName: [String: Int]

    public func info(_ name: String) -> TensorInfo? { indexByName[name].map { tensors[$0] } }
    public var tensorNames: [String] { tensors.map(\.name) }

    /// Reads and validates the header of the file at `path` (reads only the header bytes).
    public static func read(path: String, displayName: String? = nil) throws -> SafeTensorsHeader {
        let name = displayName ?? path
        do {
            let (fd, status) = try Sys.openForReading(path)
            defer { Sys.close(fd) }
            let size = status.size
            if size < 8 {
                throw SafeTensorsError(.truncated, file: name, offset: 0, "file is \(size) bytes, too short to hold the 8-byte header length")
            }
            var lengthBytes: UInt64 = 0
            try Sys.pread(fd, path: path, into: &lengthBytes, count: 8, offset: 0)
            let n = try checkedHeaderLength(UInt64(littleEndian: lengthBytes), fileSize: size, file: name)
            var json = [UInt8](repeating: 0, count: n)
            try json.withUnsafeMutableBytes { (b) throws in
                if n > 0 { try Sys.pread(fd, path: path, into: b.baseAddress!, count: n, offset: 8) }
            }
            return try json.withUnsafeBytes { (b) throws in
                try parse(json: b, fileSize: size, file: name)
            }
        } catch let e as SafeTensorsError {
            throw e
        } catch let e as any DiagnosticError {
            throw SafeTensorsError.io(e)
        } catch {
            throw SafeTensorsError(.io, file: name, "\(error)")
        }
    }

    /// Parses a complete file image (8-byte length, header, data) held in memory.
    public static func parse(file bytes: UnsafeRawBufferPointer, file name: String = "<memory>") throws -> SafeTensorsHeader {
        if bytes.count < 8 {
            throw SafeTensorsError(.truncated, file: name, offset: 0, "file is \(bytes.count) bytes, too short to hold the 8-byte header length")
        }
        let raw = bytes.loadUnaligned(as: UInt64.self)
        let n = try checkedHeaderLength(UInt64(littleEndian: raw), fileSize: bytes.count, file: name)
        return try parse(json: UnsafeRawBufferPointer(rebasing: bytes[8..<8 + n]), fileSize: bytes.count, file: name)
    }

    static func checkedHeaderLength(_ n: UInt64, fileSize: Int, file: String) throws -> Int {
        if n > UInt64(maxHeaderSize) {
            throw SafeTensorsError(.headerTooLarge, file: file, offset: 0, "header length \(n) exceeds the 100 MB limit")
        }
        if Int(n) + 8 > fileSize {
            throw SafeTensorsError(.headerOutOfBounds, file: file, offset: 0, "header length \(n) runs past the end of the \(fileSize)-byte file (truncated?)")
        }
        return Int(n)
    }

    /// Parses and validates the JSON header bytes of a file of `fileSize` bytes.
    public static func parse(json: UnsafeRawBufferPointer, fileSize: Int, file: String) throws -> SafeTensorsHeader {
        let dataStart = 8 + json.count
        // Like the reference (safetensors 0.8, serde_json), JSON whitespace may precede the object.
        let first = json.firstIndex { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        if first.map({ json[$0] }) != UInt8(ascii: "{") {
            throw SafeTensorsError(.invalidHeader, file: file, offset: 8 + (first ?? json.count), "header does not start with '{'")
        }
        var tensors: [TensorInfo] = []
        var metadata: [(String, String)]?
        if let fast = FastHeaderScanner.header(json),
           let header = try validateLayout(tensors: fast.tensors, metadata: fast.metadata, dataStart: dataStart, fileSize: fileSize, file: file) {
            return header
        }
        (tensors, metadata) = try strictEntries(json: json, file: file)
        return try validateLayout(tensors: tensors, metadata: metadata, dataStart: dataStart, fileSize: fileSize, file: file)!
    }

    /// The strict path: parse with `JSONParser` and check every entry, in document order.
    static func strictEntries(json: UnsafeRawBufferPointer, file: String) throws -> ([TensorInfo], [(String, String)]?) {
        let value: JSONValue
        do {
            // serde_json's recursion limit: 127 levels parse, 128 do not (unknown fields may nest).
            value = try JSONParser.parse(json, maxDepth: maxJSONDepth)
        } catch {
            throw SafeTensorsError(.invalidJSON, file: file, offset: 8 + error.byteOffset, "invalid header JSON: \(error.message)")
        }
        guard let members = value.objectMembers else {
            throw SafeTensorsError(.invalidHeader, file: file, offset: 8, "header is not a JSON object")
        }
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(members.count)
        var metadata: [(String, String)]?
        for (name, entry) in members {
            if name == "__metadata__" {
                // The reference (an Option in serde) reads a null __metadata__ as absent.
                if entry == .null { continue }
                guard let m = entry.objectMembers else {
                    throw SafeTensorsError(.invalidMetadata, file: file, "__metadata__ is not an object of strings")
                }
                var pairs: [(String, String)] = []
                for (k, v) in m {
                    guard let s = v.stringValue else {
                        throw SafeTensorsError(.invalidMetadata, file: file, "__metadata__ entry '\(k)' is not a string")
                    }
                    pairs.append((k, s))
                }
                metadata = pairs
                continue
            }
            tensors.append(try tensorInfo(name: name, entry: entry, file: file))
        }
        return (tensors, metadata)
    }

    /// Checks that the entries tile the data buffer and builds the header; nil when two entries
    /// share a name (only the fast path can produce that; the strict parser rejects duplicate keys).
    static func validateLayout(tensors input: [TensorInfo], metadata: [(String, String)]?, dataStart: Int, fileSize: Int, file: String) throws -> SafeTensorsHeader? {
        var tensors = input
        let dataSize = fileSize - dataStart
        tensors.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        var index: [String: Int] = [:]
        index.reserveCapacity(tensors.count)
        for (i, t) in tensors.enumerated() where index.updateValue(i, forKey: t.name) != nil { return nil }
        var expected = 0
        for t in tensors {
            let r = t.dataOffsets
            if r.lowerBound < expected {
                throw SafeTensorsError(.overlap, file: file, tensor: t.name, offset: dataStart + r.lowerBound,
                    "data_offsets [\(r.lowerBound), \(r.upperBound)] overlap the previous tensor, which ends at \(expected)")
            }
            if r.lowerBound > expected {
                throw SafeTensorsError(.hole, file: file, tensor: t.name, offset: dataStart + expected,
                    "data_offsets [\(r.lowerBound), \(r.upperBound)] leave a hole of \(r.lowerBound - expected) bytes after offset \(expected)")
            }
            if r.upperBound > dataSize {
                throw SafeTensorsError(.offsetOutOfBounds, file: file, tensor: t.name, offset: dataStart + r.lowerBound,
                    "data_offsets [\(r.lowerBound), \(r.upperBound)] run past the end of the data buffer (\(dataSize) bytes; file truncated?)")
            }
            expected = r.upperBound
        }
        if expected != dataSize {
            throw SafeTensorsError(.notFullyCovered, file: file, offset: dataStart + expected,
                "\(dataSize - expected) bytes after the last tensor are not covered by any tensor")
        }
        return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataStart: dataStart, fileSize: fileSize, indexByName: index)
    }

    private static func tensorInfo(name: String, entry: JSONValue, file: String) throws -> TensorInfo {
        guard let fields = entry.objectMembers else {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "entry is not an object")
        }
        var dtypeText: String?
        var shapeValue: [JSONValue]?
        var offsetsValue: [JSONValue]?
        for (k, v) in fields {
            switch k {
            case "dtype":
                guard let s = v.stringValue else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "dtype is not a string") }
                dtypeText = s
            case "shape":
                guard let a = v.arrayValue else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "shape is not an array") }
                shapeValue = a
            case "data_offsets":
                guard let a = v.arrayValue else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "data_offsets is not an array") }
                offsetsValue = a
            default:
                // Like the reference (serde without deny_unknown_fields): other fields are ignored,
                // whatever JSON they hold; the writer does not carry them over.
                continue
            }
        }
        guard let dtypeText else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "missing dtype") }
        guard let shapeValue else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "missing shape") }
        guard let offsetsValue else { throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "missing data_offsets") }
        guard let dtype = DType(rawValue: dtypeText) else {
            throw SafeTensorsError(.unknownDType, file: file, tensor: name, "unknown dtype '\(dtypeText)'")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeValue.count)
        var elements = 1
        var overflow = false
        for d in shapeValue {
            guard let n = d.intValue, n >= 0, d.stringValueIsPlainInteger else {
                if case let .number(t) = d, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    // A valid usize for the reference, which accepts it when another dimension is 0.
                    throw SafeTensorsError(.invalidShape, file: file, tensor: name, "shape entry \(t) is larger than dsconvert supports (\(Int.max))")
                }
                throw SafeTensorsError(.invalidShape, file: file, tensor: name, "shape entries must be non-negative integers, got \(JSONWriter.compact(.array(shapeValue)))")
            }
            shape.append(n)
            if !overflow {
                let (m, o) = elements.multipliedReportingOverflow(by: n)
                elements = m
                overflow = o
            }
        }
        guard offsetsValue.count == 2, let b = offsetsValue[0].intValue, let e = offsetsValue[1].intValue, b >= 0, e >= b,
              offsetsValue[0].stringValueIsPlainInteger, offsetsValue[1].stringValueIsPlainInteger else {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "data_offsets must be [begin, end] with 0 <= begin <= end, got \(JSONWriter.compact(.array(offsetsValue)))")
        }
        guard !overflow, let needed = dtype.byteCount(elements: elements) else {
            throw SafeTensorsError(.invalidShape, file: file, tensor: name, "\(dtype.rawValue) \(JSONWriter.compact(.array(shapeValue))) does not have a whole, representable byte size")
        }
        if needed != e - b {
            throw SafeTensorsError(.sizeMismatch, file: file, tensor: name,
                "data_offsets [\(b), \(e)] hold \(e - b) bytes but \(dtype.rawValue) \(JSONWriter.compact(.array(shapeValue))) needs \(needed)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: b..<e)
    }
}

extension JSONValue {
    /// True for a number written as a plain non-negative integer: digits only, no sign, no
    /// fraction, no exponent. The reference implementation reads shapes and offsets as `usize`
    /// through serde_json, which turns `-0` into the float -0.0 and rejects it, so `-0` must not
    /// pass here either.
    var stringValueIsPlainInteger: Bool {
        if case let .number(t) = self { return !t.isEmpty && t.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && Int(t) != nil }
        return false
    }
}
