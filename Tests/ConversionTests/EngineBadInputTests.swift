import Foundation
import JSON
import SafeTensors
import TestSupport
import XCTest

/// `dsconvert forward` on small modified copies of the samples that the engine cannot run: each
/// is refused with one line naming what and where (config.json, the tensor and its file, or the
/// ids file), exit status 1 and a typed code in --json. Asymmetric INT8 (a zero point) is an
/// encoding the engine runs: its logits are checked against an F32 copy of the same weights
/// dequantized here by hand.
final class EngineBadInputTests: XCTestCase {
    // MARK: Helpers

    /// A copy of the sample `name` in `tmp`, with config.json changed by `edit`.
    func copy(_ name: String, in tmp: CVTempDir, as label: String, config edit: (JSONValue) -> JSONValue = { $0 }) throws -> String {
        let dir = tmp.sub(label)
        try CV.copyDirectory(CV.root + "/Samples/" + name, to: dir)
        try CV.writeJSON(edit(try CV.json(dir + "/config.json")), to: dir + "/config.json")
        return dir
    }

    /// Rewrites `dir/shard`, each tensor replaced by what `transform` returns for it (nil: kept).
    func rewrite(_ dir: String, shard: String = "model.safetensors", _ transform: (CV.Tensor) -> [(TensorSpec, [UInt8])]?) throws {
        let path = dir + "/" + shard
        let f = try SafeTensorsFile(path: path)
        var items: [(TensorSpec, [UInt8])] = []
        for t in f.tensors {
            let tensor = CV.Tensor(info: t, bytes: Array(f.view(t).bytes), file: shard)
            items += transform(tensor) ?? [(TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape), tensor.bytes)]
        }
        try FileManager.default.removeItem(atPath: path)
        try CV.writeSafetensors(path, items)
    }

    /// An ids file holding `ids` as I64 [1, T].
    func idsFile(_ ids: [Int], in tmp: CVTempDir, _ label: String) throws -> String {
        let path = tmp.sub(label + ".safetensors")
        var bytes: [UInt8] = []
        for v in ids { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
        try CV.writeSafetensors(path, [(TensorSpec(name: "input_ids", dtype: .i64, shape: [1, ids.count]), bytes)])
        return path
    }

    /// Runs `forward` and checks the refusal: exit 1, `code` in --json, and (without --json) one
    /// line on stderr holding every string of `mentions`; no logits file is written.
    @discardableResult
    func refuse(_ model: String, ids: String, code: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let out = (ids as NSString).deletingLastPathComponent + "/logits-\(UUID().uuidString).safetensors"
        let args = ["forward", model, "--ids", ids, "--out", out, "--threads", "2"]
        let json = try CLI.expect(args + ["--json"], status: 1, code: code, file: file, line: line)
        let plain = try CLI.run(args)
        XCTAssertEqual(plain.status, 1, plain.stderr, file: file, line: line)
        let text = plain.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(text.isEmpty, file: file, line: line)
        XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
        for m in mentions { XCTAssertTrue(text.contains(m), "'\(m)' not in: \(text)", file: file, line: line) }
        XCTAssertNil(json.error?["message"]?.stringValue?.range(of: "\n"), file: file, line: line)
        XCTAssertFalse(CV.exists(out), "no logits written", file: file, line: line)
        return text
    }

    var llamaIds: String { CV.root + "/Samples/golden/llama-tiny.safetensors" }
    var deepseekIds: String { CV.root + "/Samples/golden/deepseek-v3-tiny.safetensors" }

    /// The shard of the deepseek sample that holds `tensor`.
    func deepseekShard(of tensor: String) throws -> String {
        for s in CV.deepseekShards where try SafeTensorsHeader.read(path: CV.deepseek + "/" + s).tensors.contains(where: { $0.name == tensor }) {
            return s
        }
        throw XCTSkip("no shard holds \(tensor)")
    }

    // MARK: Config

    func testArchitectureItCannotRun() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "mixtral") {
            $0.setting("model_type", .string("mixtral")).setting("architectures", .array([.string("MixtralForCausalLM")]))
        }
        let ids = try idsFile([1, 2, 3], in: tmp, "ids")
        try refuse(model, ids: ids, code: "engine.config", mentions: [model + "/config.json", "'mixtral'", "MixtralForCausalLM", "deepseek_v3, qwen2 and llama"])
    }

    func testDeepSeekRoutingItDoesNotImplementIsRefused() throws {
        let tmp = try CVTempDir()
        let ids = try idsFile([1, 2, 3], in: tmp, "ids")
        let softmax = try copy("deepseek-v3-tiny", in: tmp, as: "softmax") { $0.setting("scoring_func", .string("softmax")) }
        try refuse(softmax, ids: ids, code: "engine.config", mentions: [softmax + "/config.json", "scoring_func 'softmax'", "sigmoid"])
        let greedy = try copy("deepseek-v3-tiny", in: tmp, as: "greedy") { $0.setting("topk_method", .string("greedy")) }
        try refuse(greedy, ids: ids, code: "engine.config", mentions: [greedy + "/config.json", "topk_method 'greedy'", "noaux_tc"])
        // The values the engine implements are accepted.
        let named = try copy("deepseek-v3-tiny", in: tmp, as: "named") {
            $0.setting("scoring_func", .string("sigmoid")).setting("topk_method", .string("noaux_tc"))
        }
        try CLI.expect(["forward", named, "--ids", ids, "--out", tmp.sub("named.safetensors"), "--json"], status: 0)
    }

    // MARK: Shapes

    func testTensorShapeDisagreeingWithConfig() throws {
        let tmp = try CVTempDir()
        let model = try copy("deepseek-v3-tiny", in: tmp, as: "moe96") { $0.setting("moe_intermediate_size", .int(96)) }
        // Layer 0 is dense (first_k_dense_replace 1): the first expert of layer 1 is the first
        // tensor whose shape moe_intermediate_size sets; it is named with the shard holding it.
        let name = "model.layers.1.mlp.experts.0.gate_proj.weight"
        try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "engine.tensor",
                   mentions: [model + "/" + (try deepseekShard(of: name)) + ": tensor '\(name)'", "has shape [128, 256]", "config.json implies [96, 256]"])
    }

    func testVocabularySizeDisagreeingWithEmbedding() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "vocab") { $0.setting("vocab_size", .int(4000)) }
        try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "engine.tensor",
                   mentions: [model + "/model.safetensors", "tensor 'model.embed_tokens.weight'", "[4096, 128]", "[4000, 128]"])
    }

    // MARK: Ids

    func testIdsOutsideTheVocabulary() throws {
        let tmp = try CVTempDir()
        let high = try idsFile([5, 4096, 7], in: tmp, "high")
        try refuse(CV.llama, ids: high, code: "engine.input", mentions: [high, "token id 4096", "position 1", "0..<4096"])
        let negative = try idsFile([-1, 3], in: tmp, "negative")
        try refuse(CV.llama, ids: negative, code: "engine.input", mentions: [negative, "token id -1", "position 0"])
        // The last id of the vocabulary is fine.
        try CLI.expect(["forward", CV.llama, "--ids", try idsFile([0, 4095], in: tmp, "edge"), "--out", tmp.sub("edge-out.safetensors"), "--json"], status: 0)
    }

    func testPromptLongerThanMaxPositions() throws {
        let tmp = try CVTempDir()
        let model = try copy("qwen2-tiny", in: tmp, as: "short") { $0.setting("max_position_embeddings", .int(16)) }
        let long = try idsFile(Array(1...17), in: tmp, "long")
        try refuse(model, ids: long, code: "engine.input", mentions: [long, "17 positions", "max_position_embeddings 16"])
        try CLI.expect(["forward", model, "--ids", try idsFile(Array(1...16), in: tmp, "fits"), "--out", tmp.sub("fits-out.safetensors"), "--json"], status: 0)
    }

    // MARK: Encodings

    /// compressed-tensors' pack-quantized INT4: `X.weight_packed` (int32 words of eight 4-bit
    /// codes), `X.weight_scale` per group and `X.weight_shape`, and no `X.weight`.
    func testPackedInt4IsNamedAsSuch() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "int4")
        let target = "model.layers.0.mlp.up_proj"  // [352, 128]
        try rewrite(model) { t in
            guard t.info.name == target + ".weight" else { return nil }
            var shape: [UInt8] = []
            for v in [Int64(352), 128] { withUnsafeBytes(of: v.littleEndian) { shape += $0 } }
            return [(TensorSpec(name: target + ".weight_packed", dtype: .i32, shape: [352, 16]), [UInt8](repeating: 0x11, count: 352 * 16 * 4)),
                    (TensorSpec(name: target + ".weight_scale", dtype: .bf16, shape: [352, 1]), [UInt8](repeating: 0x3C, count: 352 * 2)),
                    (TensorSpec(name: target + ".weight_shape", dtype: .i64, shape: [2]), shape)]
        }
        let text = try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "engine.tensor",
                              mentions: [model + "/model.safetensors", "tensor '\(target).weight_packed'", "packed sub-byte integer weight (compressed-tensors pack-quantized, e.g. INT4)", "does not run"])
        XCTAssertFalse(text.contains("missing"), text)
    }

    /// Group-wise scales ([out, in / group]) are neither tensor, channel nor block scales.
    func testGroupWiseScalesAreRefused() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "group")
        let target = "model.layers.1.self_attn.o_proj"  // [128, 128]
        try rewrite(model) { t in
            guard t.info.name == target + ".weight" else { return nil }
            return [(TensorSpec(name: target + ".weight", dtype: .i8, shape: [128, 128]), [UInt8](repeating: 3, count: 128 * 128)),
                    (TensorSpec(name: target + ".weight_scale", dtype: .bf16, shape: [128, 4]), [UInt8](repeating: 0x3C, count: 128 * 4 * 2))]
        }
        try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "engine.tensor",
                   mentions: [model + "/model.safetensors", "tensor '\(target).weight_scale'", "[128, 4]", "group-wise scales (one per 32 inputs", "does not run"])
    }

    /// Asymmetric INT8 (compressed-tensors' `weight_zero_point`): the engine runs it, and its
    /// logits equal those of an F32 copy holding (q − zp) × scale, computed here, to 1e-5.
    func testAsymmetricInt8MatchesHandDequantizedF32() throws {
        let tmp = try CVTempDir()
        let quantized = try copy("llama-tiny", in: tmp, as: "asym")
        let reference = try copy("llama-tiny", in: tmp, as: "f32")
        let linear = try NSRegularExpression(pattern: "^model\\.layers\\.[0-9]+\\.(self_attn|mlp)\\.[a-z_]+_proj\\.weight$")
        func isLinear(_ name: String) -> Bool { linear.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil }

        // Each row's weights are first shifted by half their largest magnitude, so that no row
        // is symmetric about zero (the sample's are nearly so, which would give zero points of
        // 0 or −1); then per output row: scale = (max − min) / 255, zero point =
        // round(−128 − min / scale). Both models below hold the shifted weights.
        var dequantized: [String: [Float]] = [:]
        var count = 0
        try rewrite(quantized) { t in
            guard isLinear(t.info.name) else { return nil }
            count += 1
            let rows = t.shape[0], cols = t.shape[1], w = t.floats
            var q = [UInt8](repeating: 0, count: rows * cols), scales: [UInt8] = [], zeros: [UInt8] = []
            var f = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                let raw = w[r * cols..<(r + 1) * cols]
                let shift = 0.5 * raw.map(abs).max()!
                let row = raw.map { $0 + shift }
                let lo = min(row.min()!, 0), hi = max(row.max()!, 0)
                let s = (hi - lo) / 255
                let zp = Int8(max(-128, min(127, (-128 - lo / s).rounded())))
                XCTAssertNotEqual(zp, 0, "an asymmetric row has a nonzero zero point")
                for c in 0..<cols {
                    let code = Int8(max(-128, min(127, (row[c] / s).rounded() + Float(zp))))
                    q[r * cols + c] = UInt8(bitPattern: code)
                    f[r * cols + c] = (Float(code) - Float(zp)) * s
                }
                withUnsafeBytes(of: s.bitPattern.littleEndian) { scales += $0 }
                zeros.append(UInt8(bitPattern: zp))
            }
            dequantized[t.info.name] = f
            let module = String(t.info.name.dropLast(".weight".count))
            return [(TensorSpec(name: t.info.name, dtype: .i8, shape: [rows, cols]), q),
                    (TensorSpec(name: module + ".weight_scale", dtype: .f32, shape: [rows, 1]), scales),
                    (TensorSpec(name: module + ".weight_zero_point", dtype: .i8, shape: [rows, 1]), zeros)]
        }
        XCTAssertEqual(count, 14, "7 linear layers in each of 2 layers")
        try rewrite(reference) { t in
            guard let f = dequantized[t.info.name] else { return nil }
            var b: [UInt8] = []
            b.reserveCapacity(f.count * 4)
            for v in f { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
            return [(TensorSpec(name: t.info.name, dtype: .f32, shape: t.shape), b)]
        }

        func logits(_ model: String) throws -> [Float] {
            let out = tmp.sub((model as NSString).lastPathComponent + "-logits.safetensors")
            try CLI.expect(["forward", model, "--ids", llamaIds, "--key", "input_ids", "--out", out, "--threads", "2", "--json"], status: 0)
            return try XCTUnwrap(CV.tensors(out)["logits"]).floats
        }
        let a = try logits(quantized), b = try logits(reference)
        XCTAssertEqual(a.count, b.count)
        XCTAssertGreaterThan(a.count, 4096)
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5)
        // The zero point matters: the same codes read as symmetric give other logits.
        let symmetric = try copy("llama-tiny", in: tmp, as: "symmetric")
        try FileManager.default.removeItem(atPath: symmetric + "/model.safetensors")
        try FileManager.default.copyItem(atPath: quantized + "/model.safetensors", toPath: symmetric + "/model.safetensors")
        try rewrite(symmetric) { $0.info.name.hasSuffix(".weight_zero_point") ? [] : nil }
        let c = try logits(symmetric)
        XCTAssertGreaterThan(zip(a, c).map { abs($0 - $1) }.max() ?? 0, 1e-2)
    }

    // MARK: Missing and truncated weights

    func testMissingWeightTensorIsNamed() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "missing")
        let name = "model.layers.1.mlp.down_proj.weight"
        try rewrite(model) { $0.info.name == name ? [] : nil }
        try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "engine.tensor", mentions: ["tensor '\(name)'", "is missing from \(model)"])
    }

    func testTruncatedWeightFileIsRefused() throws {
        let tmp = try CVTempDir()
        let model = try copy("llama-tiny", in: tmp, as: "truncated")
        let path = model + "/model.safetensors"
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try h.truncate(atOffset: UInt64(size - 1000))
        try h.close()
        try refuse(model, ids: try idsFile([1, 2, 3], in: tmp, "ids"), code: "safetensors.offset_out_of_bounds",
                   mentions: [path, "tensor 'model.", "past the end of the data buffer", "truncated"])
    }

    // MARK: generate

    /// `generate` refuses the same inputs as `forward`: exit 1, a typed code, one line.
    func testGenerateRefusals() throws {
        let tmp = try CVTempDir()
        func expectRefusal(_ args: [String], code: String, mentions: [String], line: UInt = #line) throws {
            try CLI.expect(["generate"] + args + ["--max-tokens", "2", "--json"], status: 1, code: code, line: line)
            let r = try CLI.run(["generate"] + args + ["--max-tokens", "2"])
            XCTAssertEqual(r.status, 1, r.stderr, line: line)
            let text = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertFalse(text.contains("\n"), text, line: line)
            for m in mentions { XCTAssertTrue(text.contains(m), "'\(m)' not in: \(text)", line: line) }
            XCTAssertTrue(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "nothing generated: \(r.stdout)", line: line)
        }
        let mixtral = try copy("llama-tiny", in: tmp, as: "mixtral") {
            $0.setting("model_type", .string("mixtral")).setting("architectures", .array([.string("MixtralForCausalLM")]))
        }
        try expectRefusal([mixtral, "--prompt", "hello"], code: "engine.config", mentions: [mixtral + "/config.json", "'mixtral'"])
        let short = try copy("llama-tiny", in: tmp, as: "short") { $0.setting("max_position_embeddings", .int(4)) }
        try expectRefusal([short, "--ids", try idsFile([1, 2, 3, 4, 5], in: tmp, "five")], code: "engine.input", mentions: ["5 tokens", "max_position_embeddings 4"])
        let high = try idsFile([1, 4096], in: tmp, "high")
        try expectRefusal([CV.llama, "--ids", high], code: "engine.input", mentions: ["token id 4096", "0..<4096"])
        let greedy = try copy("deepseek-v3-tiny", in: tmp, as: "greedy") { $0.setting("topk_method", .string("greedy")) }
        try expectRefusal([greedy, "--prompt", "hello"], code: "engine.config", mentions: [greedy + "/config.json", "topk_method 'greedy'"])
    }
}
