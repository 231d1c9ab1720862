import SystemIO
import ArgumentParser
import Calibration
import Checkpoint
import Quantization

extension QuantizationScheme.Granularity: ExpressibleByArgument {}

/// `--act`: activations quantized per token at run time, or per tensor with calibrated scales.
enum ActivationMode: String, ExpressibleByArgument, CaseIterable { case dynamic, `static` }

extension DSConvert {
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Quantize a checkpoint's linear weights to FP8 (DeepSeek block layout by default) or INT8.",
            discussion: """
            --fp8 alone writes DeepSeek-V3's native layout: F8_E4M3 weights with F32 weight_scale_inv per 128x128 \
            block, loadable by vLLM and SGLang. --granularity tensor|channel and --int8 write the compressed-tensors \
            layout (llm-compressor's), with dynamic per-token activations unless --weight-only; --act static --ranges FILE \
            (from `dsconvert calibrate`) writes static per-tensor activations instead: an input_scale [1] per quantized \
            linear layer, amax / 448 (FP8) or amax / 127.5 (INT8) in the model dtype. Ranges made with calibrate --smooth \
            carry SmoothQuant factors s: each norm weight is divided by s and column j of every layer reading the norm \
            (the MoE router included) multiplied by s_j, in f32, before quantizing; o_proj and down_proj have no norm \
            before them and are not smoothed. Embeddings, lm_head, \
            norms, the MoE router and its bias (and the MTP layer's eh_proj) are never quantized; --ignore adds more.
            """)

        @Flag(name: .long, help: "FP8 E4M3 weights.")
        var fp8 = false

        @Flag(name: .long, help: "INT8 weights (per channel; W8A8 with dynamic per-token activations).")
        var int8 = false

        @Option(name: .long, help: "Scale granularity: block (FP8 default), channel (INT8 default) or tensor.")
        var granularity: QuantizationScheme.Granularity?

        @Option(name: .long, parsing: .unconditional, help: "Block edge for --granularity block, 1 to 65536 (default 128).",
                transform: { try OptionValue.integer($0, option: "--block-size", in: OptionValue.blockSize) })
        var blockSize: Int?

        @Flag(name: .long, help: "Weight-only (no input_activations entry) for the compressed-tensors layouts.")
        var weightOnly = false

        @Option(name: .long, help: "Activations: dynamic (per token, at run time; the default) or static (per tensor, from --ranges).")
        var act: ActivationMode = .dynamic

        @Option(name: .long, help: "With --act static: the ranges.json `dsconvert calibrate` wrote for this model (its target must match --fp8 / --int8).")
        var ranges: String?

        @Option(name: .long, help: "Keep modules whose name matches this Python regular expression unquantized (re.search; an re: prefix means re.match, as in llm-compressor ignore lists; repeatable).")
        var ignore: [String] = []

        @OptionGroup var convert: ConvertOptions
        @OptionGroup var common: CommonOptions

        func validate() throws {
            if fp8 == int8 { throw UsageError.conflict("choose one of --fp8 or --int8") }
            for p in ignore { _ = try OptionValue.pattern(p, option: "--ignore") }
            if let g = granularity ?? (int8 ? .channel : nil), g != .block, blockSize != nil {
                throw UsageError.conflict("--block-size applies to --granularity block only, not --granularity \(g.rawValue)\(int8 ? " (--int8 has no block layout)" : "")")
            }
        }

        func run() throws {
            try common.apply()
            PhaseTrace.mark("quantize started")
            let scheme = try QuantizationScheme(format: fp8 ? .fp8 : .int8, granularity: granularity, blockSize: blockSize ?? 128, weightOnly: weightOnly,
                                                staticActivations: act == .static)
            var inputRanges: InputRanges?
            if let ranges {
                let file = try RangesFile.read(ranges)
                let wanted: CalibrationTarget = fp8 ? .fp8 : .int8
                guard file.target == wanted else {
                    throw QuantizationError.rangesMismatch(file: ranges, "was calibrated for --target \(file.target.rawValue) (method \(file.method)), but this is --\(wanted.rawValue): the clipping ranges of one format do not suit the other; run `dsconvert calibrate --target \(wanted.rawValue)`")
                }
                var amax: [String: Double] = [:]
                for input in file.inputs { for c in input.consumers { amax[c] = input.amax } }
                let smoothing = file.smoothAlpha.map { a in
                    SmoothingFactors(alpha: a, entries: file.smoothing.map { ($0.norm, $0.consumers, $0.scales) })
                }
                inputRanges = InputRanges(file: ranges, amax: amax, smoothing: smoothing)
            }
            let ckpt = try convert.checkpoint()
            let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: ignore, layout: convert.layout, ranges: inputRanges)
            try convert.run(ckpt, plan, verb: "quantizing (\(scheme.summary))", common: common)
        }
    }
}
