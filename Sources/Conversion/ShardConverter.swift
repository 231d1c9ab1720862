import Dispatch
import Numerics
import Quantization
import SafeTensors
import SystemIO

/// Writes one output shard: reads the tensors it needs from the store, transforms each in plan
/// order with all cores, and streams the results through the plan format's writer (temporary
/// name, renamed when complete), hashing the bytes on the way for the resume record.
///
/// Computing and writing overlap: one tensor (or band of a large tensor) is transformed while a
/// writer thread copies the previous one to the file, using two sets of scratch buffers in turn.
/// Kept tensors are streamed in chunks of at most `chunkBytes` straight from the store, and
/// tensors larger than a chunk are transformed in bands of about a chunk of input; input pages
/// are dropped from the resident set once written, so memory stays bounded by two bands (or two
/// small tensors) in flight, whatever the size of the tensors, the shard or the checkpoint.
final class ShardConverter {
    let store: any TensorStore
    let format: any TensorFileFormat
    /// Two transforms, each with its own scratch buffers, used alternately.
    private let slots = [TensorTransform(), TensorTransform()]
    /// Per slot: a region of the input (and of its scales) gathered into contiguous memory.
    private let regionScratch = [Scratch(), Scratch()]
    /// Per slot: the matching regions of the scale and zero point.
    private let regionScaleScratch = [[Scratch(), Scratch()], [Scratch(), Scratch()]]
    private var nextSlot = 0
    /// The unit of streaming for kept tensors.
    static var chunkBytes = 32 << 20
    /// The writer's read buffer for bytes it reads from the input files itself: large enough for
    /// few system calls, small enough to stay in the core's cache between the read and the write
    /// (256 KiB measured fastest on this machine's 2 MiB L2 among 128 KiB–4 MiB).
    static var copyBufferBytes = 256 << 10

    init(store: any TensorStore, format: any TensorFileFormat) {
        self.store = store
        self.format = format
    }

    /// Converts `plan` into `path`; returns the file size and XXH3-64 of what was written.
    /// `cancelled` is asked before each tensor: true stops the file (`Cancelled`), nothing renamed.
    func convert(_ plan: OutputShardPlan, to path: String, durable: Bool = false, observer: ConversionObserver,
                 cancelled: () -> Bool = { false }) throws -> (size: Int, xxh3: UInt64) {
        let specs = plan.tensors.flatMap(\.outputs)
        let writer = try format.makeWriter(path: path, output: plan.name, tensors: specs)
        let pipeline = WritePipeline(writer: writer, store: store)
        defer { pipeline.drain() }
        do {
            for (k, t) in plan.tensors.enumerated() {
                if Interrupt.requested { throw Interrupted() }
                if cancelled() { throw Cancelled() }
                if case .copy = t.action, t.fold == nil, t.region.map({ $0.dimension == 0 }) ?? true {
                    // Kept bytes straight from the mapping, batched with their neighbours.
                    try batch(t, pipeline)
                } else {
                    try flushBatch(pipeline)
                    // Read ahead: the next tensor's first bytes load while this one is computed
                    // (a gathered copy's first span; nothing for bytes the writer reads itself).
                    if k + 1 < plan.tensors.count, let next = store.info(plan.tensors[k + 1].source) {
                        let n = plan.tensors[k + 1]
                        if case .copy = n.action {
                            if n.region.map({ $0.dimension != 0 }) ?? false || store.storedLocation(of: n.source) == nil {
                                store.prefetch(n.source, bytes: 0..<min(next.byteCount, Self.spanBytes))
                            }
                        } else {
                            store.prefetch(n.source, bytes: 0..<min(next.byteCount, 2 * Self.chunkBytes))
                        }
                    }
                    if case .copy = t.action, t.fold == nil {
                        try stream(t, pipeline)
                    } else {
                        try transform(t, pipeline)
                    }
                }
                observer.tensorDone(t.source, inputBytes: inputBytes(t))
            }
            try flushBatch(pipeline)
            pipeline.drain()
            try pipeline.check()
            // A stop asked for during the last tensor: nothing is renamed into place.
            if Interrupt.requested { throw Interrupted() }
            try writer.finish(durable: durable)
            // A format whose header follows from the data (a pack) shows the observer the file
            // only in `finish`: the hash is taken again once it has seen every byte.
            pipeline.drain()
        } catch {
            // A batch not handed over belongs to this file: the next one starts empty.
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
            pipeline.drain()
            writer.abort()
            throw error
        }
        return (writer.fileSize, pipeline.hash)
    }

    private func inputBytes(_ t: TensorPlan) -> Int {
        var b = t.outputs[0].byteCount
        if t.region == nil, let info = store.info(t.source) { b = info.byteCount }
        switch t.action {
        case let .dequantize(q, _), let .requantize(q, _, _): b += q.scale.byteCount
        default: break
        }
        return b
    }

    private func takeSlot(_ pipeline: WritePipeline) throws -> Int {
        try flushBatch(pipeline)
        let slot = nextSlot
        nextSlot = (nextSlot + 1) % slots.count
        try pipeline.acquire(slot)
        return slot
    }

    /// Kept bytes waiting to go to the writer in one submission, in file order: runs of the
    /// store's files (read by the writer thread itself, `pread` into a small buffer: no mapping
    /// and no page faults on this side) when the store says where its bytes are stored, else
    /// pieces straight from its mapping (no scratch is held). The writer writes pieces adjacent
    /// in the input with one system call per buffer, so the whole experts of a rank, or
    /// consecutive replicated tensors, cost a few large writes rather than one per tensor.
    private var pending: [WritePiece] = []
    private var pendingBytes = 0
    /// The store's files, opened for `pread` by the writer thread (kept for the converter's life).
    private lazy var sources = SourceFiles(store: store)

    /// A kept tensor, or a region of it along dim 0 (contiguous runs): its pieces join the batch,
    /// which is handed to the writer once it holds a chunk.
    private func batch(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        let name = t.outputs[0].name
        guard let info = store.info(t.source) else { _ = try store.view(t.source); return }
        let stored = store.storedLocation(of: t.source)
        // Stored runs need no view (and no mapping) at all.
        let view = stored == nil || info.byteCount == 0 ? try store.view(t.source) : nil
        if info.byteCount == 0 {
            pending.append(.memory(name, view!.bytes))
            return
        }
        let elementSize = max(1, info.byteCount / max(1, info.elementCount))
        let region = t.region ?? TensorRegion(dimension: 0, range: 0..<(info.shape.first ?? 1))
        let shape = info.shape.isEmpty ? [1] : info.shape
        try region.forEachRun(shape: shape, elementSize: elementSize) { start, length in
            var off = start
            while off < start + length {
                let end = min(start + length, off + Self.chunkBytes - pendingBytes)
                if let (file, at) = stored {
                    pending.append(.stored(name, file: file, offset: at + off, count: end - off))
                } else {
                    pending.append(.memory(name, UnsafeRawBufferPointer(rebasing: view!.bytes[off..<end])))
                }
                pendingBytes += end - off
                off = end
                if pendingBytes >= Self.chunkBytes { try flushBatch(pipeline) }
            }
        }
    }

    /// Hands the batch to the writer (queued without waiting: the bytes are the mapping's); its
    /// runs of adjacent bytes are prefetched first. A write error stops the queue and is
    /// reported at the next slot or drain.
    private func flushBatch(_ pipeline: WritePipeline) throws {
        guard !pending.isEmpty else { return }
        if Interrupt.requested { throw Interrupted() }
        var run: UnsafeRawBufferPointer?
        for case let .memory(_, b) in pending where b.count > 0 {
            if let r = run, r.baseAddress! + r.count == b.baseAddress! {
                run = UnsafeRawBufferPointer(start: r.baseAddress, count: r.count + b.count)
            } else {
                if let r = run { store.prefetch(mapped: r) }
                run = b
            }
        }
        if let r = run { store.prefetch(mapped: r) }
        pipeline.submit(nil, pending, sources: sources) {}
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
    }

    /// A kept region along an inner dimension: its runs are gathered from the mapping into a
    /// scratch slot. Every rank's gather reads the pages of the whole tensor (a run is often a
    /// fraction of a page), so they are entered in the page tables a span of at most `spanBytes`
    /// at a time with one call (`MappedFile.populate`: no fault per page, no copy of the
    /// bytes between) and the span's pages leave the resident set once gathered.
    private func stream(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        let view = try store.view(t.source)
        let name = t.outputs[0].name
        let elementSize = max(1, view.info.byteCount / max(1, view.info.elementCount))
        let region = t.region!
        let shape = view.shape.isEmpty ? [1] : view.shape
        let base = view.bytes.baseAddress!
        // Inner-dimension region: batches of whole runs up to a span (a run larger than that is
        // split; runs are contiguous in the output, so pieces may cut anywhere). A span, not a
        // chunk: the two slots' scratch then stays at 2 × `spanBytes` whatever the tensor's
        // width (a TP 8 slice of the 671B model's o_proj is 29 MB, of the 1/32 one's 0.9 MB).
        let limit = min(Self.chunkBytes, Self.spanBytes)
        var runs: [(Int, Int)] = []
        var runBytes = 0
        func flush() throws {
            guard runBytes > 0 else { return }
            if Interrupt.requested { throw Interrupted() }
            let slot = try takeSlot(pipeline)
            let buf = regionScratch[slot].reserve(runBytes)
            var at = 0
            var k = 0
            while k < runs.count {
                let first = runs[k].0
                var e = k
                while e + 1 < runs.count && runs[e + 1].0 + runs[e + 1].1 - first <= Self.spanBytes { e += 1 }
                let end = runs[e].0 + runs[e].1
                MappedFile.populate(UnsafeRawBufferPointer(start: base + first, count: end - first))
                for (off, len) in runs[k...e] {
                    (buf + at).copyMemory(from: base + off, byteCount: len)
                    at += len
                }
                // (Pages cut by the span's edges stay until the writer's periodic `releaseAll`.)
                store.release(t.source, bytes: first..<end)
                k = e + 1
            }
            pipeline.submit(slot, [(name, UnsafeRawBufferPointer(start: buf, count: runBytes))]) {}
            runs.removeAll(keepingCapacity: true)
            runBytes = 0
        }
        try region.forEachRun(shape: shape, elementSize: elementSize) { start, length in
            var off = start
            while off < start + length {
                let take = min(start + length - off, limit - runBytes)
                runs.append((off, take))
                runBytes += take
                off += take
                if runBytes == limit { try flush() }
            }
        }
        try flush()
    }

    /// The span of input `stream` maps in at a time.
    static var spanBytes = 4 << 20

    /// A tensor computed in a scratch slot (quantize, dequantize, requantize): band by band when
    /// it is larger than a chunk, whole otherwise (and for regions along an inner dimension).
    /// A SmoothQuant-folded tensor always goes whole (TensorTransform folds it in f32).
    private func transform(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        if t.fold == nil, let info = store.info(t.source), info.shape.count == 2, info.byteCount > Self.chunkBytes,
           t.region.map({ $0.dimension == 0 }) ?? true {
            return try bands(t, pipeline)
        }
        try whole(t, pipeline)
    }

    /// Scratch of the band path that lives across bands (the tensor's scales, maxima, a
    /// dequantized band for a measuring pass).
    private let tensorScales = Scratch()
    private let tensorAmax = Scratch()
    private let measureScratch = Scratch()

    /// The band path: rows of the source are read, transformed and handed to the writer a band at
    /// a time (two bands in flight, alternating scratch slots), each band's input pages released
    /// once its output is written, so a tensor of any size takes memory for two bands only. A
    /// scale that depends on every row (per tensor) is found by a first pass over the bands.
    /// The bytes are those of the whole-tensor path: the codecs' scales are per block or per
    /// row, so bands cut at multiples of the codec's `bandRows` compute exactly the same values.
    private func bands(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        let view = try store.view(t.source)
        let fullRows = view.shape[0], cols = view.shape[1]
        let first = t.region?.range.lowerBound ?? 0
        let rows = t.region?.range.count ?? fullRows
        let inSize = view.dtype.byteSize!
        let base = view.bytes.baseAddress!
        func inputBytes(_ r: Range<Int>) -> Range<Int> { ((first + r.lowerBound) * cols * inSize)..<((first + r.upperBound) * cols * inSize) }

        // What is read (a quantized source, decoded through its codec) and what is written.
        var decoder: QuantizedSource?
        var outFormat: FloatFormat?
        var target: (any WeightCodec)?
        func decode(_ q: QuantizedWeight, to d: DType) throws {
            outFormat = try QuantizedSource.target(q, d)
            decoder = try QuantizedSource(q, scale: store.view(q.scale.name), zeroPoint: q.zeroPoint.map { try store.view($0.name) })
        }
        switch t.action {
        case let .quantize(scheme): target = try t.codec(scheme)
        case let .dequantize(q, d): try decode(q, to: d)
        case let .requantize(q, scheme, d): try decode(q, to: d); target = try t.codec(scheme)
        case .copy: preconditionFailure("copies are streamed")
        }
        let parameterNames = decoder.map { [$0.weight.scale.name] + ($0.weight.zeroPoint.map { [$0.name] } ?? []) } ?? []
        // Bands: whole scale groups of both codecs, about a chunk of input each.
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let unit = [decoder?.codec.bandRows ?? 1, target?.bandRows ?? 1].reduce(1) { $0 / gcd($0, $1) * $1 }
        let band = max(unit, Self.chunkBytes / max(1, cols * inSize) / unit * unit)
        let plainFormat = outFormat ?? view.dtype.floatFormat!
        let plainSize = plainFormat.size

        /// Rows `r` of the source as a plain matrix: straight from the mapping, or dequantized
        /// into `into` (validated on the way).
        func plain(_ r: Range<Int>, into: Scratch) throws -> UnsafeRawPointer {
            let codes = base + (first + r.lowerBound) * cols * inSize
            guard let decoder else { return UnsafeRawPointer(codes) }
            let out = into.reserve(r.count * cols * plainSize)
            try decoder.dequantize(codes, firstRow: first + r.lowerBound, rows: r.count, into: out, format: plainFormat)
            return UnsafeRawPointer(out)
        }
        func eachBand(_ body: (Range<Int>) throws -> Void) throws {
            var r = 0
            while r < rows {
                if Interrupt.requested { throw Interrupted() }
                let b = r..<min(rows, r + band)
                store.prefetch(t.source, bytes: inputBytes(b))
                // and the band after it, which loads while this one is computed
                if b.upperBound < rows { store.prefetch(t.source, bytes: inputBytes(b.upperBound..<min(rows, b.upperBound + band))) }
                try body(b)
                r = b.upperBound
            }
        }
        /// Row numbers in the codec's messages count from the band: make them the tensor's.
        func shifted<T>(_ r: Range<Int>, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let QuantizationError.nonFinite(tensor, row, column) {
                throw QuantizationError.nonFinite(tensor: tensor, row: first + r.lowerBound + row, column: column)
            }
        }

        guard let qc = target else {
            // dequantize: each band straight to the writer.
            try eachBand { r in
                let slot = try takeSlot(pipeline)
                do {
                    let out = try plain(r, into: slots[slot].values)
                    let bytes = inputBytes(r)
                    pipeline.submit(slot, [(t.outputs[0].name, UnsafeRawBufferPointer(start: out, count: r.count * cols * plainSize))]) { [store] in
                        store.release(t.source, bytes: bytes)
                    }
                } catch { pipeline.release(slot); throw error }
            }
            store.release(parameterNames)
            return
        }

        // quantize / requantize.
        let w = t.outputs[0], s = t.outputs[1]
        let allScales = tensorScales.reserve(s.elementCount * 4).bindMemory(to: Float.self, capacity: s.elementCount)
        if !qc.scalesAreLocal {
            // First pass: the maxima of every row, then the one scale.
            let amax = tensorAmax.reserve(qc.amaxCount(rows: rows, cols: cols) * 4).bindMemory(to: UInt32.self, capacity: rows)
            try eachBand { r in
                let p = try plain(r, into: measureScratch)
                CodecDriver.measure(qc, PlainMatrix(base: p, format: plainFormat, rows: r.count, cols: cols), amax: amax + r.lowerBound)
                store.release(t.source, bytes: inputBytes(r))
            }
            try qc.scales(amax: amax, rows: rows, cols: cols, source: plainFormat, tensor: t.source, into: allScales)
        }
        try eachBand { r in
            let slot = try takeSlot(pipeline)
            do {
                let p = try plain(r, into: slots[slot].intermediate)
                let src = PlainMatrix(base: p, format: plainFormat, rows: r.count, cols: cols)
                let q = slots[slot].values.reserve(r.count * cols)
                if qc.scalesAreLocal {
                    try shifted(r) { try CodecDriver.quantize(qc, src, tensor: t.source, q: q, scales: allScales + qc.scaleOffset(row: r.lowerBound, cols: cols)) }
                } else {
                    CodecDriver.encode(qc, src, scales: allScales, into: q)
                }
                let bytes = inputBytes(r)
                pipeline.submit(slot, [(w.name, UnsafeRawBufferPointer(start: q, count: r.count * cols))]) { [store] in
                    store.release(t.source, bytes: bytes)
                }
            } catch { pipeline.release(slot); throw error }
        }
        // The scales, in their stored dtype, after the weight.
        let slot = try takeSlot(pipeline)
        let inputScaleAt = (s.byteCount + 63) / 64 * 64
        let out = slots[slot].scales.reserve(inputScaleAt + 64)
        FloatFormat.convert(UnsafeRawPointer(allScales), from: .f32, to: out, s.dtype.floatFormat!, count: s.elementCount)
        var pieces = [(s.name, UnsafeRawBufferPointer(start: out, count: s.byteCount))]
        // Static activations: the calibrated input_scale follows.
        if let spec = t.storeInputScale(into: out + inputScaleAt) { pieces.append((spec.name, UnsafeRawBufferPointer(start: out + inputScaleAt, count: spec.byteCount))) }
        pipeline.submit(slot, pieces) { [store] in store.release(parameterNames) }
    }

    /// The whole-tensor path (small tensors; regions along an inner dimension).
    private func whole(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        let slot = try takeSlot(pipeline)
        var read: [String] = [t.source]
        do {
            store.prefetch([t.source])
            var input = try store.view(t.source)
            var plan = t
            var scaleRegion: TensorRegion?
            /// The scale and zero point, cut with `scaleRegion`.
            var scaleNames: [String] = []
            if let region = t.region {
                let full = input
                let elementSize = full.info.byteCount / max(1, full.info.elementCount)
                let shape = region.shape(of: full.shape)
                let n = elementSize * shape.reduce(1, *)
                let buf = regionScratch[slot].reserve(n)
                region.gather(full.bytes, shape: full.shape, elementSize: elementSize, into: buf)
                input = TensorView(info: TensorInfo(name: full.name, dtype: full.dtype, shape: shape, dataOffsets: 0..<n),
                                   bytes: UnsafeRawBufferPointer(start: buf, count: n), file: full.file)
                switch t.action {
                case let .dequantize(q, d):
                    scaleRegion = try q.scaleRegion(for: region, tensor: t.source)
                    scaleNames = [q.scale.name] + (q.zeroPoint.map { [$0.name] } ?? [])
                    plan.action = .dequantize(try q.restricted(to: region), d)
                case let .requantize(q, s, d):
                    scaleRegion = try q.scaleRegion(for: region, tensor: t.source)
                    scaleNames = [q.scale.name] + (q.zeroPoint.map { [$0.name] } ?? [])
                    plan.action = .requantize(try q.restricted(to: region), s, d)
                default: break
                }
            }
            var pieces: [(String, UnsafeRawBufferPointer)] = []
            pieces.reserveCapacity(2)
            try slots[slot].run(plan, input: input, tensor: { name in
                read.append(name)
                let v = try self.store.view(name)
                guard let k = scaleNames.firstIndex(of: name), let sr = scaleRegion else { return v }
                let es = v.info.byteCount / max(1, v.info.elementCount)
                let shape = sr.shape(of: v.shape)
                let n = es * shape.reduce(1, *)
                let buf = self.regionScaleScratch[slot][k].reserve(n)
                sr.gather(v.bytes, shape: v.shape, elementSize: es, into: buf)
                return TensorView(info: TensorInfo(name: v.name, dtype: v.dtype, shape: shape, dataOffsets: 0..<n),
                                  bytes: UnsafeRawBufferPointer(start: buf, count: n), file: v.file)
            }) { spec, bytes in pieces.append((spec.name, bytes)) }
            let names = read
            pipeline.submit(slot, pieces) { [store] in store.release(names) }
        } catch {
            pipeline.release(slot)
            throw error
        }
    }
}

/// A serial writer thread fed with byte ranges (pieces of one or more tensors) at a time; each
/// submission belongs to a scratch slot that may not be reused until its bytes are written.
/// Pieces adjacent in memory are written with one call (`TensorFileWriter.write(run:_:)`), and
/// every `releaseEvery` bytes written the store's mapped pages leave the resident set, so the
/// input pages a run touches stay bounded by that window.
private final class WritePipeline: @unchecked Sendable {
    let writer: TensorFileWriter
    let store: any TensorStore
    let queue = DispatchQueue(label: "dsconvert.shard-writer")
    /// Created at 0 and signalled once: libdispatch traps when a semaphore is destroyed below its
    /// initial value, which an error path (a slot acquired, never written) would otherwise do.
    let free: [DispatchSemaphore] = (0..<2).map { _ in
        let s = DispatchSemaphore(value: 0)
        s.signal()
        return s
    }
    private(set) var hash: UInt64 = 0
    private let hasher = XXH3.Stream()
    private var error: Error?
    /// Bytes written since the store's pages were last released (writer thread only).
    private var sinceRelease = 0
    static var releaseEvery = 64 << 20

    init(writer: TensorFileWriter, store: any TensorStore) {
        self.writer = writer
        self.store = store
        writer.observer = { [unowned self] in self.hasher.update($0) }
    }

    /// Waits until `slot`'s previous bytes are written; rethrows a write error.
    func acquire(_ slot: Int) throws {
        free[slot].wait()
        try check()
    }

    func release(_ slot: Int) { free[slot].signal() }

    /// Byte ranges handed to the writer thread; they stay valid until the slot is released.
    private struct Pieces: @unchecked Sendable { var items: [WritePiece]; var sources: SourceFiles? }

    /// `slot` nil: the bytes are not in a scratch slot (they stay valid on their own, e.g. the
    /// store's mapping).
    func submit(_ slot: Int?, _ pieces: [(String, UnsafeRawBufferPointer)], then done: @escaping () -> Void) {
        submit(slot, pieces.map { .memory($0.0, $0.1) }, sources: nil, then: done)
    }

    /// `sources`: where the writer reads `.stored` pieces from.
    func submit(_ slot: Int?, _ pieces: [WritePiece], sources: SourceFiles?, then done: @escaping () -> Void) {
        let pieces = Pieces(items: pieces, sources: sources)
        queue.async { [self] in
            defer { if let slot { free[slot].signal() } }
            guard error == nil else { return }
            do {
                try write(pieces.items, sources: pieces.sources)
                done()
            } catch {
                self.error = error
            }
        }
    }

    /// Writes `items` in order: each maximal group of pieces adjacent in memory in one call, each
    /// maximal group of stored pieces adjacent in one file through the read buffer.
    private func write(_ items: [WritePiece], sources: SourceFiles?) throws {
        var i = 0
        var total = 0
        while i < items.count {
            if case let .stored(_, file, offset, count) = items[i] {
                var end = offset + count
                var j = i + 1
                while j < items.count, case let .stored(_, f, o, c) = items[j], f == file, o == end {
                    end += c
                    j += 1
                }
                try copy(items[i..<j], file: file, offset: offset, count: end - offset, sources: sources!)
                // Counted too: the window bounds the mapped pages that gathers touch in between.
                total += end - offset
                i = j
                continue
            }
            guard case let .memory(name, first) = items[i] else { preconditionFailure() }
            var end = first.baseAddress.map { $0 + first.count }
            var j = i + 1
            // Empty pieces (zero-size tensors) join any group.
            while j < items.count, case let .memory(_, b) = items[j], let e = end, b.count == 0 || b.baseAddress == e {
                end = e + b.count
                j += 1
            }
            if j == i + 1 {
                try writer.write(name, first)
            } else {
                let bytes = UnsafeRawBufferPointer(start: first.baseAddress, count: end! - first.baseAddress!)
                try writer.write(run: items[i..<j].map { (name: $0.name, count: $0.count) }, bytes)
            }
            total += end.map { $0 - first.baseAddress! } ?? 0
            i = j
        }
        sinceRelease += total
        if sinceRelease >= Self.releaseEvery {
            store.releaseAll()
            sinceRelease = 0
        }
    }

    private lazy var copyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ShardConverter.copyBufferBytes, alignment: 4096)
    deinit { copyBuffer.deallocate() }

    /// Stored pieces lying one after another in `file` (`count` bytes from `offset`): read a
    /// buffer at a time and written with one call per buffer, the pieces cut at its edges.
    private func copy(_ pieces: ArraySlice<WritePiece>, file: Int, offset: Int, count: Int, sources: SourceFiles) throws {
        var k = pieces.startIndex
        var usedInPiece = 0
        var done = 0
        var run: [(name: String, count: Int)] = []
        while done < count {
            let n = min(copyBuffer.count, count - done)
            try sources.read(file, at: offset + done, count: n, into: copyBuffer.baseAddress!)
            run.removeAll(keepingCapacity: true)
            var left = n
            while left > 0 {
                let p = pieces[k]
                let take = min(p.count - usedInPiece, left)
                if take > 0 { run.append((p.name, take)) }
                usedInPiece += take
                left -= take
                if usedInPiece == p.count { k += 1; usedInPiece = 0 }
            }
            let bytes = UnsafeRawBufferPointer(rebasing: copyBuffer[0..<n])
            if run.count == 1 { try writer.write(run[0].name, bytes) } else { try writer.write(run: run, bytes) }
            done += n
        }
    }

    /// Waits for every submitted write, then drops the store's pages from the resident set.
    func drain() {
        queue.sync {
            hash = hasher.digest
            if sinceRelease > 0 { store.releaseAll(); sinceRelease = 0 }
        }
    }

    func check() throws {
        if let e = queue.sync(execute: { error }) { throw e }
    }
}

/// A piece of a tensor's output bytes handed to the writer thread: bytes in memory (a scratch
/// slot, the store's mapping), or `count` bytes stored at `offset` of the store's file `file`,
/// which the writer reads itself.
enum WritePiece {
    case memory(String, UnsafeRawBufferPointer)
    case stored(String, file: Int, offset: Int, count: Int)

    var name: String {
        switch self {
        case let .memory(n, _), let .stored(n, _, _, _): return n
        }
    }

    var count: Int {
        switch self {
        case let .memory(_, b): return b.count
        case let .stored(_, _, _, c): return c
        }
    }
}

/// The store's files opened for reading with `pread`, each on first use, closed with the object.
final class SourceFiles: @unchecked Sendable {
    private let store: any TensorStore
    private var fds: [Int: Int32] = [:]
    private let lock = PThreadLock()

    init(store: any TensorStore) { self.store = store }

    deinit { for fd in fds.values { Sys.close(fd) } }

    /// Reads exactly `count` bytes at `offset` of file `file`; a short or failing read is an
    /// `IOError` naming the file.
    func read(_ file: Int, at offset: Int, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        let path = store.files[file].path
        let fd: Int32 = try lock.withLock {
            if let fd = fds[file] { return fd }
            let fd = try Sys.openForReading(path).fd
            fds[file] = fd
            return fd
        }
        try Sys.pread(fd, path: path, into: buffer, count: count, offset: offset)
    }
}
