import ArgumentParser
import Checkpoint
import Quantization
import SafeTensors

extension DSConvert {
    struct Dequantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a quantized checkpoint (DeepSeek block FP8 or compressed-tensors) back into a plain one, on the CPU.",
            discussion: """
                Quantized weights become --to's dtype and lose their scales; every other tensor is kept as it is. \
                config.json loses quantization_config, and its dtype key (torch_dtype, or transformers 5's dtype) names the new dtype.

                The values follow each layout's own dequantizer. DeepSeek block FP8 (F32 scales): f32(q) × scale, rounded once \
                to --to, so --to f32 is exact. compressed-tensors (scales in the model dtype, e.g. BF16): (q − zero point) × scale \
                is computed and rounded in the scale's dtype, as that package does, then converted to --to; --to f32 or f16 of a \
                BF16-scaled checkpoint therefore holds exactly the BF16 values, widened, not a more precise product.
                """)

        enum Target: String, ExpressibleByArgument, CaseIterable {
            case bf16, f16, f32
            var dtype: DType { self == .bf16 ? .bf16 : self == .f16 ? .f16 : .f32 }
        }

        @Option(name: .long, help: "Output dtype for the dequantized weights (compressed-tensors: rounded to the scale dtype first, see below).")
        var to: Target = .bf16

        @OptionGroup var convert: ConvertOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let ckpt = try convert.checkpoint()
            let plan = try PlanBuilder.dequantize(ckpt, to: to.dtype, layout: convert.layout)
            try convert.run(ckpt, plan, verb: "dequantizing to \(to.rawValue)", common: common)
        }
    }
}
