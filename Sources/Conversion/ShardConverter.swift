import Dispatch
import Numerics
import Quantization
import SafeTensors
import SystemIO

/// Writes one output shard: reads the tensors it needs from the store, transforms each in plan
/// order with all cores, and streams the results through the plan format's writer (temporary
/// name, renamed when complete), hashing the bytes on the way for the resume record.
///
/// Computing and writing overlap: tensor k+1 is transformed while a writer thread copies tensor
/// k to the file, using two sets of scratch buffers in turn. Kept tensors are streamed in chunks
/// of at most `chunkBytes` straight from the store, each chunk's pages dropped from the resident
/// set once written, so memory stays bounded by the two quantized tensors in flight plus a
/// chunk, whatever the size of the tensors, the shard or the checkpoint.
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

    init(store: any TensorStore, format: any TensorFileFormat) {
        self.store = store
        self.format = format
    }

    /// Converts `plan` into `path`; returns the file size and XXH64 of what was written.
    func convert(_ plan: OutputShardPlan, to path: String, durable: Bool = false, observer: ConversionObserver) throws -> (size: Int, xxh64: UInt64) {
        let specs = plan.tensors.flatMap(\.outputs)
        let writer = try format.makeWriter(path: path, tensors: specs)
        let pipeline = WritePipeline(writer: writer)
        defer { pipeline.drain() }
        do {
            for t in plan.tensors {
                if Interrupt.requested { throw Interrupted() }
                if case .copy = t.action {
                    try stream(t, pipeline)
                } else {
                    try transform(t, pipeline)
                }
                observer.tensorDone(t.source, inputBytes: inputBytes(t))
            }
            pipeline.drain()
            try pipeline.check()
            try writer.finish(durable: durable)
        } catch {
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
        let slot = nextSlot
        nextSlot = (nextSlot + 1) % slots.count
        try pipeline.acquire(slot)
        return slot
    }

    /// A kept tensor (or a region of it), chunk by chunk: contiguous runs go to the writer
    /// straight from the store's mapping; the runs of a region along an inner dimension are
    /// gathered into a scratch slot first.
    private func stream(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
        let view = try store.view(t.source)
        let name = t.outputs[0].name
        let elementSize = max(1, view.info.byteCount / max(1, view.info.elementCount))
        let region = t.region ?? TensorRegion(dimension: 0, range: 0..<(view.shape.first ?? 1))
        let shape = view.shape.isEmpty ? [1] : view.shape
        if view.info.byteCount == 0 {
            pipeline.submit(nil, [(name, view.bytes)]) {}
            return
        }
        if region.dimension == 0 {
            try region.forEachRun(shape: shape, elementSize: elementSize) { start, length in
                var off = start
                while off < start + length {
                    if Interrupt.requested { throw Interrupted() }
                    let end = min(start + length, off + Self.chunkBytes)
                    let range = off..<end
                    store.prefetch(t.source, bytes: range)
                    pipeline.submit(nil, [(name, UnsafeRawBufferPointer(rebasing: view.bytes[range]))]) { [store] in
                        store.release(t.source, bytes: range)
                    }
                    try pipeline.check()
                    off = end
                }
            }
            return
        }
        // Inner-dimension region: batches of whole runs up to a chunk (a run larger than a chunk
        // is split; runs are contiguous in the output, so pieces may cut anywhere).
        var pending: [(Int, Int)] = []
        var pendingBytes = 0
        func flush() throws {
            guard pendingBytes > 0 else { return }
            let slot = try takeSlot(pipeline)
            let buf = regionScratch[slot].reserve(pendingBytes)
            var at = 0
            for (off, len) in pending {
                (buf + at).copyMemory(from: view.bytes.baseAddress! + off, byteCount: len)
                at += len
            }
            let touched = pending
            pipeline.submit(slot, [(name, UnsafeRawBufferPointer(start: buf, count: pendingBytes))]) { [store] in
                for (off, len) in touched { store.release(t.source, bytes: off..<(off + len)) }
            }
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
        }
        try region.forEachRun(shape: shape, elementSize: elementSize) { start, length in
            var off = start
            while off < start + length {
                let take = min(start + length - off, Self.chunkBytes - pendingBytes)
                pending.append((off, take))
                pendingBytes += take
                off += take
                if pendingBytes == Self.chunkBytes { try flush() }
            }
        }
        try flush()
    }

    /// A tensor computed whole in a scratch slot (quantize, dequantize, requantize).
    private func transform(_ t: TensorPlan, _ pipeline: WritePipeline) throws {
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

/// A serial writer thread fed with the byte ranges of one tensor at a time; each submission
/// belongs to a scratch slot that may not be reused until its bytes are written.
private final class WritePipeline: @unchecked Sendable {
    let writer: TensorFileWriter
    let queue = DispatchQueue(label: "dsconvert.shard-writer")
    /// Created at 0 and signalled once: libdispatch traps when a semaphore is destroyed below its
    /// initial value, which an error path (a slot acquired, never written) would otherwise do.
    let free: [DispatchSemaphore] = (0..<2).map { _ in
        let s = DispatchSemaphore(value: 0)
        s.signal()
        return s
    }
    private(set) var hash: UInt64 = 0
    private var hasher = XXH64()
    private var error: Error?

    init(writer: TensorFileWriter) {
        self.writer = writer
        writer.observer = { [unowned self] in self.hasher.update($0) }
    }

    /// Waits until `slot`'s previous bytes are written; rethrows a write error.
    func acquire(_ slot: Int) throws {
        free[slot].wait()
        try check()
    }

    func release(_ slot: Int) { free[slot].signal() }

    /// Byte ranges handed to the writer thread; they stay valid until the slot is released.
    private struct Pieces: @unchecked Sendable { var items: [(String, UnsafeRawBufferPointer)] }

    /// `slot` nil: the bytes are not in a scratch slot (they stay valid on their own, e.g. the
    /// store's mapping).
    func submit(_ slot: Int?, _ pieces: [(String, UnsafeRawBufferPointer)], then done: @escaping () -> Void) {
        let pieces = Pieces(items: pieces)
        queue.async { [self] in
            defer { if let slot { free[slot].signal() } }
            guard error == nil else { return }
            do {
                for (name, bytes) in pieces.items { try writer.write(name, bytes) }
                done()
            } catch {
                self.error = error
            }
        }
    }

    /// Waits for every submitted write.
    func drain() {
        queue.sync { hash = hasher.finalize() }
    }

    func check() throws {
        if let e = queue.sync(execute: { error }) { throw e }
    }
}
