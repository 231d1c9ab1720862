import Checkpoint
@testable import Conversion
import Foundation
import JSON
import Sharding
import TestSupport
import XCTest

/// `shard --plan`: per-GPU weight bytes, KV cache per token and the tokens that fit, against an
/// independent reference that reads the safetensors headers itself (Tests/Reference/plan_reference.py),
/// on DeepSeek-V3's real shapes in the block-FP8 release layout written as sparse files (5 layers:
/// 3 dense, 2 MoE, plus the MTP layer, which engines do not load).
final class ServingPlanTests: XCTestCase {
    static let mib = 1 << 20

    func testRealShapesAgainstReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "plan")
        let dir = tmp.appending("v3").path
        var o = SyntheticCheckpoint.Options()
        o.sparse = true
        o.shards = 6
        try SyntheticCheckpoint.write(ModelBlueprint(kind: .deepseekV3, scale: 1, layers: 5).blockFP8(), to: dir, options: o)
        let ckpt = try Checkpoint(path: dir)
        // (tp, pp, ep, engine, kv bytes, stages by hand: vLLM gives 5 % P extra layers to stages
        // P-2, P-3, …; SGLang to the last ones)
        let cases: [(Int, Int, Int, ServingPlan.Engine, Int, [Int])] = [
            (8, 2, 8, .vllm, 2, [3, 2]), (8, 2, 8, .sglang, 2, [2, 3]), (16, 1, 16, .vllm, 1, [5]),
            (4, 4, 4, .vllm, 2, [1, 1, 2, 1]), (4, 4, 4, .sglang, 1, [1, 1, 1, 2]), (8, 1, 1, .sglang, 2, [5]),
        ]
        for (tp, pp, ep, engine, kvBytes, stages) in cases {
            var opts = ServingPlan.Options(gpu: MemoryFit.preset("H100")!, maxModelLen: 4096)
            opts.engine = engine
            opts.kvCacheDType = kvBytes == 1 ? "fp8" : "auto"
            let plan = try ServingPlan.make(ckpt, parallel: ParallelPlan(tp: tp, pp: pp, ep: ep), options: opts)
            let spec = tmp.appending("spec-\(tp)-\(pp)-\(engine).json").path
            try CV.writeJSON(.object([
                ("tp", .int(tp)), ("pp", .int(pp)), ("ep", .int(ep)), ("engine", .string(engine.rawValue)),
                ("gpu_bytes", .int(81_559 * Self.mib)), ("mem_util", .double(0.9)), ("reserve", .int(4 << 30)), ("kv_bytes", .int(kvBytes)),
            ]), to: spec)
            let want = try JSONParser.parse(Array(try PythonReference.run("plan_reference.py", [dir, spec]).trimmingCharacters(in: .whitespacesAndNewlines).utf8))
            XCTAssertEqual(want["stages"]?.arrayValue?.compactMap(\.intValue), stages, "reference stages \(tp)x\(pp) \(engine)")
            let label = "tp \(tp) pp \(pp) ep \(ep) \(engine)"
            XCTAssertEqual(plan.ranks.count, tp * pp, label)
            for (r, w) in zip(plan.ranks, want["ranks"]?.arrayValue ?? []) {
                XCTAssertEqual(r.layers, stages[r.ppStage], label)
                XCTAssertEqual(r.budget.weights, w["weight_bytes"]?.intValue, "\(label) rank \(r.rank)")
                // MLA: (512 + 64) per layer, replicated on every TP rank.
                XCTAssertEqual(r.budget.kvPerToken, stages[r.ppStage] * 576 * kvBytes, label)
                XCTAssertEqual(r.budget.kvPerToken, w["kv_bytes_per_token"]?.intValue, label)
                XCTAssertEqual(r.budget.tokens, w["kv_tokens"]?.intValue, "\(label) rank \(r.rank)")
            }
        }
    }

    /// DeepSeek-V3's FP8 release, hand-counted from its real shapes (docs/sharding.md): 688,574,839,360
    /// bytes of tensors; the BF16 layout has the same 684.49 B stored values.
    func testReleaseLayoutSize() {
        let fp8 = ModelBlueprint(kind: .deepseekV3, scale: 1).blockFP8()
        XCTAssertEqual(fp8.totalBytes, 688_574_839_360)
        XCTAssertEqual(fp8.tensors.count, 91_991)
        let bf16 = ModelBlueprint(kind: .deepseekV3, scale: 1)
        XCTAssertEqual(bf16.tensors.reduce(0) { $0 + $1.elementCount }, 684_489_845_504)
    }

    /// The launch commands use the engines' own flag names (vLLM EngineArgs: --tensor-parallel-size,
    /// --pipeline-parallel-size, --enable-expert-parallel, --max-model-len, --max-num-seqs,
    /// --gpu-memory-utilization, --kv-cache-dtype fp8; SGLang ServerArgs: --model-path, --tp-size,
    /// --pp-size, --ep-size, --nnodes, --node-rank, --dist-init-addr, --context-length,
    /// --max-running-requests, --mem-fraction-static, --kv-cache-dtype fp8_e4m3).
    func testLaunchCommands() throws {
        var o = ServingPlan.Options(gpu: MemoryFit.preset("H100-80G")!, maxModelLen: 32768)
        o.kvCacheDType = "fp8"
        o.maxSeqs = 4
        let p = ServingPlan(parallel: ParallelPlan(tp: 8, pp: 2, ep: 8), ranks: [], options: o)
        XCTAssertEqual(p.launchCommand(.vllm, model: "/m").joined(separator: " "),
                       "vllm serve /m --tensor-parallel-size 8 --pipeline-parallel-size 2 --enable-expert-parallel --max-model-len 32768 --max-num-seqs 4 --gpu-memory-utilization 0.9 --kv-cache-dtype fp8 --trust-remote-code")
        XCTAssertEqual(p.launchCommand(.sglang, model: "/m").joined(separator: " "),
                       "python3 -m sglang.launch_server --model-path /m --tp-size 8 --pp-size 2 --ep-size 8 --nnodes 2 --node-rank 0 --dist-init-addr HEAD_NODE_IP:5000 --context-length 32768 --max-running-requests 4 --mem-fraction-static 0.9 --kv-cache-dtype fp8_e4m3 --trust-remote-code")
        XCTAssertEqual(MemoryFit.preset("a100")?.name, "A100-80G")
        XCTAssertEqual(MemoryFit.preset("H200")?.bytes, 143_771 * Self.mib)
    }

    /// --plan writes nothing and takes no OUT; --json reports the plan and the smallest fit.
    func testPlanCommand() throws {
        let r = try CLI.run(["shard", CV.deepseek, "--plan", "--tp", "2", "--gpu-mem", "16MiB", "--reserve", "1MiB", "--emit", "sglang", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let v = try JSONParser.parse(Array(r.stdout.utf8))
        // 3 layers × (64 + 16) × 2 bytes.
        XCTAssertEqual(v["plan"]?["ranks"]?.arrayValue?.first?["kv_bytes_per_token"]?.intValue, 480)
        XCTAssertEqual(v["smallest_fit"]?["tp"]?.intValue, 1)
        XCTAssertEqual(v["launch"]?.arrayValue?.first?.stringValue, "python3")
        let bad = try CLI.run(["shard", CV.deepseek, "/tmp/x", "--plan", "--json"])
        XCTAssertEqual(bad.status, 64)
    }
}
