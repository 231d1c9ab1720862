import XCTest
import Diagnostics
@testable import Sharding

/// The expected values are written out by hand from the split each serving engine makes
/// (docs/architecture.md, "What serving engines require of a split"), not taken from the code.
final class ShardRulesTests: XCTestCase {
    func testSplitDimensionsOfEachRole() {
        let cases: [(String, Int, Int, Int?)] = [
            ("model.embed_tokens.weight", 2, 1, 0),
            ("lm_head.weight", 2, 1, 0),
            ("model.layers.3.self_attn.q_b_proj.weight", 2, 1, 0),
            ("model.layers.3.self_attn.kv_b_proj.weight", 2, 1, 0),
            ("model.layers.3.self_attn.q_proj.bias", 1, 1, 0),
            ("model.layers.3.self_attn.o_proj.weight", 2, 1, 1),
            ("model.layers.3.self_attn.o_proj.bias", 1, 1, nil),
            ("model.layers.3.self_attn.q_a_proj.weight", 2, 1, nil),
            ("model.layers.3.self_attn.kv_a_proj_with_mqa.weight", 2, 1, nil),
            ("model.layers.3.self_attn.q_a_layernorm.weight", 1, 1, nil),
            ("model.layers.3.input_layernorm.weight", 1, 1, nil),
            ("model.norm.weight", 1, 1, nil),
            ("model.layers.3.mlp.gate.weight", 2, 1, nil),
            ("model.layers.3.mlp.gate.e_score_correction_bias", 1, 1, nil),
            ("model.layers.3.mlp.gate_proj.weight", 2, 1, 0),
            ("model.layers.3.mlp.up_proj.weight", 2, 1, 0),
            ("model.layers.3.mlp.down_proj.weight", 2, 1, 1),
            ("model.layers.3.mlp.shared_experts.down_proj.weight", 2, 8, 1),
            ("model.layers.3.mlp.experts.17.down_proj.weight", 2, 8, nil),
            ("model.layers.3.mlp.experts.17.down_proj.weight", 2, 1, 1),
            ("model.layers.3.mlp.experts.17.gate_proj.weight", 2, 1, 0),
            // Block FP8: the scale grid is cut along the weight's dimension.
            ("model.layers.3.self_attn.o_proj.weight_scale_inv", 2, 1, 1),
            ("model.layers.3.mlp.up_proj.weight_scale_inv", 2, 1, 0),
            // Per-channel scales follow the output dim; per-tensor scales are replicated.
            ("model.layers.3.mlp.up_proj.weight_scale", 2, 1, 0),
            ("model.layers.3.mlp.down_proj.weight_scale", 2, 1, nil),
            ("model.layers.3.mlp.up_proj.weight_scale", 0, 1, nil),
            ("model.layers.3.mlp.up_proj.input_scale", 1, 1, nil),
        ]
        for (name, rank, ep, dim) in cases {
            XCTAssertEqual(ShardRules.splitDim(name: name, rank: rank, expertParallel: ep), dim, "\(name) rank \(rank) ep \(ep)")
        }
        XCTAssertEqual(ShardRules.role(of: "model.layers.3.mlp.experts.17.up_proj.weight"), .expert(index: 17, inner: .column))
    }

    /// Names split on "." with empty components dropped: the first "experts" component decides,
    /// and only when a number follows it; the last component decides column / row.
    func testRolesOfUnusualNames() {
        let cases: [(String, SplitRole)] = [
            ("model..layers.3..mlp.experts..5.down_proj.weight", .expert(index: 5, inner: .row)),
            ("experts.2.w1.weight", .expert(index: 2, inner: .column)),
            ("model.experts.x.experts.3.w2.weight", .row),
            ("model.layers.0.mlp.experts.weight", .replicated),
            ("model.layers.0.mlp.experts.7", .expert(index: 7, inner: .replicated)),
            ("lm_head.", .column),
            (".o_proj.weight", .row),
            ("", .replicated),
            ("w3", .column),
        ]
        for (name, role) in cases { XCTAssertEqual(ShardRules.role(of: name), role, name) }
        XCTAssertEqual(ShardRules.moduleName("model.layers.1.mlp.gate.e_score_correction_bias"), "model.layers.1.mlp.gate")
    }

    func testExpertPlacement() {
        XCTAssertEqual((0..<8).map { ExpertPlacement.contiguous.rank(of: $0, experts: 8, ep: 4) }, [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual((0..<8).map { ExpertPlacement.roundRobin.rank(of: $0, experts: 8, ep: 4) }, [0, 1, 2, 3, 0, 1, 2, 3])
    }

    func testStagesBalancedByBytes() {
        XCTAssertEqual(ParallelPlan.stages(layerBytes: [1, 1, 1, 1, 1, 1], pp: 3), [0..<2, 2..<4, 4..<6])
        XCTAssertEqual(ParallelPlan.stages(layerBytes: [5, 1, 1, 1, 1, 1], pp: 2), [0..<1, 1..<6])
        // lm_head etc. of 4 on the last stage: cuts after 2, 3, 4 layers give 6|8, 7|7, 8|6.
        XCTAssertEqual(ParallelPlan.stages(layerBytes: [5, 1, 1, 1, 1, 1], pp: 2, lastExtra: 4), [0..<3, 3..<6])
        XCTAssertEqual(ParallelPlan.stages(layerBytes: [1, 1, 1], pp: 3), [0..<1, 1..<2, 2..<3])
    }

    func testSliceRange() {
        XCTAssertEqual(SliceRange.part(2, of: 4, size: 16), SliceRange(offset: 8, length: 4))
    }

    func testBadSplitsAreRefusedWithTheSizesThatWork() {
        let d = ParallelPlan.Dimensions(layers: 4, attentionHeads: 16, kvHeads: 2, vocab: 1024, intermediate: 512, moeIntermediate: 64, routedExperts: 8)
        XCTAssertNoThrow(try ParallelPlan(tp: 2, ep: 2).validate(d))
        func code(_ p: ParallelPlan) -> String? {
            do { try p.validate(d); return nil } catch let e as ShardError { return e.code } catch { return "other" }
        }
        XCTAssertEqual(code(ParallelPlan(tp: 3)), "shard.indivisible")
        XCTAssertEqual(code(ParallelPlan(tp: 4)), "shard.indivisible") // 2 KV heads (GQA)
        XCTAssertEqual(code(ParallelPlan(tp: 2, pp: 5)), "shard.pp_exceeds_layers")
        XCTAssertEqual(code(ParallelPlan(tp: 4, ep: 2)), "shard.ep_not_tp")
        XCTAssertThrowsError(try ParallelPlan(tp: 4).validate(d)) { e in
            XCTAssertTrue("\(e)".contains("key/value heads (2); sizes that do: 1, 2"), "\(e)")
        }
        XCTAssertNoThrow(try ParallelPlan.checkBlockAlignment(tensor: "w", size: 7168, parts: 8, block: 128))
        XCTAssertThrowsError(try ParallelPlan.checkBlockAlignment(tensor: "q_b", size: 1536, parts: 8, block: 128)) { e in
            XCTAssertEqual((e as? ShardError)?.tensor, "q_b")
            XCTAssertTrue("\(e)".contains("keep them whole: 1, 2, 3, 4, 6, 12"), "\(e)")
        }
    }
}
