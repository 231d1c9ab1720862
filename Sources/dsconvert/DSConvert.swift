import ArgumentParser

@main
struct DSConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsconvert",
        abstract: "Convert LLM checkpoints (DeepSeek-V3/R1, Qwen2 and Llama distills) into quantized, deployable artefacts.",
        version: "0.1.0",
        subcommands: [Inspect.self, Quantize.self, Dequantize.self, MergeIndex.self, Synth.self, Bench.self]
    )
}
