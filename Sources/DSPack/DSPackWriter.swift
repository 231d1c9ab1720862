import JSON
import SystemIO
import Tensors

/// Writes a .dspack (Formats/dspack.md) in one pass: the data region streams out tensor by
/// tensor, each in as many pieces as the caller likes, with its XXH3-64 computed on the way; the
/// header (whose size depends only on names and metadata, so every offset is known up front) is
/// written last, over the zeros reserved for it, with its SHA-256. The file goes to a temporary
/// and appears under its final name only in `finish()`.
public final class DSPackWriter: TensorFileWriter {
    /// A tensor to write, with its descriptive role (§4).
    public struct Tensor: Sendable {
        public var spec: TensorSpec
        public var role: DSPackLayout.Role
        public init(_ spec: TensorSpec, role: DSPackLayout.Role = .unspecified) {
            self.spec = spec
            self.role = role
        }
    }

    public let path: String
    public let specs: [TensorSpec]
    public let fileSize: Int
    /// Every entry, offsets assigned; checksums filled in as data is written.
    public private(set) var entries: [DSPackEntry]
    private let files: [(String, [UInt8])]
    private let stringPool: [UInt8]
    private let metadata: [UInt8]
    private let dataOffset: Int
    private let dataSize: Int
    private let indexOf: [String: Int]
    private var out: AtomicFile?
    private var current = 0
    private var writtenInCurrent = 0
    private var hasher = Checksums.XXH3Stream()
    private var failed = false

    /// Called once per tensor when its last byte is written, with its index in `specs`.
    public var tensorCompleted: ((Int) -> Void)?
    /// Called with the whole file's bytes in file order (the resume hash). The header is known
    /// only once every tensor is written, so `finish` reads the finished temporary back (from the
    /// page cache, 64 MiB at a time, each piece released once seen) just before the rename.
    public var observer: ((UnsafeRawBufferPointer) -> Void)?

    public init(path: String, tensors: [Tensor], files: [(String, [UInt8])], metadata: JSONValue) throws {
        self.path = path
        self.specs = tensors.map(\.spec)
        self.files = files
        self.metadata = Array(JSONWriter.compact(metadata).utf8)
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() {
            guard t.spec.dtype.byteCount(elements: t.spec.elementCount) != nil else {
                throw DSPackError(.writerMisuse, file: path, tensor: t.spec.name, "\(t.spec.elementCount) \(t.spec.dtype.rawValue) elements are not a whole number of bytes")
            }
            guard t.spec.shape.count <= DSPackLayout.maxDims, !t.spec.name.isEmpty, !t.spec.name.utf8.contains(0) else {
                throw DSPackError(.writerMisuse, file: path, tensor: t.spec.name, "a pack holds tensors of at most 8 dimensions with a non-empty name without NUL")
            }
            if index.updateValue(i, forKey: t.spec.name) != nil {
                throw DSPackError(.writerMisuse, file: path, tensor: t.spec.name, "tensor declared twice")
            }
        }
        var seenFiles = Set<String>()
        for (n, _) in files {
            guard !n.isEmpty, n != ".", n != "..", !n.contains("/"), !n.utf8.contains(0), seenFiles.insert(n).inserted else {
                throw DSPackError(.writerMisuse, file: path, "embedded file name '\(n)' is empty, a path, or given twice")
            }
        }
        indexOf = index
        // String pool and table geometry.
        var pool: [UInt8] = []
        var nameAt: [(UInt32, UInt32)] = []
        for n in tensors.map(\.spec.name) + files.map(\.0) {
            nameAt.append((UInt32(pool.count), UInt32(n.utf8.count)))
            pool.append(contentsOf: n.utf8)
            pool.append(0)
        }
        stringPool = pool
        let count = tensors.count + files.count
        let headerEnd = DSPackLayout.preambleSize + count * DSPackLayout.entrySize + pool.count + self.metadata.count
        dataOffset = DSPackLayout.align(headerEnd + DSPackLayout.digestSize)
        var at = dataOffset
        var entries: [DSPackEntry] = []
        entries.reserveCapacity(count)
        for (i, t) in tensors.enumerated() {
            let s = t.spec
            let (layer, expert) = DSPackLayout.layerAndExpert(of: s.name)
            var e = DSPackEntry(dataOffset: at, dataSize: s.byteCount, xxh3: 0, name: s.name, kind: .tensor, dtype: s.dtype,
                                shape: s.shape, role: t.role.rawValue, layer: layer, expert: expert)
            if s.name.hasSuffix(".weight") {
                let stem = String(s.name.dropLast(".weight".count))
                if let j = index[stem + ".weight_scale_inv"] ?? index[stem + ".weight_scale"], j != i { e.weightScale = UInt32(j) }
                if let j = index[stem + ".input_scale"], j != i { e.inputScale = UInt32(j) }
            }
            entries.append(e)
            at = DSPackLayout.align(at + e.dataSize)
        }
        for (n, b) in files {
            entries.append(DSPackEntry(dataOffset: at, dataSize: b.count, xxh3: b.withUnsafeBytes { Checksums.xxh3($0) }, name: n,
                                       kind: .file, dtype: .u8, shape: [b.count]))
            at = DSPackLayout.align(at + b.count)
        }
        self.entries = entries
        dataSize = at - dataOffset
        fileSize = at
        _ = nameAt
    }

    /// The size of a pack holding these tensors, files and metadata.
    public static func fileSize(tensors: [TensorSpec], files: [(String, Int)], metadataBytes: Int) -> Int {
        var pool = 0
        for n in tensors.map(\.name) + files.map(\.0) { pool += n.utf8.count + 1 }
        let headerEnd = DSPackLayout.preambleSize + (tensors.count + files.count) * DSPackLayout.entrySize + pool + metadataBytes
        var at = DSPackLayout.align(headerEnd + DSPackLayout.digestSize)
        for t in tensors { at = DSPackLayout.align(at + t.byteCount) }
        for f in files { at = DSPackLayout.align(at + f.1) }
        return at
    }

    private static let zeros = [UInt8](repeating: 0, count: DSPackLayout.alignment)

    private func output() throws -> AtomicFile {
        if let out { return out }
        let f: AtomicFile
        do { f = try AtomicFile(path) } catch { throw DSPackError.io(error, file: path) }
        out = f
        do { try f.reserve(fileSize) } catch { throw DSPackError.io(error, file: path) }
        try zeroFill(f, count: dataOffset)
        return f
    }

    private func zeroFill(_ f: AtomicFile, count: Int) throws {
        var left = count
        while left > 0 {
            let n = min(left, DSPackWriter.zeros.count)
            do { try DSPackWriter.zeros.withUnsafeBytes { try f.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } } catch { throw DSPackError.io(error, file: path) }
            left -= n
        }
    }

    /// Closes the tensor in progress once it is complete, and any empty ones after it.
    private func advance(_ f: AtomicFile) throws {
        while current < specs.count && writtenInCurrent == entries[current].dataSize {
            entries[current].xxh3 = hasher.digest
            let e = entries[current]
            let next = current + 1 < entries.count ? entries[current + 1].dataOffset : dataOffset + dataSize
            try zeroFill(f, count: next - (e.dataOffset + e.dataSize))
            hasher = Checksums.XXH3Stream()
            writtenInCurrent = 0
            current += 1
            tensorCompleted?(current - 1)
        }
    }

    /// Appends `bytes` to tensor `name`, which must be the tensor in progress or the next one.
    public func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        guard !failed else { throw DSPackError(.writerMisuse, file: path, tensor: name, "the writer failed earlier") }
        let f = try output()
        try advance(f)
        // An empty write to a tensor already complete (an empty tensor closes itself) is harmless.
        if bytes.isEmpty, let i = indexOf[name], i < current { return }
        guard current < specs.count, specs[current].name == name else {
            throw DSPackError(.writerMisuse, file: path, tensor: name,
                current < specs.count ? "written out of order: '\(specs[current].name)' is next" : "every declared tensor is already complete")
        }
        guard writtenInCurrent + bytes.count <= entries[current].dataSize else {
            throw DSPackError(.writerMisuse, file: path, tensor: name, "more than its \(entries[current].dataSize) bytes written")
        }
        hasher.update(bytes)
        do { try f.write(bytes) } catch { failed = true; throw DSPackError.io(error, file: path) }
        writtenInCurrent += bytes.count
        try advance(f)
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write(name, $0) } }

    /// Writes the embedded files and the header, then renames the pack into place.
    public func finish(durable: Bool = false) throws {
        let f = try output()
        try advance(f)
        guard current == specs.count else {
            throw DSPackError(.writerMisuse, file: path, tensor: specs[current].name, "finished with this tensor incomplete (\(writtenInCurrent) of \(entries[current].dataSize) bytes)")
        }
        for (i, (_, b)) in files.enumerated() {
            let e = entries[specs.count + i]
            do { try f.write(b) } catch { throw DSPackError.io(error, file: path) }
            let next = specs.count + i + 1 < entries.count ? entries[specs.count + i + 1].dataOffset : dataOffset + dataSize
            try zeroFill(f, count: next - (e.dataOffset + e.dataSize))
        }
        var header = headerBytes()
        header += Checksums.sha256(header)
        do {
            try header.withUnsafeBytes { try f.write($0, at: 0) }
            if let observer {
                let m = try MappedFile(path: f.temporaryPath)
                m.advise(.sequential)
                var at = 0
                while at < m.size {
                    let end = min(m.size, at + (64 << 20))
                    observer(m.bytes(at..<end))
                    m.release(at..<end)
                    at = end
                }
            }
            try f.commit(durable: durable)
        } catch { throw DSPackError.io(error, file: path) }
        out = nil
    }

    /// Preamble, entry table, string pool and metadata: bytes `[0, header_end)`.
    func headerBytes() -> [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(DSPackLayout.preambleSize + entries.count * DSPackLayout.entrySize + stringPool.count + metadata.count + 32)
        w.bytes += DSPackLayout.magic
        w.u16(DSPackLayout.versionMajor)
        w.u16(DSPackLayout.versionMinor)
        w.u32(UInt32(DSPackLayout.entrySize))
        w.u64(UInt64(entries.count))
        w.u64(UInt64(stringPool.count))
        w.u64(UInt64(metadata.count))
        w.u64(UInt64(dataOffset))
        w.u64(UInt64(dataSize))
        w.u64(0)
        var nameOffset = 0
        for e in entries {
            w.u64(UInt64(e.dataOffset))
            w.u64(UInt64(e.dataSize))
            w.u64(e.xxh3)
            w.u32(UInt32(nameOffset))
            w.u32(UInt32(e.name.utf8.count))
            nameOffset += e.name.utf8.count + 1
            w.u8(e.kind.rawValue)
            w.u8(DSPackLayout.code(of: e.dtype))
            w.u8(UInt8(e.shape.count))
            w.u8(e.role)
            w.u32(e.weightScale)
            w.u32(e.inputScale)
            w.i32(e.layer)
            w.i32(e.expert)
            w.u32(0)
            for d in 0..<DSPackLayout.maxDims { w.u64(d < e.shape.count ? UInt64(e.shape[d]) : 0) }
            w.u64(0)
        }
        w.bytes += stringPool
        w.bytes += metadata
        return w.bytes
    }

    /// Removes the temporary; the final path is never touched.
    public func abort() {
        out?.abort()
        out = nil
    }

    deinit { abort() }
}
