import Dispatch
import Numerics
import Quantization
import SafeTensors
import SystemIO

/// Writes one output shard: maps the input shards it reads, transforms each tensor in plan
/// order with all cores, and streams the results through a `SafeTensorsWriter` (temporary name,
/// renamed when complete), hashing the bytes on the way for the resume record.
///
/// Computing and writing overlap: tensor k+1 is transformed while a writer thread copies tensor
/// k to the file, using two sets of scratch buffers in turn. Input pages are dropped from the
/// resident set as soon as a tensor is written, so memory stays bounded by the two tensors in
/// flight, not by the shard or checkpoint size.
final class ShardConverter {
    let weights: SafeTensorsCheckpoint
    /// Two transforms, each with its own scratch buffers, used alternately.
    private let slots = [TensorTransform(), TensorTransform()]
    private var open: [Int: SafeTensorsFile] = [:]

    init(weights: SafeTensorsCheckpoint) {
        self.weights = weights
    }

    private func file(_ shard: Int) throws -> SafeTensorsFile {
        if let f = open[shard] { return f }
        let f = try weights.open(shard: shard)
        open[shard] = f
        return f
    }

    private func view(_ name: String) throws -> (TensorView, SafeTensorsFile) {
        guard let loc = weights.location(name) else {
            throw SafeTensorsError(.missingTensor, file: weights.directory, tensor: name, "not in the checkpoint")
        }
        let f = try file(loc.shard)
        return (f.view(loc.info), f)
    }

    /// Converts `plan` into `path`; returns the file size and XXH64 of what was written.
    func convert(_ plan: OutputShardPlan, to path: String, observer: ConversionObserver) throws -> (size: Int, xxh64: UInt64) {
        defer { open.removeAll() }  // unmap inputs
        let specs = plan.tensors.flatMap(\.outputs)
        let writer = try SafeTensorsWriter(path: path, tensors: specs)
        let pipeline = WritePipeline(writer: writer)
        defer { pipeline.drain() }
        for (k, t) in plan.tensors.enumerated() {
            if Interrupt.requested { pipeline.drain(); writer.abort(); throw Interrupted() }
            let slot = k % slots.count
            try pipeline.acquire(slot)
            let (input, f) = try view(t.source)
            let range = f.fileRange(input.info)
            f.mapping.advise(.willNeed, range)
            var read = input.info.byteCount
            var pieces: [(String, UnsafeRawBufferPointer)] = []
            pieces.reserveCapacity(2)
            do {
                try slots[slot].run(t, input: input, tensor: { name in
                    let (v, _) = try self.view(name)
                    read += v.info.byteCount
                    return v
                }) { spec, bytes in pieces.append((spec.name, bytes)) }
            } catch {
                pipeline.release(slot)
                pipeline.drain()
                writer.abort()
                throw error
            }
            pipeline.submit(slot, pieces) { f.mapping.release(range) }
            observer.tensorDone(t.source, inputBytes: read)
        }
        pipeline.drain()
        try pipeline.check()
        try writer.finish()
        return (writer.fileSize, pipeline.hash)
    }
}

/// A serial writer thread fed with the byte ranges of one tensor at a time; each submission
/// belongs to a scratch slot that may not be reused until its bytes are written.
private final class WritePipeline: @unchecked Sendable {
    let writer: SafeTensorsWriter
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

    init(writer: SafeTensorsWriter) {
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

    func submit(_ slot: Int, _ pieces: [(String, UnsafeRawBufferPointer)], then done: @escaping () -> Void) {
        let pieces = Pieces(items: pieces)
        queue.async { [self] in
            defer { free[slot].signal() }
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
