import CZstd
import SystemIO
import Tensors

/// The compressed transport copy of a pack, `.dspack.zst` (Formats/dspack.md §10): the header,
/// each entry's data and the trailer as separate frames (zstd with libzstd's worker threads; the
/// bytes of floating-point elements split into planes first), the zero gaps left out. `restore`
/// writes the identical pack and verifies it (header digest, every XXH3-64, every gap) before it
/// appears under its name.
public enum DSPackTransport {
    public static let magic: [UInt8] = Array("DSPKZST".utf8) + [0]
    static let version: UInt32 = 1
    static let preambleSize = 24
    static let frameHeaderSize = 24
    /// Transform 2 splits the elements of each block of this many elements into byte planes.
    public static let planeBlockElements = 1 << 20
    /// Items up to this size are compressed in memory, and stored raw when that is smaller.
    static let smallItem = 1 << 20

    public enum Transform: UInt8, Sendable { case raw = 0, zstd = 1, planes = 2 }

    public struct Options: Sendable {
        /// zstd's level (1…19; negative levels are zstd's fast modes, down to -7).
        public var level: Int32 = 3
        /// libzstd worker threads (0: compress in the calling thread).
        public var threads: Int = 0
        /// Split the elements of `planeDTypes` into byte planes before compressing.
        public var planes = true
        /// The dtypes split into planes (a subset of F16, BF16, F32, F64, the ones §10 allows).
        /// BF16 and F16 by default: on the samples and a synthetic DeepSeek-V3, BF16 weights
        /// compress 1.35 instead of 1.28 in planes, but the F32 scales and biases slightly worse
        /// (1.19 instead of 1.23).
        public var planeDTypes: Set<DType> = [.bf16, .f16]
        public init(level: Int32 = 3, threads: Int = 0, planes: Bool = true, planeDTypes: Set<DType> = [.bf16, .f16]) {
            self.level = level
            self.threads = threads
            self.planes = planes
            self.planeDTypes = planeDTypes.filter { DSPackTransport.planeWidth($0) != nil }
        }
    }

    public struct Report: Sendable {
        public var packBytes = 0
        public var transportBytes = 0
        /// Bytes in the pack's entries (what was compressed), and what they were stored as, by dtype.
        public var byDType: [String: (raw: Int, stored: Int)] = [:]
        public var planeItems = 0
        public var ratio: Double { Double(packBytes) / Double(max(transportBytes, 1)) }
    }

    /// The element width transform 2 splits into planes, for the dtypes it applies to.
    static func planeWidth(_ d: DType) -> Int? {
        switch d {
        case .bf16, .f16: return 2
        case .f32: return 4
        case .f64: return 8
        default: return nil
        }
    }

    /// True when `path` starts with the transport magic.
    public static func isTransport(path: String) -> Bool {
        guard let (fd, st) = try? Sys.openForReading(path) else { return false }
        defer { Sys.close(fd) }
        guard st.isRegular, st.size >= 8 else { return false }
        var m = [UInt8](repeating: 0, count: 8)
        guard (try? m.withUnsafeMutableBytes { try Sys.pread(fd, path: path, into: $0.baseAddress!, count: 8, offset: 0) }) != nil else { return false }
        return m == magic
    }

    // MARK: compressing

    /// Writes the transport copy of `pack` to `path` (a temporary renamed into place when complete).
    /// `progress` gets the pack bytes done and the total.
    @discardableResult
    public static func compress(_ pack: DSPackFile, to path: String, options: Options = Options(),
                                progress: ((Int, Int) -> Void)? = nil) throws -> Report {
        let out: AtomicFile
        do { out = try AtomicFile(path) } catch { throw DSPackError.io(error, file: path) }
        guard let cctx = ZSTD_createCCtx() else { throw DSPackError(.io, file: path, "libzstd could not allocate a compression context") }
        defer { ZSTD_freeCCtx(cctx) }
        func set(_ p: ZSTD_cParameter, _ v: Int32) throws {
            let r = ZSTD_CCtx_setParameter(cctx, p, v)
            if ZSTD_isError(r) != 0 { throw DSPackError(.io, file: path, "libzstd: \(String(cString: ZSTD_getErrorName(r)))") }
        }
        try set(ZSTD_c_compressionLevel, options.level)
        try set(ZSTD_c_checksumFlag, 0)  // every entry has its XXH3-64 already; restore verifies the pack
        if options.threads > 0 { try set(ZSTD_c_nbWorkers, Int32(min(options.threads, 200))) }
        var report = Report()
        report.packBytes = pack.mapping.size
        let all = pack.mapping.bytes(0..<pack.mapping.size)
        var w = FrameWriter(out: out, cctx: cctx, path: path)
        do {
            var p = ByteWriter()
            p.bytes += magic
            p.u32(version)
            p.u32(0)
            p.u64(UInt64(pack.mapping.size))
            try w.writeRaw(p.bytes)
            var done = 0
            try w.item(UnsafeRawBufferPointer(rebasing: all[0..<pack.dataOffset]), .zstd, width: 1)
            done += pack.dataOffset
            progress?(done, pack.mapping.size)
            for e in pack.entries {
                if Interrupt.requested { throw Interrupted() }
                let bytes = UnsafeRawBufferPointer(rebasing: all[e.dataOffset..<(e.dataOffset + e.dataSize)])
                let width = options.planes && e.kind == .tensor && options.planeDTypes.contains(e.dtype) ? planeWidth(e.dtype) : nil
                let t: Transform = e.dataSize == 0 ? .raw : (width.map { e.dataSize % $0 == 0 && e.dataSize > $0 } ?? false) ? .planes : .zstd
                pack.mapping.advise(.sequential, e.dataOffset..<(e.dataOffset + e.dataSize))
                let stored = try w.item(bytes, t, width: width ?? 1)
                pack.mapping.release(e.dataOffset..<(e.dataOffset + e.dataSize))
                if t == .planes { report.planeItems += 1 }
                let key = e.kind == .file ? "file" : e.dtype.rawValue
                let old = report.byDType[key] ?? (0, 0)
                report.byDType[key] = (old.raw + e.dataSize, old.stored + stored)
                done = e.dataOffset + e.dataSize
                progress?(done, pack.mapping.size)
            }
            if let t = pack.trailer { try w.item(t, .raw, width: 1) }
            report.transportBytes = out.bytesWritten
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        progress?(pack.mapping.size, pack.mapping.size)
        return report
    }

    /// Streams frames into the transport file.
    struct FrameWriter {
        let out: AtomicFile
        let cctx: OpaquePointer
        let path: String
        var buffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        var planes: [UInt8] = []

        init(out: AtomicFile, cctx: OpaquePointer, path: String) {
            self.out = out
            self.cctx = cctx
            self.path = path
        }

        func writeRaw(_ b: [UInt8]) throws {
            do { try out.write(b) } catch { throw DSPackError.io(error, file: path) }
        }

        /// One frame: its 24-byte header (stored size filled in afterwards) and the stored bytes.
        /// Returns the stored size.
        @discardableResult
        mutating func item(_ bytes: UnsafeRawBufferPointer, _ t: Transform, width: Int) throws -> Int {
            if t != .raw && bytes.count <= DSPackTransport.smallItem { return try smallItem(bytes, t, width: width) }
            let at = out.bytesWritten
            var h = ByteWriter()
            h.u8(t.rawValue)
            h.bytes += [UInt8](repeating: 0, count: 7)
            h.u64(UInt64(bytes.count))
            h.u64(0)
            try writeRaw(h.bytes)
            switch t {
            case .raw:
                do { try out.write(bytes) } catch { throw DSPackError.io(error, file: path) }
            case .zstd:
                try feed(bytes, last: true)
            case .planes:
                // Blocks of planeBlockElements elements, each transposed into `width` planes.
                let blockBytes = DSPackTransport.planeBlockElements * width
                if planes.count < min(blockBytes, bytes.count) { planes = [UInt8](repeating: 0, count: min(blockBytes, bytes.count)) }
                var start = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + blockBytes)
                    let n = (end - start) / width
                    planes.withUnsafeMutableBytes { dst in
                        DSPackTransport.split(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), into: dst.baseAddress!, elements: n, width: width)
                    }
                    let chunk = end - start
                    try planes.withUnsafeBytes { try feed(UnsafeRawBufferPointer(rebasing: $0[0..<chunk]), last: end == bytes.count) }
                    start = end
                }
            }
            let stored = out.bytesWritten - at - DSPackTransport.frameHeaderSize
            var size = UInt64(stored).littleEndian
            do { try withUnsafeBytes(of: &size) { try out.write($0, at: at + 16) } } catch { throw DSPackError.io(error, file: path) }
            return stored
        }

        /// An item of at most `smallItem` bytes, compressed in memory and stored raw when zstd does
        /// not make it smaller (small scale tensors: a zstd frame's overhead exceeds their size).
        mutating func smallItem(_ bytes: UnsafeRawBufferPointer, _ t: Transform, width: Int) throws -> Int {
            var src = Array(bytes)
            if t == .planes {
                src.withUnsafeMutableBytes { d in DSPackTransport.split(bytes, into: d.baseAddress!, elements: bytes.count / width, width: width) }
            }
            var dst = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
            let n = src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { d in ZSTD_compress2(cctx, d.baseAddress, d.count, s.baseAddress, s.count) } }
            if ZSTD_isError(n) != 0 { throw DSPackError(.io, file: path, "libzstd: \(String(cString: ZSTD_getErrorName(n)))") }
            let raw = n >= bytes.count
            var h = ByteWriter()
            h.u8(raw ? Transform.raw.rawValue : t.rawValue)
            h.bytes += [UInt8](repeating: 0, count: 7)
            h.u64(UInt64(bytes.count))
            h.u64(UInt64(raw ? bytes.count : n))
            try writeRaw(h.bytes)
            do {
                if raw { try out.write(bytes) } else { try dst.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
            } catch { throw DSPackError.io(error, file: path) }
            return raw ? bytes.count : n
        }

        /// Compresses `bytes` into the current zstd frame; `last` ends the frame.
        mutating func feed(_ bytes: UnsafeRawBufferPointer, last: Bool) throws {
            var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
            let mode = last ? ZSTD_e_end : ZSTD_e_continue
            while true {
                var remaining = 0
                var produced = 0
                try buffer.withUnsafeMutableBytes { b in
                    var output = ZSTD_outBuffer(dst: b.baseAddress, size: b.count, pos: 0)
                    remaining = ZSTD_compressStream2(cctx, &output, &input, mode)
                    if ZSTD_isError(remaining) != 0 { throw DSPackError(.io, file: path, "libzstd: \(String(cString: ZSTD_getErrorName(remaining)))") }
                    produced = output.pos
                }
                if produced > 0 {
                    do { try buffer.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } } catch { throw DSPackError.io(error, file: path) }
                }
                if last ? remaining == 0 : input.pos == input.size { return }
            }
        }
    }

    /// Byte k of element i goes to `dst[k * n + i]`.
    static func split(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, elements n: Int, width w: Int) {
        let s = src.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        if w == 2 {
            // Eight elements (16 bytes) at a time: the even and the odd bytes of two words
            // gathered with shifts and masks, then the tail one by one.
            let hi = d + n
            let raw = UnsafeRawPointer(s)
            var i = 0
            while i &+ 8 <= n {
                let a = raw.loadUnaligned(fromByteOffset: 2 &* i, as: UInt64.self).littleEndian
                let b = raw.loadUnaligned(fromByteOffset: 2 &* i &+ 8, as: UInt64.self).littleEndian
                let lo = evenBytes(a) | (evenBytes(b) << 32), up = evenBytes(a >> 8) | (evenBytes(b >> 8) << 32)
                UnsafeMutableRawPointer(d + i).storeBytes(of: lo.littleEndian, as: UInt64.self)
                UnsafeMutableRawPointer(hi + i).storeBytes(of: up.littleEndian, as: UInt64.self)
                i &+= 8
            }
            while i < n { d[i] = s[2 &* i]; hi[i] = s[2 &* i &+ 1]; i &+= 1 }
            return
        }
        for k in 0..<w {
            let p = d + k &* n
            for i in 0..<n { p[i] = s[i &* w &+ k] }
        }
    }

    /// Bytes 0, 2, 4, 6 of `x` as the four low bytes of the result.
    @inline(__always) static func evenBytes(_ x: UInt64) -> UInt64 {
        var v = x & 0x00FF_00FF_00FF_00FF
        v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF
        return (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF
    }

    /// The four low bytes of `x` spread to bytes 0, 2, 4, 6 (the inverse of `evenBytes`).
    @inline(__always) static func spreadBytes(_ x: UInt64) -> UInt64 {
        var v = x & 0x0000_0000_FFFF_FFFF
        v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF
        return (v | (v << 8)) & 0x00FF_00FF_00FF_00FF
    }

    /// The inverse of `split`.
    static func join(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, elements n: Int, width w: Int) {
        let s = src.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        if w == 2 {
            let hi = s + n
            var i = 0
            while i &+ 8 <= n {
                let lo = UnsafeRawPointer(s + i).loadUnaligned(as: UInt64.self).littleEndian
                let up = UnsafeRawPointer(hi + i).loadUnaligned(as: UInt64.self).littleEndian
                let a = spreadBytes(lo) | (spreadBytes(up) << 8), b = spreadBytes(lo >> 32) | (spreadBytes(up >> 32) << 8)
                UnsafeMutableRawPointer(d + 2 &* i).storeBytes(of: a.littleEndian, toByteOffset: 0, as: UInt64.self)
                UnsafeMutableRawPointer(d + 2 &* i).storeBytes(of: b.littleEndian, toByteOffset: 8, as: UInt64.self)
                i &+= 8
            }
            while i < n { d[2 &* i] = s[i]; d[2 &* i &+ 1] = hi[i]; i &+= 1 }
            return
        }
        for k in 0..<w {
            let p = s + k &* n
            for i in 0..<n { d[i &* w &+ k] = p[i] }
        }
    }

    // MARK: restoring

    public struct RestoreReport: Sendable {
        public var packBytes = 0
        public var transportBytes = 0
        public var entries = 0
    }

    /// Restores the pack of the transport file `source` to `destination`, verified (§7.1 and §7.2:
    /// header digest, structure, every XXH3-64 and gap) before it is renamed into place.
    @discardableResult
    public static func restore(_ source: String, to destination: String, progress: ((Int, Int) -> Void)? = nil) throws -> RestoreReport {
        let map: MappedFile
        do { map = try MappedFile(path: source) } catch { throw DSPackError.io(error, file: source) }
        let all = map.bytes(0..<map.size)
        func bad(_ at: Int, _ m: String) -> DSPackError {
            DSPackError(.transportInvalid, file: source, offset: at, "transport_invalid: " + m)
        }
        guard map.size >= preambleSize, Array(all[0..<8]) == magic else { throw bad(0, "not a .dspack.zst transport file (wrong magic)") }
        guard all.le(8, UInt32.self) == version, all.le(12, UInt32.self) == 0 else {
            throw bad(8, "transport version \(all.le(8, UInt32.self)) / flags \(all.le(12, UInt32.self)); this reader reads version 1 with flags 0")
        }
        let packSize = all.le(16, UInt64.self)
        let out: AtomicFile
        do { out = try AtomicFile(destination) } catch { throw DSPackError.io(error, file: destination) }
        guard let dctx = ZSTD_createDCtx() else { throw DSPackError(.io, file: source, "libzstd could not allocate a decompression context") }
        defer { ZSTD_freeDCtx(dctx) }
        var entryCount = 0
        var reader = FrameReader(all: all, at: preambleSize, dctx: dctx, source: source, out: out, destination: destination)
        do {
            // The header item: preamble, table, names, metadata, digest, padding.
            guard let first = try reader.next(maxRaw: Int(min(packSize, 1 << 40))) else { throw bad(reader.at, "no header frame") }
            guard first.raw >= DSPackLayout.preambleSize, first.raw % DSPackLayout.alignment == 0 else {
                throw bad(first.offset, "the header frame's \(first.raw) bytes are not a pack's header")
            }
            try reader.restore(first, width: 1)
            // The header as just written decides where entries go; its digest is checked first
            // (nothing in it is trusted before), then its sizes against the frames that follow.
            let layout = try headerLayout(destination: destination, file: out)
            entryCount = layout.entries.count
            guard layout.dataOffset == first.raw else { throw bad(first.offset, "the header frame holds \(first.raw) bytes, the header says data starts at \(layout.dataOffset)") }
            for (i, e) in layout.entries.enumerated() {
                if Interrupt.requested { throw Interrupted() }
                guard let f = try reader.next(maxRaw: e.size) else { throw bad(reader.at, "the file ends before the frame of entry \(i)") }
                guard f.raw == e.size else { throw bad(f.offset, "entry \(i)'s frame holds \(f.raw) bytes, the header says \(e.size)") }
                guard e.offset <= layout.dataOffset + layout.dataSize, e.size <= layout.dataOffset + layout.dataSize - e.offset else {
                    throw bad(f.offset, "entry \(i) lies outside the data region the header gives")
                }
                let zeros = e.offset - out.bytesWritten
                guard zeros >= 0 else { throw bad(f.offset, "entry \(i) starts at \(e.offset), before the end of the previous one") }
                try reader.zeroFill(zeros)
                try reader.restore(f, width: e.planeWidth)
                progress?(out.bytesWritten, Int(clamping: packSize))
            }
            let dataEnd = layout.dataOffset + layout.dataSize
            guard dataEnd >= out.bytesWritten, UInt64(dataEnd) <= packSize else { throw bad(reader.at, "the data region ends past the pack's \(packSize) bytes") }
            try reader.zeroFill(dataEnd - out.bytesWritten)
            if let t = try reader.next(maxRaw: DSPackLayout.trailerSize) {
                guard t.raw == DSPackLayout.trailerSize else { throw bad(t.offset, "a trailer frame of \(t.raw) bytes, not 128") }
                try reader.restore(t, width: 1)
            }
            guard reader.at == map.size else { throw bad(reader.at, "\(map.size - reader.at) bytes after the last frame") }
            guard UInt64(out.bytesWritten) == packSize else { throw bad(16, "restored \(out.bytesWritten) bytes, the transport header says \(packSize)") }
            // The restored pack, checked as `verify` checks it, before it gets its name.
            let pack = try DSPackFile(path: out.temporaryPath)
            if let e = DSPackVerifier.verify(pack).first {
                var v = e
                v.path = destination
                throw v
            }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        return RestoreReport(packBytes: Int(packSize), transportBytes: map.size, entries: entryCount)
    }

    /// Where the entries of the restored header go, after its digest is checked.
    private struct Layout {
        var dataOffset: Int
        var dataSize: Int
        var entries: [(offset: Int, size: Int, planeWidth: Int)]
    }

    private static func headerLayout(destination: String, file: AtomicFile) throws -> Layout {
        // The header is what was just written: read it back from the temporary.
        let h = try Sys.readFile(file.temporaryPath, limit: 1 << 34)
        func fail(_ c: DSPackError.Code, _ m: String) -> DSPackError { DSPackError(c, file: destination, "\(c.rawValue): " + m) }
        return try h.withUnsafeBytes { b -> Layout in
            guard Array(b[0..<8]) == DSPackLayout.magic else { throw fail(.badMagic, "the restored header has the wrong magic") }
            guard b.le(8, UInt16.self) == DSPackLayout.versionMajor else { throw fail(.unsupportedVersion, "format version \(b.le(8, UInt16.self))") }
            let entrySize = Int(b.le(12, UInt32.self))
            let count = b.le(16, UInt64.self), pool = b.le(24, UInt64.self), meta = b.le(32, UInt64.self)
            // Each length is below the header's size (< 2^34), so the sum cannot overflow.
            guard entrySize >= DSPackLayout.entrySize, entrySize % 8 == 0, count < UInt64(h.count), UInt64(entrySize) < UInt64(h.count),
                  pool < UInt64(h.count), meta < UInt64(h.count),
                  64 + Int(count) * entrySize + Int(pool) + Int(meta) + 32 <= h.count else {
                throw fail(.headerSize, "the restored header's lengths reach past its \(h.count) bytes")
            }
            let end = 64 + Int(count) * entrySize + Int(pool) + Int(meta)
            guard Checksums.sha256(UnsafeRawBufferPointer(rebasing: b[0..<end])) == Array(b[end..<end + 32]) else {
                throw fail(.headerDigest, "the SHA-256 of the restored header differs from its stored digest")
            }
            var entries: [(Int, Int, Int)] = []
            for i in 0..<Int(count) {
                let r = 64 + i * entrySize
                let off = b.le(r, UInt64.self), size = b.le(r + 8, UInt64.self), code = Int(b[r + 33])
                guard off < 1 << 56, size < 1 << 56 else { throw fail(.entryOutOfBounds, "entry \(i) lies past any file") }
                let width = code < DSPackLayout.dtypes.count ? planeWidth(DSPackLayout.dtypes[code]) ?? 1 : 1
                entries.append((Int(off), Int(size), b[r + 32] == 0 ? width : 1))
            }
            let dOff = b.le(40, UInt64.self), dSize = b.le(48, UInt64.self)
            guard dOff < 1 << 56, dSize < 1 << 56 else { throw fail(.headerInvalid, "data region past any file") }
            return Layout(dataOffset: Int(dOff), dataSize: Int(dSize), entries: entries)
        }
    }

    /// Reads frames from the mapped transport file and writes what they restore.
    struct FrameReader {
        let all: UnsafeRawBufferPointer
        var at: Int
        let dctx: OpaquePointer
        let source: String
        let out: AtomicFile
        let destination: String
        var buffer: [UInt8] = []
        var joined: [UInt8] = []
        static let zeros = [UInt8](repeating: 0, count: 1 << 16)

        struct Frame { var offset: Int; var transform: Transform; var raw: Int; var stored: Range<Int> }

        func bad(_ at: Int, _ m: String) -> DSPackError { DSPackError(.transportInvalid, file: source, offset: at, "transport_invalid: " + m) }

        /// The next frame's header, or nil at the end of the file.
        mutating func next(maxRaw: Int) throws -> Frame? {
            if at == all.count { return nil }
            guard all.count - at >= DSPackTransport.frameHeaderSize else { throw bad(at, "a frame header cut short") }
            let t = all[at], raw = all.le(at + 8, UInt64.self), stored = all.le(at + 16, UInt64.self)
            guard let transform = Transform(rawValue: t) else { throw bad(at, "transform \(t) is not 0, 1 or 2") }
            guard all[(at + 1)..<(at + 8)].allSatisfy({ $0 == 0 }) else { throw bad(at + 1, "a frame's reserved bytes are not zero") }
            guard raw <= UInt64(maxRaw) else { throw bad(at + 8, "a frame of \(raw) bytes where at most \(maxRaw) fit") }
            let start = at + DSPackTransport.frameHeaderSize
            guard stored <= UInt64(all.count - start) else { throw bad(at + 16, "a frame of \(stored) stored bytes runs past the end of the file") }
            guard transform != .raw || stored == raw else { throw bad(at + 16, "a raw frame whose stored size \(stored) differs from its size \(raw)") }
            let f = Frame(offset: at, transform: transform, raw: Int(raw), stored: start..<(start + Int(stored)))
            at = f.stored.upperBound
            return f
        }

        func write(_ b: UnsafeRawBufferPointer) throws {
            do { try out.write(b) } catch { throw DSPackError.io(error, file: destination) }
        }

        func zeroFill(_ n: Int) throws {
            var left = n
            while left > 0 {
                let k = min(left, FrameReader.zeros.count)
                try FrameReader.zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<k])) }
                left -= k
            }
        }

        /// Writes the frame's bytes, decompressed and (transform 2) joined from planes.
        mutating func restore(_ f: Frame, width: Int) throws {
            let src = UnsafeRawBufferPointer(rebasing: all[f.stored])
            switch f.transform {
            case .raw:
                try write(src)
            case .zstd, .planes:
                let w = f.transform == .planes ? width : 1
                guard f.transform != .planes || (w > 1 && f.raw % w == 0) else { throw bad(f.offset, "a plane frame for an entry that is not split into planes") }
                // Decompressed in blocks: transform 2 block by block (each its own planes).
                let block = f.transform == .planes ? DSPackTransport.planeBlockElements * w : 1 << 22
                let size = min(block, max(f.raw, 1))
                // Local buffers (moved out of self and back) so that the closures below may use self.
                var buffer = self.buffer, joined = self.joined
                self.buffer = []
                self.joined = []
                defer { self.buffer = buffer; self.joined = joined }
                if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
                if f.transform == .planes && joined.count < size { joined = [UInt8](repeating: 0, count: size) }
                ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
                var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
                var left = f.raw
                var finished = false
                while left > 0 {
                    let want = min(block, left)
                    var filled = 0
                    while filled < want {
                        var r = 0
                        try buffer.withUnsafeMutableBytes { b in
                            var output = ZSTD_outBuffer(dst: b.baseAddress! + filled, size: want - filled, pos: 0)
                            r = ZSTD_decompressStream(dctx, &output, &input)
                            if ZSTD_isError(r) != 0 { throw bad(f.offset, "libzstd: \(String(cString: ZSTD_getErrorName(r)))") }
                            filled += output.pos
                            if output.pos == 0 && input.pos == input.size && r != 0 { throw bad(f.offset, "the zstd frame ends before its \(f.raw) bytes") }
                        }
                        if r == 0 { finished = true; if filled < want { throw bad(f.offset, "the zstd frame holds fewer than its \(f.raw) bytes") } }
                    }
                    if f.transform == .planes {
                        let n = want / w
                        buffer.withUnsafeBytes { s in
                            joined.withUnsafeMutableBytes { d in DSPackTransport.join(UnsafeRawBufferPointer(rebasing: s[0..<want]), into: d.baseAddress!, elements: n, width: w) }
                        }
                        try joined.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<want])) }
                    } else {
                        try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<want])) }
                    }
                    left -= want
                }
                if !finished {
                    // The frame must end exactly here: no more output, and its end marker consumed.
                    var probe: UInt8 = 0
                    let r = withUnsafeMutableBytes(of: &probe) { p -> Int in
                        var output = ZSTD_outBuffer(dst: p.baseAddress, size: 1, pos: 0)
                        let r = ZSTD_decompressStream(dctx, &output, &input)
                        return ZSTD_isError(r) != 0 || output.pos != 0 ? -1 : r
                    }
                    guard r == 0 else { throw bad(f.offset, "the zstd frame holds more than its \(f.raw) bytes, or is corrupted") }
                }
                guard input.pos == input.size else { throw bad(f.offset, "\(input.size - input.pos) stored bytes after the end of the zstd frame") }
            }
        }
    }
}
