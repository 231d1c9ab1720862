import ArgumentParser
import Checkpoint
import Conversion
import Sharding

extension ExpertPlacement: ExpressibleByArgument {}
extension ShardOptions.Layout: ExpressibleByArgument {}

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
            inference/convert.py layout (model{i}-mp{T}.safetensors, its names, model_args.json).
            """)

        @Option(name: .long, parsing: .unconditional, help: "Tensor-parallel size.",
                transform: { try OptionValue.integer($0, option: "--tp", in: 1...4096) })
        var tp: Int

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

        @OptionGroup var convert: ConvertOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let ckpt = try convert.checkpoint()
            let options = ShardOptions(parallel: ParallelPlan(tp: tp, pp: pp, ep: ep), keepMTP: keepMtp, placement: expertPlacement,
                                       layout: layout, shardSize: convert.shardSize ?? ShardOptions.defaultShardSize)
            let (plan, _) = try ShardPlanner.plan(ckpt, options)
            try convert.run(ckpt, plan, verb: "sharding (tp \(tp), pp \(pp), ep \(ep))", common: common)
        }
    }
}
