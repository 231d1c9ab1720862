import ArgumentParser
import Checkpoint
import Quantization
import SafeTensors

extension DSConvert {
    struct Dequantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a quantized checkpoint (DeepSeek block FP8 or compressed-tensors) back into a plain one, on the CPU.",
            discussion: "Quantized weights become --to's dtype and lose their scales; every other tensor is kept as it is. config.json loses quantization_config and names the new torch_dtype.")

        enum Target: String, ExpressibleByArgument, CaseIterable {
            case bf16, f16, f32
            var dtype: DType { self == .bf16 ? .bf16 : self == .f16 ? .f16 : .f32 }
        }

        @Option(name: .long, help: "Output dtype for the dequantized weights.")
        var to: Target = .bf16

        @OptionGroup var convert: ConvertOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let ckpt = try convert.checkpoint()
            let plan = try PlanBuilder.dequantize(ckpt, to: to.dtype, shardSize: convert.shardSize)
            try convert.run(ckpt, plan, verb: "dequantizing to \(to.rawValue)", common: common)
        }
    }
}
