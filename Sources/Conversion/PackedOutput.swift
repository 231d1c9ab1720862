import Checkpoint
import DSPack
import JSON
import Numerics
import Quantization
import Tensors

/// `quantize` / `dequantize --format dspack`: a conversion whose output files are packs. The plan
/// is made with a `DSPackFormat` layout (one `model.dspack` per folder); `prepare` then gives that
/// format what each pack embeds — the config.json the conversion writes, the input's side files
/// (tokenizer, generation config, …), each output tensor's role and the §2.4 metadata — and folds
/// all of it into the settings digest, so a pack is resumed only when it would embed the same bytes.
public enum PackedOutput {
    /// The layout of a conversion into packs: one `model.dspack` per folder.
    public static var layout: OutputLayout { OutputLayout(format: DSPackFormat(), chunking: .single) }

    /// `plan` (made with `layout`) with its packs' contents filled in from `checkpoint`.
    public static func prepare(_ plan: ConversionPlan, checkpoint: Checkpoint) throws -> ConversionPlan {
        precondition(plan.format is DSPackFormat, "PackedOutput.prepare needs a plan made with PackedOutput.layout")
        let store = checkpoint.weights
        var files: [(String, [UInt8])] = []
        if let config = plan.config { files.append((ModelConfig.fileName, Array(JSONWriter.pretty(config).utf8))) }
        for n in try SideFiles.scan(checkpoint.directory).copy { files.append((n, try SideFiles.read(n, of: checkpoint.directory))) }
        files.sort { $0.0 < $1.0 }

        // The safetensors files `unpack` restores: the outputs grouped by the input file their
        // source tensor lives in (contiguous, since plans follow store order), as quantize's own
        // mirrored safetensors output names them; a pack input unpacks to one file.
        var shards: [(String, Int)] = []
        let fromPack = store.formatName == "dspack"
        for shard in plan.shards {
            for t in shard.tensors {
                let name = fromPack ? "model.safetensors" : store.files[store.fileIndex(of: t.source)!].name
                if shards.last?.0 == name { shards[shards.count - 1].1 += t.outputs.count } else { shards.append((name, t.outputs.count)) }
            }
        }
        let index = !fromPack && checkpoint.hasIndex ? checkpoint.indexMetadata : nil
        let metadata = Packer.metadata(config: plan.config, sideFiles: files.map(\.0), sourceFormat: "safetensors", index: index, shards: shards)

        var roles: [String: DSPackLayout.Role] = [:]
        let layout = checkpoint.architecture.map { ModelLayout(architecture: $0) }
        for shard in plan.shards {
            for t in shard.tensors {
                for o in t.outputs { roles[o.name] = Packer.role(checkpoint.roles[o.name] ?? layout?.role(of: o.name)) }
            }
        }
        var out = plan
        out.format = DSPackFormat(files: files, metadata: metadata, roles: roles)
        var h = XXH64(seed: plan.settingsDigest)
        func add(_ b: [UInt8]) {
            withUnsafeBytes(of: UInt64(b.count).littleEndian) { h.update($0) }
            b.withUnsafeBytes { h.update($0) }
        }
        add(Array(JSONWriter.compact(metadata).utf8))
        for (n, b) in files { add(Array(n.utf8)); add(b) }
        out.settingsDigest = h.finalize()
        out.settings += "; embeds " + files.map(\.0).joined(separator: ", ")
        return out
    }
}
