import Numerics
import Quantization
import SafeTensors
import SystemIO

/// Writes one output shard: maps the input shards it reads, transforms each tensor in plan
/// order with all cores, streams the results through a `SafeTensorsWriter` (temporary name,
/// renamed when complete) and hashes the bytes on the way for the resume record. Input pages
/// are dropped from the resident set as soon as a tensor is done, so memory stays bounded by
/// the tensors in flight, not by the shard or checkpoint size.
final class ShardConverter {
    let weights: SafeTensorsCheckpoint
    let transform = TensorTransform()
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
        var hash = XXH64()
        writer.observer = { hash.update($0) }
        for t in plan.tensors {
            if Interrupt.requested { writer.abort(); throw Interrupted() }
            let (input, f) = try view(t.source)
            let range = f.fileRange(input.info)
            f.mapping.advise(.willNeed, range)
            var read = input.info.byteCount
            try transform.run(t, input: input, tensor: { name in
                let (v, g) = try self.view(name)
                read += v.info.byteCount
                _ = g
                return v
            }) { spec, bytes in
                try writer.write(spec.name, bytes)
            }
            f.mapping.release(range)
            observer.tensorDone(t.source, inputBytes: read)
        }
        try writer.finish()
        return (writer.fileSize, hash.finalize())
    }
}
