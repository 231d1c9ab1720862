import Dispatch
import JSON
import SystemIO
import Tensors

/// A .dspack opened for reading (Formats/dspack.md §7.1): the file is mapped once, the header
/// digest is checked before any value of the header is used, then every entry is validated.
/// Tensors are handed out as views into the mapping (no copy; each starts at a 4096-byte
/// boundary). Embedded files are the store's side files; their XXH3 is checked on every read.
public final class DSPackFile: TensorStore, @unchecked Sendable {
    public let location: String
    public let mapping: MappedFile
    public let entries: [DSPackEntry]
    public let metadata: JSONValue
    public let headerDigest: [UInt8]
    public let dataOffset: Int
    public let dataSize: Int
    /// The signature trailer's 128 bytes, when the pack has one.
    public let trailer: UnsafeRawBufferPointer?
    public let tensorNames: [String]
    public let sideFileNames: [String]
    private let tensorIndex: [String: Int]
    private let fileIndexByName: [String: Int]
    private let infos: [TensorInfo]
    public let files: [StoreFile]

    public var formatName: String { "dspack" }
    public var unindexedFiles: [String] { [] }

    /// True when `path` names a file that starts with the pack magic.
    public static func isPack(path: String) -> Bool {
        guard let (fd, st) = try? Sys.openForReading(path) else { return false }
        defer { Sys.close(fd) }
        guard st.isRegular, st.size >= 8 else { return false }
        var m = [UInt8](repeating: 0, count: 8)
        guard (try? m.withUnsafeMutableBytes { try Sys.pread(fd, path: path, into: $0.baseAddress!, count: 8, offset: 0) }) != nil else { return false }
        return m == DSPackLayout.magic
    }

    public init(path: String) throws {
        location = path
        do { mapping = try MappedFile(path: path) } catch { throw DSPackError.io(error, file: path) }
        let size = mapping.size
        let all = mapping.bytes(0..<size)
        func fail(_ c: DSPackError.Code, tensor: String? = nil, offset: Int? = nil, _ m: String) -> DSPackError {
            DSPackError(c, file: path, tensor: tensor, offset: offset, "\(c.rawValue): " + m)
        }
        // 1–4: sizes before anything is read past the preamble.
        guard size >= DSPackLayout.preambleSize else { throw fail(.truncated, "\(size) bytes, shorter than the 64-byte preamble") }
        guard Array(all[0..<8]) == DSPackLayout.magic else { throw fail(.badMagic, offset: 0, "not a .dspack file (wrong magic)") }
        let major = all.le(8, UInt16.self)
        guard major == DSPackLayout.versionMajor else { throw fail(.unsupportedVersion, offset: 8, "format version \(major).\(all.le(10, UInt16.self)); this reader reads version 1") }
        let entrySize = Int(all.le(12, UInt32.self))
        let count = all.le(16, UInt64.self), poolSize = all.le(24, UInt64.self), metaSize = all.le(32, UInt64.self)
        guard entrySize >= DSPackLayout.entrySize, entrySize % 8 == 0 else { throw fail(.headerSize, offset: 12, "entry_size \(entrySize) is not a multiple of 8 of at least 128") }
        let (tableBytes, o1) = count.multipliedReportingOverflow(by: UInt64(entrySize))
        let (a, o2) = UInt64(DSPackLayout.preambleSize).addingReportingOverflow(tableBytes)
        let (b, o3) = a.addingReportingOverflow(poolSize)
        let (headerEnd64, o4) = b.addingReportingOverflow(metaSize)
        guard !(o1 || o2 || o3 || o4), headerEnd64 <= UInt64(size), UInt64(size) - headerEnd64 >= 32 else {
            throw fail(.headerSize, offset: 16, "the header's lengths (\(count) entries, \(poolSize) bytes of names, \(metaSize) of metadata) reach past the end of the \(size)-byte file")
        }
        let headerEnd = Int(headerEnd64)
        // 5: the digest; only from here on are the header's values trusted.
        let digest = Checksums.sha256(mapping.bytes(0..<headerEnd))
        guard Array(all[headerEnd..<headerEnd + 32]) == digest else {
            throw fail(.headerDigest, offset: headerEnd, "the SHA-256 of the header [0, \(headerEnd)) differs from the stored digest: the header is corrupted")
        }
        headerDigest = digest
        // 6–7
        let dOff = all.le(40, UInt64.self), dSize = all.le(48, UInt64.self), flags = all.le(56, UInt64.self)
        guard flags == 0 else { throw fail(.headerInvalid, offset: 56, "flags \(flags) are not 0") }
        guard dOff == UInt64(DSPackLayout.align(headerEnd + 32)) else { throw fail(.headerInvalid, offset: 40, "data_offset \(dOff) is not align(\(headerEnd + 32))") }
        guard dSize % 4096 == 0 else { throw fail(.headerInvalid, offset: 48, "data_size \(dSize) is not a multiple of 4096") }
        guard dOff <= UInt64(size), dSize <= UInt64(size) - dOff else {
            throw fail(.truncated, offset: size, "the data region ends at \(dOff &+ dSize), past the end of the \(size)-byte file")
        }
        dataOffset = Int(dOff)
        dataSize = Int(dSize)
        if let i = all.firstNonZero(in: (headerEnd + 32)..<dataOffset) {
            throw fail(.paddingNonzero, offset: i, "byte \(i) of the padding after the header digest is not zero")
        }
        // 8
        let metaStart = headerEnd - Int(metaSize)
        do {
            let m = try JSONParser.parse(mapping.bytes(metaStart..<headerEnd))
            guard case .object = m else { throw fail(.metadataInvalid, offset: metaStart, "the metadata is not a JSON object") }
            metadata = m
        } catch let e as DSPackError { throw e } catch {
            throw fail(.metadataInvalid, offset: metaStart, "the metadata is not JSON: \(error)")
        }
        // 9
        let poolStart = DSPackLayout.preambleSize + Int(count) * entrySize
        var entries: [DSPackEntry] = []
        entries.reserveCapacity(Int(count))
        var previousEnd = dataOffset
        var tensorIndex: [String: Int] = [:], fileIndex: [String: Int] = [:]
        var sawFile = false
        let dataEnd = dataOffset + dataSize
        var kinds: [UInt8] = []
        for i in 0..<Int(count) {
            let r = DSPackLayout.preambleSize + i * entrySize
            let off = all.le(r, UInt64.self), len = all.le(r + 8, UInt64.self)
            let nameOff = Int(all.le(r + 24, UInt32.self)), nameLen = Int(all.le(r + 28, UInt32.self))
            let kind = all[r + 32], dcode = all[r + 33], ndim = Int(all[r + 34])
            let ws = all.le(r + 36, UInt32.self), isc = all.le(r + 40, UInt32.self)
            func bad(_ m: String, _ c: DSPackError.Code = .entryInvalid, name: String? = nil) -> DSPackError {
                fail(c, tensor: name, offset: r, "entry \(i): " + m)
            }
            guard nameLen > 0, nameOff + nameLen < Int(poolSize), all[poolStart + nameOff + nameLen] == 0,
                  !all[(poolStart + nameOff)..<(poolStart + nameOff + nameLen)].contains(0),
                  let name = String(validating: all[(poolStart + nameOff)..<(poolStart + nameOff + nameLen)], as: UTF8.self) else {
                throw bad("the name is empty, outside the string pool, not NUL-terminated or not UTF-8")
            }
            guard let k = DSPackLayout.Kind(rawValue: kind) else { throw bad("kind \(kind) is neither 0 (tensor) nor 1 (file)", name: name) }
            guard Int(dcode) < DSPackLayout.dtypes.count else { throw bad("dtype code \(dcode) is unknown", name: name) }
            let dtype = DSPackLayout.dtypes[Int(dcode)]
            guard ndim <= 8 else { throw bad("ndim \(ndim) is above 8", name: name) }
            var shape: [Int] = []
            var elements: UInt64 = 1, overflow = false
            for d in 0..<8 {
                let v = all.le(r + 56 + 8 * d, UInt64.self)
                if d < ndim {
                    let (p, o) = elements.multipliedReportingOverflow(by: v)
                    elements = p; overflow = overflow || o || v > UInt64(Int.max)
                    shape.append(Int(truncatingIfNeeded: v))
                } else if v != 0 { throw bad("shape[\(d)] beyond ndim is not 0", name: name) }
            }
            let (bitsTotal, o5) = elements.multipliedReportingOverflow(by: UInt64(dtype.bits))
            guard !overflow, !o5, bitsTotal % 8 == 0, bitsTotal / 8 == len else {
                throw bad("data_size \(len) is not \(dtype.rawValue) \(shape) of \(dtype.bits) bits per element", name: name)
            }
            guard all.le(r + 52, UInt32.self) == 0, all.le(r + 120, UInt64.self) == 0 else { throw bad("flags or reserved bytes are not 0", name: name) }
            if k == .file {
                guard dtype == .u8, ndim == 1, all[r + 35] == 0, !name.contains("/"), name != ".", name != ".." else {
                    throw bad("a file entry must be U8 of one dimension, role 0, with a plain file name", name: name)
                }
                sawFile = true
                if fileIndex.updateValue(i, forKey: name) != nil { throw bad("a second file of this name", name: name) }
            } else {
                if sawFile { throw bad("a tensor after a file entry (tensors come first)", name: name) }
                if tensorIndex.updateValue(i, forKey: name) != nil { throw bad("a second tensor of this name", name: name) }
            }
            for (label, s) in [("weight_scale", ws), ("input_scale", isc)] where s != DSPackLayout.noIndex {
                guard Int(s) < Int(count), Int(s) != i else { throw bad("\(label) \(s) is not another entry", name: name) }
            }
            guard off % 4096 == 0 else { throw bad("data offset \(off) is not a multiple of 4096", .entryMisaligned, name: name) }
            guard off >= UInt64(dataOffset), off <= UInt64(dataEnd), len <= UInt64(dataEnd) - off else {
                throw bad("data [\(off), \(off &+ len)) lies outside the data region [\(dataOffset), \(dataEnd))", .entryOutOfBounds, name: name)
            }
            guard Int(off) >= previousEnd else {
                throw bad("data starts at \(off), before the previous entry's aligned end \(previousEnd)", .entryOverlap, name: name)
            }
            previousEnd = DSPackLayout.align(Int(off) + Int(len))
            kinds.append(kind)
            entries.append(DSPackEntry(dataOffset: Int(off), dataSize: Int(len), xxh3: all.le(r + 16, UInt64.self), name: name, kind: k,
                                       dtype: dtype, shape: shape, role: all[r + 35], weightScale: ws, inputScale: isc,
                                       layer: Int32(bitPattern: all.le(r + 44, UInt32.self)), expert: Int32(bitPattern: all.le(r + 48, UInt32.self))))
        }
        for e in entries {
            for s in [e.weightScale, e.inputScale] where s != DSPackLayout.noIndex && kinds[Int(s)] != 0 {
                throw fail(.entryInvalid, tensor: e.name, "a scale index points at a file entry")
            }
        }
        // 10
        let rest = size - dataEnd
        if rest == 0 {
            trailer = nil
        } else {
            let t = mapping.bytes(dataEnd..<size)
            guard rest == DSPackLayout.trailerSize, Array(t[0..<8]) == DSPackLayout.trailerMagic, t.le(8, UInt32.self) == 1,
                  t.le(12, UInt32.self) == 128, t[112..<128].allSatisfy({ $0 == 0 }) else {
                throw fail(.trailerInvalid, offset: dataEnd, "the \(rest) bytes after the data region are not a signature trailer")
            }
            trailer = t
        }
        self.entries = entries
        self.tensorIndex = tensorIndex
        self.fileIndexByName = fileIndex
        let tensors = entries.filter { $0.kind == .tensor }
        tensorNames = tensors.map(\.name)
        sideFileNames = entries.filter { $0.kind == .file }.map(\.name).sorted()
        infos = entries.map { TensorInfo(name: $0.name, dtype: $0.dtype, shape: $0.shape, dataOffsets: $0.dataOffset..<($0.dataOffset + $0.dataSize)) }
        let slash = path.lastIndex(of: "/")
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let status: Sys.FileStatus
        do { status = try Sys.stat(path) } catch { throw DSPackError.io(error, file: path) }
        files = [StoreFile(name: base, path: path, status: status, tensorNames: tensorNames)]
    }

    // MARK: TensorStore

    /// A tensor's info; `dataOffsets` are absolute file offsets (a pack has no separate data buffer).
    public func info(_ name: String) -> TensorInfo? { tensorIndex[name].map { infos[$0] } }

    public func entry(_ name: String) -> DSPackEntry? { tensorIndex[name].map { entries[$0] } }

    public func view(_ name: String) throws -> TensorView {
        guard let i = tensorIndex[name] else { throw DSPackError(.missingTensor, file: location, tensor: name, "not in the pack") }
        let e = entries[i]
        return TensorView(info: infos[i], bytes: mapping.bytes(e.dataOffset..<(e.dataOffset + e.dataSize)), file: location, owner: mapping)
    }

    public func requireWhole() throws {
        if tensorNames.isEmpty { throw DSPackError(.missingTensor, file: location, "holds no tensors: there is nothing to convert") }
    }

    public func fileIndex(of name: String) -> Int? { tensorIndex[name] != nil ? 0 : nil }
    public func fileOffset(of name: String) -> Int? { entry(name)?.dataOffset }

    private func range(_ name: String) -> Range<Int>? { entry(name).map { $0.dataOffset..<($0.dataOffset + $0.dataSize) } }
    public func prefetch(_ names: [String]) { for n in names { if let r = range(n) { mapping.advise(.willNeed, r) } } }
    public func release(_ names: [String]) { for n in names { if let r = range(n) { mapping.release(r) } } }
    public func prefetch(_ name: String, bytes r: Range<Int>) {
        if let t = range(name) { mapping.advise(.willNeed, (t.lowerBound + r.lowerBound)..<(t.lowerBound + r.upperBound)) }
    }
    public func release(_ name: String, bytes r: Range<Int>) {
        if let t = range(name) { mapping.release((t.lowerBound + r.lowerBound)..<(t.lowerBound + r.upperBound)) }
    }

    public func releaseAll() { mapping.advise(.dontNeed) }
    public func prefetch(mapped bytes: UnsafeRawBufferPointer) { mapping.advise(.willNeed, mapped: bytes) }

    public func sideFilePath(_ name: String) -> String { location + "#" + name }

    /// An embedded file's bytes, checked against its XXH3-64.
    public func sideFile(_ name: String) throws -> [UInt8]? {
        guard let i = fileIndexByName[name] else { return nil }
        let e = entries[i]
        let b = mapping.bytes(e.dataOffset..<(e.dataOffset + e.dataSize))
        guard Checksums.xxh3(b) == e.xxh3 else {
            throw DSPackError(.checksumMismatch, file: location, tensor: name, offset: e.dataOffset, "checksum_mismatch: embedded file '\(name)' does not match its XXH3-64")
        }
        return Array(b)
    }
}
