import ArgumentParser
import Checkpoint
import Engine
import Foundation
import JSON
import Quantization
import SystemIO
import Tensors

/// The engine's dense product (`Linear.apply`: tile decode + packed kernels) on the weights of a
/// model's decoder layers, one row per distinct weight shape, as GFLOP/s. Scripts/bench_gemm.py
/// runs numpy's float32 matmul (OpenBLAS sgemm) on the same shapes in the same run.
struct Gemm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GFLOP/s of the engine's matmul (y = x · Wᵀ, W in its stored encoding) on each distinct weight shape of a model's decoder layers.")

    @Argument(help: "A model directory (any encoding the engine reads).")
    var model: String

    @Option(name: .long, parsing: .unconditional, help: "Rows of x (tokens), 1 to 65536.")
    var rows: Int = 512

    @Option(name: .long, parsing: .unconditional, help: "Repetitions per shape, 1 to 1000 (the best is reported).")
    var repeats: Int = 5

    @OptionGroup var options: BenchOptions

    func validate() throws {
        if !(1...1000).contains(repeats) { throw ValidationError("--repeats \(repeats) is out of range: expected 1 to 1000") }
        if !(1...65536).contains(rows) { throw ValidationError("--rows \(rows) is out of range: expected 1 to 65536") }
    }

    /// The first `model.layers.*` 2-D weight of each distinct [rows, cols] shape (routed experts
    /// excluded: they see a fraction of the tokens), with how many tensors of that shape there are.
    static func shapes(_ store: any TensorStore) -> [(name: String, count: Int)] {
        var order: [[Int]] = [], first: [[Int]: String] = [:], count: [[Int]: Int] = [:]
        for name in store.tensorNames where name.hasPrefix("model.layers.") && name.hasSuffix(".weight") && !name.contains(".experts.") {
            guard let info = store.info(name), info.shape.count == 2 else { continue }
            if first[info.shape] == nil { first[info.shape] = name; order.append(info.shape) }
            count[info.shape, default: 0] += 1
        }
        return order.map { (first[$0]!, count[$0]!) }
    }

    func run() throws {
        let ckpt = try Checkpoint(path: model)
        let block = ckpt.config.flatMap { try? TransformerConfig($0) }?.weightBlock ?? (128, 128)
        let pool = WorkerPool(threads: options.threads ?? EngineDefaults.threads)
        var results: [JSONValue] = []
        var totalFlops = 0.0, totalSeconds = 0.0
        for (name, count) in Gemm.shapes(ckpt.weights) {
            let w = try StoredWeight(name, in: ckpt.weights, blockSize: block)
            let linear = Linear(w)
            let k = w.cols, n = w.rows, m = rows
            let x = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            defer { x.deallocate() }
            let y = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
            defer { y.deallocate() }
            var state: UInt64 = 0x9E37_79B9
            for i in 0..<(m * k) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                x[i] = Float(Int32(truncatingIfNeeded: state >> 32)) * 0x1p-31
            }
            y.initialize(repeating: 0, count: m * n)
            var best = Double.infinity
            for _ in 0..<repeats {
                let t0 = MonotonicClock.seconds()
                linear.apply(x, rows: m, ldx: k, into: y, ldy: n, pool: pool)
                best = min(best, MonotonicClock.seconds() - t0)
            }
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            totalFlops += flops * Double(count)
            totalSeconds += best * Double(count)
            results.append(.object([
                ("name", .string(name)), ("encoding", .string(w.encoding.description)), ("count", .int(count)),
                ("m", .int(m)), ("k", .int(k)), ("n", .int(n)),
                ("seconds", .double(best)), ("gflops", .double(flops / best / 1e9)),
            ]))
            if !options.json {
                print("\(name) [\(m) x \(k) x \(n)] \(w.encoding) x\(count), \(pool.threads) threads: "
                      + String(format: "%.1f GFLOP/s (%.3f ms)", flops / best / 1e9, best * 1e3))
            }
        }
        let overall = totalSeconds > 0 ? totalFlops / totalSeconds / 1e9 : 0
        if options.json {
            print(JSONWriter.pretty(.object([
                ("threads", .int(pool.threads)), ("rows", .int(rows)), ("shapes", .array(results)),
                ("weighted_gflops", .double(overall)),
            ])), terminator: "")
        } else {
            print(String(format: "all shapes weighted by their count per model: %.1f GFLOP/s", overall))
        }
    }
}
