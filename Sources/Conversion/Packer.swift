import Checkpoint
import DSPack
import JSON
import SystemIO
import Tensors

/// `dsconvert pack`: a checkpoint (any store) into one .dspack holding its tensors in storage
/// order, its side files, and metadata saying where the tensors came from (so `unpack` can
/// restore the same folder). The pack appears under its name only when complete.
public enum Packer {
    public static func role(_ r: TensorRole?) -> DSPackLayout.Role {
        switch r?.kind {
        case nil: return .unspecified
        case .embedding?: return .embedding
        case .lmHead?: return .lmHead
        case .norm?: return .norm
        case .attention?: return .attention
        case .mlp?: return .mlp
        case .expert?: return .expert
        case .sharedExpert?: return .sharedExpert
        case .router?: return .router
        case .routerBias?: return .routerBias
        case .mtpProjection?: return .mtpProjection
        case .bias?: return .bias
        case .quantizationParameter?: return .quantizationParameter
        case .buffer?: return .buffer
        }
    }

    /// The metadata of §2.4 for `checkpoint` packed as it is: its tensors come from its own files.
    public static func metadata(_ checkpoint: Checkpoint) -> JSONValue {
        let store = checkpoint.weights
        let config = try? store.sideFile(ModelConfig.fileName).flatMap { try JSONParser.parse($0) }
        return metadata(config: config, sideFiles: store.sideFileNames, sourceFormat: store.formatName,
                        index: checkpoint.hasIndex ? checkpoint.indexMetadata : nil,
                        shards: store.files.map { ($0.name, $0.tensorNames.count) })
    }

    /// The metadata of §2.4: `config` is the config.json embedded (its `quantization_config`
    /// names the method), `sideFiles` the embedded files' names, `shards` the safetensors files
    /// (name, tensor count, in table order) that `unpack` restores, with an index when `index`
    /// (its `metadata` entries) is not nil, `parallel` the plan and rank (§6).
    public static func metadata(config: JSONValue?, sideFiles: [String], sourceFormat: String, index: [(String, JSONValue)]?,
                                shards: [(String, Int)], parallel: [(String, JSONValue)] = unsharded) -> JSONValue {
        let qc = config?["quantization_config"]
        let method: String = qc?["quant_method"].flatMap { if case .string(let s) = $0 { return s } else { return nil } } ?? "none"
        var files: [(String, JSONValue)] = []
        for (key, name) in [("config", "config.json"), ("tokenizer", "tokenizer.json"), ("tokenizer_config", "tokenizer_config.json"),
                            ("generation_config", "generation_config.json")] where sideFiles.contains(name) {
            files.append((key, .string(name)))
        }
        let shardValues: [JSONValue] = shards.map { .object([("name", .string($0.0)), ("tensors", .int($0.1)),
                                                              ("metadata", .object([("format", .string("pt"))]))]) }
        return .object([
            ("writer", .string("dsconvert 0.1")),
            ("architecture", config?["model_type"] ?? .null),
            ("model_dtype", config?["torch_dtype"] ?? config?["dtype"] ?? .null),
            ("quantization", .object([("method", .string(method)), ("config", qc ?? .null)])),
            ("parallel", .object(parallel)),
            ("files", .object(files)),
            ("source", .object([("format", .string(sourceFormat)), ("index", .bool(index != nil)),
                                ("index_metadata", index.map { .object($0) } ?? .null),
                                ("shards", .array(shardValues))])),
        ])
    }

    /// §6 for a model that is not sharded: world size 1, rank 0.
    public static let unsharded: [(String, JSONValue)] =
        ["world_size", "rank", "tp_size", "tp_rank", "pp_size", "pp_rank", "ep_size", "ep_rank"].map { ($0, .int($0.hasSuffix("size") ? 1 : 0)) }

    /// Packs `checkpoint` into `output`, tensor by tensor in storage order (each released from
    /// memory once written). `progress` gets bytes done and total.
    public static func pack(_ checkpoint: Checkpoint, to output: String, durable: Bool = false,
                            progress: ((Int, Int) -> Void)? = nil) throws -> DSPackWriter {
        let store = checkpoint.weights
        try store.requireWhole()
        let tensors = store.tensorNames.map { n -> DSPackWriter.Tensor in
            let i = store.info(n)!
            return DSPackWriter.Tensor(TensorSpec(name: n, dtype: i.dtype, shape: i.shape), role: role(checkpoint.roles[n]))
        }
        var files: [(String, [UInt8])] = []
        for n in store.sideFileNames { if let b = try store.sideFile(n) { files.append((n, b)) } }
        let writer = try DSPackWriter(path: output, tensors: tensors, files: files, metadata: metadata(checkpoint))
        let total = store.totalTensorBytes
        var done = 0
        let chunk = 64 << 20
        for t in tensors {
            let v = try store.view(t.spec.name)
            var at = 0
            repeat {
                let end = min(v.bytes.count, at + chunk)
                try writer.write(t.spec.name, UnsafeRawBufferPointer(rebasing: v.bytes[at..<end]))
                at = end
            } while at < v.bytes.count
            done += v.bytes.count
            store.release([t.spec.name])
            progress?(done, total)
        }
        try writer.finish(durable: durable)
        return writer
    }
}
