import ArgumentParser

@main
struct DSConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsconvert",
        abstract: "Convert LLM checkpoints (DeepSeek-V3/R1, Qwen2 and Llama distills) into quantized, deployable artefacts.",
        discussion: "Exit status: 0 ok, 1 bad input or I/O error, 3 quality gate failed, 4 verification failed, 64 usage, 130 SIGINT, 143 SIGTERM.",
        version: "0.1.0",
        subcommands: [Inspect.self, Forward.self, Generate.self, Eval.self, Calibrate.self, Quantize.self, Dequantize.self, MergeIndex.self, Synth.self, Pack.self, Unpack.self, Verify.self, Decompress.self, Shard.self]
    )

    /// Parses, runs, and turns any error into one message and the exit status of its category.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let json = arguments.contains("--json")
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            ExitStatus.exit(with: error, json: json)
        }
    }
}
