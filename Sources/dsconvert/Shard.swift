import SystemIO
import Numerics
import ArgumentParser
import Quantization
import Checkpoint
import Conversion
import JSON
import Sharding

extension ExpertPlacement: ExpressibleByArgument {}
extension ShardOptions.Layout: ExpressibleByArgument {}
extension ServingPlan.Engine: ExpressibleByArgument {}

extension DSConvert {
    struct Shard: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split a checkpoint for tensor / pipeline / expert parallelism: one folder per rank.",
            discussion: """
            Writes OUT/rank-{r:05d}-of-{n:05d}/ (ranks numbered pp_stage * tp + tp_rank), each a safetensors set \
            (files, index, config.json, tokenizer and other side files) plus rank.json: the rank's tp/pp/ep \
            coordinates, the layers and experts it holds and, per tensor, the global tensor, split dim, offset and \
            length. Column-parallel weights (q/k/v, q_b_proj, kv_b_proj, gate/up, embeddings, lm_head) split on \
            dim 0, row-parallel ones (o_proj, down_proj) on dim 1, everything else is replicated; with --ep > 1 \
            routed experts are held whole by one rank. A block-FP8 weight_scale_inv grid is cut with its weight \
            (a cut inside a 128-block is refused before anything is written). --layout deepseek writes DeepSeek-V3's \
            inference/convert.py layout (model{i}-mp{T}.safetensors, its names, model_args.json). --format dspack \
            writes one rank-…/model.dspack per rank instead of its safetensors set (config.json, side files and \
            rank.json embedded; `dsconvert forward OUT` and `verify` read it as they read the folders).

            --plan (no OUT; headers only, nothing written) prints per GPU the weight bytes, KV-cache bytes per \
            token (MLA: kv_lora_rank + qk_rope_head_dim per layer, replicated on every TP rank; GQA: K and V of the \
            rank's KV heads) and the tokens that fit at --gpu / --gpu-mem × --mem-util minus --reserve, a verdict \
            for --max-model-len × --max-seqs, the smallest TP × PP that fits, and with --emit vllm|sglang the \
            engine's launch command for the unsharded folder (with that engine's own pipeline split of layers).
            """)

        @Argument(help: "The input model directory (or a .safetensors file).")
        var input: String

        @Argument(help: "The output directory (not with --plan).")
        var output: String?

        @Option(name: .long, parsing: .unconditional, help: "Tensor-parallel size (with --plan: default the smallest plan that fits).",
                transform: { try OptionValue.integer($0, option: "--tp", in: 1...4096) })
        var tp: Int?

        @Option(name: .long, parsing: .unconditional, help: "Pipeline-parallel stages (default 1): contiguous layer ranges balanced by bytes.",
                transform: { try OptionValue.integer($0, option: "--pp", in: 1...4096) })
        var pp: Int = 1

        @Option(name: .long, parsing: .unconditional, help: "Expert-parallel size: 1 (experts split like a dense MLP, default) or equal to --tp (whole experts per rank).",
                transform: { try OptionValue.integer($0, option: "--ep", in: 1...4096) })
        var ep: Int = 1

        @Flag(name: .long, help: "Keep the MTP (next-token prediction) layer, on the last pipeline stage.")
        var keepMtp = false

        @Option(name: .long, help: "Where routed experts go with --ep > 1: contiguous (default; DeepSeek's convert.py, vLLM's default) or round-robin.")
        var expertPlacement: ExpertPlacement = .contiguous

        @Option(name: .long, help: "hf (rank folders, default) or deepseek (DeepSeek-V3 inference/convert.py's files; needs --ep = --tp and --pp 1).")
        var layout: ShardOptions.Layout = .hf

        @Option(name: .long, help: "Rank files: safetensors (default: each rank folder a safetensors set with index, config.json, side files and rank.json) or dspack (one rank-…/model.dspack per rank embedding config.json, the side files and rank.json, its metadata naming the plan and the rank; Formats/dspack.md §6).")
        var format: OutputFormat = .safetensors

        @Flag(name: .long, help: "Quantize on the way, in the same pass: every linear weight quantize --fp8 quantizes becomes DeepSeek block-128 FP8 (F8_E4M3 + F32 weight_scale_inv), each rank's slice and scale grid equal to quantize --fp8 then shard (the split must fall on 128-blocks).")
        var fp8 = false

        @Flag(name: .long, help: "Plan only: per-GPU memory and KV-cache fit from the headers; writes nothing.")
        var plan = false

        @Option(name: .long, help: "GPU preset for --plan: \(MemoryFit.presets.map(\.name).joined(separator: ", ")) (default H100-80G).")
        var gpu: String?

        @Option(name: .long, parsing: .unconditional, help: "GPU memory for --plan instead of a preset (e.g. 80GiB).",
                transform: { try OptionValue.byteSize($0, option: "--gpu-mem") })
        var gpuMem: Int?

        @Option(name: .long, parsing: .unconditional, help: "Fraction of GPU memory the engine may use (default 0.9).",
                transform: { try OptionValue.decimal($0, option: "--mem-util", in: 0.05...1.0) })
        var memUtil: Double = 0.9

        @Option(name: .long, parsing: .unconditional, help: "Memory held back per GPU for activations, CUDA graphs and the allocator (default 4GiB).",
                transform: { try OptionValue.byteSize($0, option: "--reserve") })
        var reserve: Int = 4 << 30

        @Option(name: .long, help: "KV-cache element type for --plan: auto (model dtype), bf16, fp16 or fp8.")
        var kvCacheDtype: String = "auto"

        @Option(name: .long, parsing: .unconditional, help: "Context length to fit (default: the config's max_position_embeddings).",
                transform: { try OptionValue.integer($0, option: "--max-model-len", in: 1...(1 << 30)) })
        var maxModelLen: Int?

        @Option(name: .long, parsing: .unconditional, help: "Concurrent sequences of --max-model-len to fit (default 1).",
                transform: { try OptionValue.integer($0, option: "--max-seqs", in: 1...1_000_000) })
        var maxSeqs: Int = 1

        @Option(name: .long, help: "With --plan: print this engine's launch command (vllm or sglang) and model its pipeline split.")
        var emit: ServingPlan.Engine?

        @OptionGroup var how: RunOptions
        @OptionGroup var common: CommonOptions

        func validate() throws {
            if plan {
                if output != nil { throw UsageError.conflict("--plan writes nothing: leave out OUT") }
            } else {
                if output == nil { throw UsageError.conflict("shard needs an output directory OUT (or --plan)") }
                if tp == nil { throw UsageError.conflict("shard needs --tp") }
                if emit != nil || gpu != nil || gpuMem != nil { throw UsageError.conflict("--emit, --gpu and --gpu-mem go with --plan") }
            }
            if format == .dspack {
                if plan { throw UsageError.conflict("--format dspack chooses what shard writes; --plan writes nothing") }
                if layout == .deepseek { throw UsageError.conflict("--layout deepseek writes DeepSeek's own safetensors files (model{i}-mp{T}.safetensors): --format dspack goes with --layout hf") }
                if how.shardSize != nil { throw UsageError.conflict("--shard-size applies to --format safetensors: a rank's .dspack is one file (rank-…/model.dspack)") }
            }
            if plan && fp8 { throw UsageError.conflict("--fp8 writes a quantized split; --plan writes nothing (plan the FP8 checkpoint instead)") }
            if gpu != nil && gpuMem != nil { throw UsageError.conflict("choose one of --gpu or --gpu-mem") }
            if let g = gpu, MemoryFit.preset(g) == nil {
                throw UsageError.invalid("--gpu", g, "is not a known GPU", allowed: MemoryFit.presets.map(\.name).joined(separator: ", "))
            }
            if !["auto", "bf16", "fp16", "fp8"].contains(kvCacheDtype) {
                throw UsageError.invalid("--kv-cache-dtype", kvCacheDtype, "is not a KV-cache type", allowed: "auto, bf16, fp16 or fp8")
            }
        }

        func run() throws {
            try common.apply()
            PhaseTrace.mark("shard started")
            let ckpt = try how.checkpoint(input)
            PhaseTrace.mark("checkpoint opened (headers, config, roles)")
            if plan { return try runPlan(ckpt) }
            let tp = self.tp!
            var options = ShardOptions(parallel: ParallelPlan(tp: tp, pp: pp, ep: ep), keepMTP: keepMtp, placement: expertPlacement,
                                       layout: layout, shardSize: how.shardSize ?? ShardOptions.defaultShardSize)
            if fp8 { options.quantize = try QuantizationScheme(format: .fp8) }
            options.format = format == .dspack ? .dspack : .safetensors
            let (plan, _) = try ShardPlanner.plan(ckpt, options)
            try how.run(ckpt, plan, input: input, output: output!, verb: "sharding (tp \(tp), pp \(pp), ep \(ep))", common: common,
                        // Rank files are mostly copies bound by system calls, not arithmetic: one
                        // per core at once keeps reading and writing going on every core.
                        concurrentFiles: min(Parallel.threads, 8))
        }

        func runPlan(_ ckpt: Checkpoint) throws {
            let g = gpuMem.map { MemoryFit.GPU(name: "\(formatBytes($0)) GPU", bytes: $0) } ?? MemoryFit.preset(gpu ?? "H100-80G")!
            var o = ServingPlan.Options(gpu: g, maxModelLen: maxModelLen ?? ckpt.config?.int("max_position_embeddings") ?? 4096)
            o.utilisation = memUtil; o.reserve = reserve; o.kvCacheDType = kvCacheDtype; o.maxSeqs = maxSeqs
            o.engine = emit; o.keepMTP = keepMtp; o.placement = expertPlacement
            let facts = try ShardPlanner.Facts(ckpt)
            let requested = try tp.map { try ServingPlan.make(ckpt, parallel: ParallelPlan(tp: $0, pp: pp, ep: ep), options: o, facts: facts) }
            let best = ServingPlan.smallest(ckpt, options: o, facts: facts)
            let shown = requested ?? best
            // The command serves the requested plan when it fits, else the smallest one that does.
            let served = requested.flatMap { $0.fits ? $0 : nil } ?? best
            let command = emit.flatMap { e in served.map { $0.launchCommand(e, model: input) } }
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("model", .string(input)),
                    ("plan", requested?.json ?? .null),
                    ("smallest_fit", best?.json ?? .null),
                    ("launch", command.map { .array($0.map { .string($0) }) } ?? .null),
                ])), terminator: "")
                return
            }
            if let p = shown { print(table(p)) }
            if let p = requested {
                print(p.fits ? "fits: \(grouped(p.tokens)) tokens of KV cache per GPU ≥ \(grouped(p.requiredTokens)) needed"
                      : "does not fit: \(p.ranks.contains { $0.budget.kvBytes <= 0 } ? "the weights alone exceed the usable memory" : "\(grouped(p.tokens)) tokens of KV cache per GPU < \(grouped(p.requiredTokens)) needed")")
            }
            if let b = best {
                print("smallest plan that fits \(grouped(b.requiredTokens)) tokens: TP \(b.parallel.tp) × PP \(b.parallel.pp)\(b.parallel.ep > 1 ? " (EP \(b.parallel.ep))" : "") = \(b.parallel.worldSize) × \(g.name) (\(b.nodes) node\(b.nodes == 1 ? "" : "s") of 8)")
            } else {
                print("no plan of up to 256 × \(g.name) fits \(grouped(o.maxModelLen * o.maxSeqs)) tokens")
            }
            if let c = command {
                print("\n# TP \(served!.parallel.tp) × PP \(served!.parallel.pp): \(emit!.rawValue) loads the unsharded Hugging Face folder and splits it itself\(served!.nodes > 1 ? " (run on every node" + (emit! == .sglang ? " with its --node-rank" : " of the Ray cluster") + ")" : ""):")
                print(c.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))
            }
        }

        func table(_ p: ServingPlan) -> String {
            let gib = { (b: Int) in String(format: "%.1f GiB", Double(b) / Double(1 << 30)) }
            var lines = ["TP \(p.parallel.tp) × PP \(p.parallel.pp)\(p.parallel.ep > 1 ? " × EP \(p.parallel.ep)" : "") on \(p.parallel.worldSize) × \(p.options.gpu.name) (\(gib(p.options.gpu.bytes)); mem-util \(p.options.utilisation), reserve \(gib(p.options.reserve)); KV \(p.options.kvCacheDType); stages: \(p.options.engine?.rawValue ?? "balanced by bytes"))",
                         "stage  layers  weights/GPU  KV/token/GPU  KV room/GPU  tokens/GPU"]
            for r in p.ranks where r.rank % p.parallel.tp == 0 {
                lines.append(String(format: "%5d  %6d  %11@  %10d B  %11@  %10@", r.ppStage, r.layers, gib(r.budget.weights), r.budget.kvPerToken,
                                    gib(r.budget.kvBytes), grouped(r.budget.tokens)))
            }
            return lines.joined(separator: "\n")
        }
    }
}
