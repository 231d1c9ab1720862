import ArgumentParser
import Checkpoint
import Engine
import Foundation
import JSON
import SafeTensors
import SystemIO
import Tensors

extension DSConvert {
    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run token ids through the model on the CPU and write the logits (to check the engine against another implementation).")

        @Argument(help: "A model directory (weights in any encoding dsconvert reads), or a `dsconvert shard` output (its rank-… folders are run as a tensor-parallel split, each rank on its own slices).")
        var model: String

        @Option(name: .long, help: "A .safetensors file with token ids (I32 or I64, [B, T] or [T]).")
        var ids: String

        @Option(name: .long, help: "The ids tensor's name.")
        var key = "input_ids"

        @Option(name: .long, help: "Output .safetensors file: F32 'logits' [B, T, vocab].")
        var out: String

        @OptionGroup var load: LoadOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let tokens = try TokenIds.read(path: ids, key: key)
            // A `shard` output (rank-… folders) runs rank by rank on each rank's slices.
            let engine = TensorParallelLayout.rankFolders(model).isEmpty ? try Model(checkpoint: load.checkpoint(model)) : try Model(shardedDirectory: model)
            let cache = KVCache(config: engine.config, batch: tokens.count, capacity: tokens[0].count)
            let pool = WorkerPool(threads: common.threads ?? EngineDefaults.threads)
            let t0 = MonotonicClock.seconds()
            let logits: Matrix
            do { logits = try engine.forward(tokens, cache: cache, pool: pool) } catch let e as EngineError { throw e.located(in: ids) }
            let seconds = MonotonicClock.seconds() - t0
            let shape = [tokens.count, tokens[0].count, engine.config.vocab]
            let w = try SafeTensorsWriter(path: out, tensors: [TensorSpec(name: "logits", dtype: .f32, shape: shape)])
            try w.write("logits", UnsafeRawBufferPointer(start: logits.data, count: logits.rows * logits.cols * 4))
            try w.finish(durable: false)
            let rate = Double(tokens.count * tokens[0].count) / seconds
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("out", .string(out)), ("batch", .int(shape[0])), ("tokens", .int(shape[1])), ("vocab", .int(shape[2])),
                    ("seconds", .double(seconds)), ("tokens_per_second", .double(rate)), ("threads", .int(pool.threads)),
                ])), terminator: "")
            } else if !common.quiet {
                printError(String(format: "logits [%d, %d, %d] → %@ (%.1f tokens/s, %d threads)", shape[0], shape[1], shape[2], out, rate, pool.threads))
            }
        }
    }
}
