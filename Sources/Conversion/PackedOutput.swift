import Checkpoint
import DSPack
import JSON
import Numerics
import Quantization
import Sharding
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
        let files = try embeddedFiles(plan, checkpoint)

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
        return finish(plan, DSPackFormat(files: files, metadata: metadata, roles: roles(plan, checkpoint)))
    }

    /// `shard --format dspack`: `plan` (made by `ShardPlanner` with one `model.dspack` per rank
    /// folder) with each rank's pack contents: config.json, the side files, that rank's
    /// rank.json, and §6's parallel metadata naming the plan and the rank. Each pack unpacks to
    /// the rank folder the safetensors layout writes (one `model.safetensors`).
    public static func prepareRanks(_ plan: ConversionPlan, checkpoint: Checkpoint, ranks: [RankContents], options o: ShardOptions) throws -> ConversionPlan {
        precondition(plan.format is DSPackFormat, "PackedOutput.prepareRanks needs a plan made with a DSPackFormat layout")
        let common = try embeddedFiles(plan, checkpoint)
        let p = o.parallel
        var byFolder: [String: RankContents] = [:]
        for r in ranks { byFolder[r.folder] = r }
        var perOutput: [String: DSPackFormat.Contents] = [:]
        for shard in plan.shards {
            guard let r = byFolder[OutputLayout.folder(of: shard.name)] else {
                preconditionFailure("\(shard.name) is in no rank folder")
            }
            var files = common + [(RankManifest.fileName, JSONWriter.prettyBytes(r.json))]
            files.sort { $0.0 < $1.0 }
            let parallel: [(String, JSONValue)] = [
                ("world_size", .int(p.worldSize)), ("rank", .int(r.rank)), ("tp_size", .int(p.tp)), ("tp_rank", .int(r.tpRank)),
                ("pp_size", .int(p.pp)), ("pp_rank", .int(r.ppStage)), ("ep_size", .int(p.ep)), ("ep_rank", .int(r.epRank)),
                ("expert_placement", .string(o.placement.rawValue)),
            ]
            let count = shard.tensors.reduce(0) { $0 + $1.outputs.count }
            let metadata = Packer.metadata(config: plan.config, sideFiles: files.map(\.0), sourceFormat: "safetensors", index: nil,
                                           shards: [("model.safetensors", count)], parallel: parallel)
            perOutput[shard.name] = DSPackFormat.Contents(files: files, metadata: metadata)
        }
        return finish(plan, DSPackFormat(roles: roles(plan, checkpoint), perOutput: perOutput))
    }

    /// The config.json the conversion writes and the input's side files, by name.
    private static func embeddedFiles(_ plan: ConversionPlan, _ checkpoint: Checkpoint) throws -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        if let config = plan.config { files.append((ModelConfig.fileName, JSONWriter.prettyBytes(config))) }
        for n in try SideFiles.scan(checkpoint.directory).copy { files.append((n, try SideFiles.read(n, of: checkpoint.directory))) }
        files.sort { $0.0 < $1.0 }
        return files
    }

    /// Each output tensor's role (§4).
    private static func roles(_ plan: ConversionPlan, _ checkpoint: Checkpoint) -> [String: DSPackLayout.Role] {
        var roles: [String: DSPackLayout.Role] = [:]
        let layout = checkpoint.architecture.map { ModelLayout(architecture: $0) }
        for shard in plan.shards {
            for t in shard.tensors {
                for o in t.outputs { roles[o.name] = Packer.role(checkpoint.roles[o.name] ?? layout?.role(of: o.name)) }
            }
        }
        return roles
    }

    /// `plan` writing `format`, its settings digest covering every byte the packs embed.
    private static func finish(_ plan: ConversionPlan, _ format: DSPackFormat) -> ConversionPlan {
        var out = plan
        out.format = format
        var h = XXH64(seed: plan.settingsDigest)
        func add(_ b: [UInt8]) {
            withUnsafeBytes(of: UInt64(b.count).littleEndian) { h.update($0) }
            b.withUnsafeBytes { h.update($0) }
        }
        func add(_ c: DSPackFormat.Contents) {
            add(JSONWriter.compactBytes(c.metadata))
            for (n, b) in c.files { add(Array(n.utf8)); add(b) }
        }
        add(format.contents)
        for name in format.perOutput.keys.sorted() { add(Array(name.utf8)); add(format.perOutput[name]!) }
        out.settingsDigest = h.finalize()
        let names = format.perOutput.isEmpty ? format.files.map(\.0) : Array(Set(format.perOutput.values.flatMap { $0.files.map(\.0) })).sorted()
        out.settings += "; embeds " + names.joined(separator: ", ")
        return out
    }
}
