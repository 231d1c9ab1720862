import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

final class RoundTripTests: XCTestCase {
    /// FP8 → dequantize --to bf16 → quantize --fp8 gives back the same bytes (docs/reference.md): the
    /// whole directory, shards, index and config.
    func testFP8ToBF16ToFP8IsByteIdentical() throws {
        let tmp = try CVTempDir()
        let fp8 = tmp.sub("fp8"), bf16 = tmp.sub("bf16"), again = tmp.sub("fp8-again")
        try CV.quantize(CV.deepseek, fp8)
        let r = try CV.dequantize(fp8, bf16)
        XCTAssertTrue(r.finalized)
        try CV.quantize(bf16, again)
        try CV.assertSameDirectory(fp8, again)

        // The dequantized directory: same names and shard layout as the original, no scales,
        // BF16 weights = BF16(f32(q) × scale) element by element; F32 router bias still F32 and
        // every unquantized tensor byte-identical to the original.
        XCTAssertEqual(try CV.modelFiles(bf16), try CV.files(CV.deepseek))
        let original = try CV.tensors(CV.deepseek)
        let q = try CV.tensors(fp8)
        let d = try CV.tensors(bf16)
        XCTAssertEqual(Set(d.keys), Set(original.keys))
        for (name, t) in d {
            let o = original[name]!
            XCTAssertEqual(t.dtype, o.dtype, name)
            XCTAssertEqual(t.shape, o.shape, name)
            XCTAssertEqual(t.file, o.file, name)
            guard let qt = q[name], qt.dtype == .f8e4m3 else {
                XCTAssertTrue(t.bytes == o.bytes, "\(name) changed")
                continue
            }
            let s = q[String(name.dropLast(".weight".count)) + ".weight_scale_inv"]!
            let rows = t.shape[0], cols = t.shape[1], cb = (cols + 127) / 128
            var expected = [UInt8](repeating: 0, count: rows * cols * 2)
            for r in 0..<rows {
                for c in 0..<cols {
                    let v = FloatBits.e4m3ToF32(qt.bytes[r * cols + c]) * s.float((r / 128) * cb + c / 128)
                    let b = FloatBits.f32ToBF16(v)
                    expected[2 * (r * cols + c)] = UInt8(b & 0xFF)
                    expected[2 * (r * cols + c) + 1] = UInt8(b >> 8)
                }
            }
            XCTAssertTrue(t.bytes == expected, "\(name): dequantized values differ from f32(q) × scale")
        }
        XCTAssertEqual(d["model.layers.1.mlp.gate.e_score_correction_bias"]?.dtype, .f32)
    }

    /// dequantize drops quantization_config and names the new dtype in the key(s) the config
    /// uses: torch_dtype (deepseek), transformers 5's `dtype` alone (qwen2-tiny) — never adding
    /// torch_dtype beside it — or both when both are there.
    func testDequantizeConfig() throws {
        let tmp = try CVTempDir()
        try CV.quantize(CV.deepseek, tmp.sub("ds-fp8"))
        try CV.dequantize(tmp.sub("ds-fp8"), tmp.sub("ds-f32"), to: .f32)
        let c = try CV.json(tmp.sub("ds-f32") + "/config.json")
        XCTAssertNil(c["quantization_config"])
        XCTAssertEqual(c["torch_dtype"]?.stringValue, "float32")
        XCTAssertNil(c["dtype"])
        let original = try CV.json(CV.deepseek + "/config.json")
        XCTAssertEqual(c.setting("torch_dtype", .string("bfloat16")), original, "nothing else changes")
        let t = try CV.tensors(tmp.sub("ds-f32"))
        XCTAssertEqual(t["model.layers.0.mlp.up_proj.weight"]?.dtype, .f32)
        XCTAssertEqual(t["model.embed_tokens.weight"]?.dtype, .bf16, "unquantized tensors stay as they are")

        try CV.quantize(CV.qwen2, tmp.sub("qw-int8"), CV.scheme(.int8))
        try CV.dequantize(tmp.sub("qw-int8"), tmp.sub("qw-f16"), to: .f16)
        let q = try CV.json(tmp.sub("qw-f16") + "/config.json")
        XCTAssertNil(q["quantization_config"])
        XCTAssertEqual(q["dtype"]?.stringValue, "float16")
        XCTAssertNil(q["torch_dtype"], "a key the input did not use is not added")
        XCTAssertEqual(q.setting("dtype", .string("bfloat16")), try CV.json(CV.qwen2 + "/config.json"), "nothing else changes")
        let qt = try CV.tensors(tmp.sub("qw-f16"))
        XCTAssertEqual(qt["model.layers.0.self_attn.o_proj.weight"]?.dtype, .f16)
        XCTAssertNil(qt["model.layers.0.self_attn.o_proj.weight_scale"])
        XCTAssertEqual(qt.count, 27)

        // Both keys (some exports carry both): both are updated.
        let both = tmp.sub("qw-int8-both")
        try CV.copyDirectory(tmp.sub("qw-int8"), to: both)
        try CV.writeJSON(try CV.json(both + "/config.json").setting("torch_dtype", .string("bfloat16")), to: both + "/config.json")
        try CV.dequantize(both, tmp.sub("qw-both-f32"), to: .f32)
        let b = try CV.json(tmp.sub("qw-both-f32") + "/config.json")
        XCTAssertEqual(b["dtype"]?.stringValue, "float32")
        XCTAssertEqual(b["torch_dtype"]?.stringValue, "float32")
    }

    /// An input with nothing quantized is an error, not a copy.
    func testDequantizeOfUnquantizedModelThrows() throws {
        let tmp = try CVTempDir()
        XCTAssertThrowsError(try CV.dequantize(CV.deepseek, tmp.sub("out"))) { error in
            guard case QuantizationError.nothingQuantized = error else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(CV.exists(tmp.sub("out")), "nothing written")
    }

    /// Quantizing an FP8 checkpoint again (here per channel) equals quantizing its BF16
    /// dequantization: the requantize path and the dequantize-then-quantize path write the same
    /// bytes. (llama-tiny: its [352, 128] MLP weights have partial 128-row blocks.)
    func testRequantizeEqualsQuantizeOfDequantized() throws {
        let tmp = try CVTempDir()
        let fp8 = tmp.sub("fp8")
        try CV.quantize(CV.llama, fp8)
        let direct = tmp.sub("direct"), viaBF16 = tmp.sub("via-bf16")
        let channel = CV.scheme(.fp8, .channel)
        let plan = try PlanBuilder.quantize(try Checkpoint(path: fp8), scheme: channel, ignore: [], shardSize: nil)
        XCTAssertEqual(plan.counts["requantized"], 14)
        try CV.quantize(fp8, direct, channel)
        try CV.dequantize(fp8, tmp.sub("bf16"))
        try CV.quantize(tmp.sub("bf16"), viaBF16, channel)
        try CV.assertSameDirectory(direct, viaBF16)
        // A compressed-tensors checkpoint with per-channel BF16 scales and no block scales left.
        let t = try CV.tensors(direct)
        XCTAssertEqual(t["model.layers.1.mlp.up_proj.weight_scale"]?.shape, [352, 1])
        XCTAssertEqual(t["model.layers.1.mlp.up_proj.weight_scale"]?.dtype, .bf16)
        XCTAssertTrue(t.keys.allSatisfy { !$0.hasSuffix("_scale_inv") })
        XCTAssertEqual(t.count, 21 + 14)
        let qc = try CV.json(direct + "/config.json")["quantization_config"]
        XCTAssertEqual(qc?["quant_method"]?.stringValue, "compressed-tensors")
        XCTAssertEqual(qc?["ignore"]?.arrayValue?.compactMap(\.stringValue), ["lm_head"])
        // Requantizing to the same block scheme is the identity.
        try CV.quantize(fp8, tmp.sub("fp8-again"))
        try CV.assertSameDirectory(fp8, tmp.sub("fp8-again"))
    }

    /// From the compressed-tensors layout too: INT8 per channel → block FP8 directly equals going
    /// through the BF16 dequantization; an ignored module that was quantized comes back as BF16.
    func testRequantizeFromCompressedTensors() throws {
        let tmp = try CVTempDir()
        let int8 = tmp.sub("int8")
        try CV.quantize(CV.llama, int8, CV.scheme(.int8))
        try CV.dequantize(int8, tmp.sub("bf16"))
        try CV.quantize(int8, tmp.sub("direct"), ignore: ["o_proj"])
        try CV.quantize(tmp.sub("bf16"), tmp.sub("via"), ignore: ["o_proj"])
        try CV.assertSameDirectory(tmp.sub("direct"), tmp.sub("via"))
        let t = try CV.tensors(tmp.sub("direct")), b = try CV.tensors(tmp.sub("bf16"))
        XCTAssertEqual(t["model.layers.0.self_attn.o_proj.weight"]?.dtype, .bf16)
        XCTAssertTrue(t["model.layers.0.self_attn.o_proj.weight"]!.bytes == b["model.layers.0.self_attn.o_proj.weight"]!.bytes)
        XCTAssertEqual(t["model.layers.0.self_attn.q_proj.weight"]?.dtype, .f8e4m3)
        XCTAssertNil(t["model.layers.0.self_attn.q_proj.weight_scale"])
        // The INT8 dequantization itself: BF16(q × scale), scale BF16 per row.
        let q = try CV.tensors(int8)
        let w = q["model.layers.1.mlp.down_proj.weight"]!, s = q["model.layers.1.mlp.down_proj.weight_scale"]!
        let d = b["model.layers.1.mlp.down_proj.weight"]!
        let cols = w.shape[1]
        for i in stride(from: 0, to: w.info.elementCount, by: 7) {
            let v = Float(Int8(bitPattern: w.bytes[i])) * s.float(i / cols)
            XCTAssertEqual(d.float(i).bitPattern, FloatBits.bf16ToF32(FloatBits.f32ToBF16(v)).bitPattern, "element \(i)")
        }
    }

    /// An F16 model: block FP8 from F16 values matches the reference, scales of the
    /// compressed-tensors layout are F16, and FP8 → F16 → FP8 gives back the same bytes.
    func testF16Model() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("f16")
        try CV.copyDirectory(CV.llama, to: input)
        let f = try SafeTensorsFile(path: CV.llama + "/model.safetensors")
        var items: [(TensorSpec, [UInt8])] = []
        for t in f.tensors {
            let src = f.view(t).bytes.bindMemory(to: UInt16.self)
            var b: [UInt8] = []
            b.reserveCapacity(src.count * 2)
            for h in src {
                let x = FloatBits.f32ToF16(FloatBits.bf16ToF32(h))
                b += [UInt8(x & 0xFF), UInt8(x >> 8)]
            }
            items.append((TensorSpec(name: t.name, dtype: .f16, shape: t.shape), b))
        }
        try FileManager.default.removeItem(atPath: input + "/model.safetensors")
        try CV.writeSafetensors(input + "/model.safetensors", items)
        try CV.writeJSON(try CV.json(input + "/config.json").setting("torch_dtype", .string("float16")), to: input + "/config.json")

        let fp8 = tmp.sub("fp8")
        try CV.quantize(input, fp8)
        let x = try CV.tensors(input), q = try CV.tensors(fp8)
        for name in ["model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.k_proj.weight"] {
            let w = x[name]!
            let ref = referenceBlockFP8(w.floats, rows: w.shape[0], cols: w.shape[1])
            XCTAssertTrue(q[name]!.bytes == ref.q, name)
            XCTAssertTrue(q[name + "_scale_inv"]!.bytes == ref.scales.f32Bytes, name)
        }
        XCTAssertEqual(q["model.embed_tokens.weight"]?.dtype, .f16)
        try CV.dequantize(fp8, tmp.sub("back"), to: .f16)
        XCTAssertEqual(try CV.tensors(tmp.sub("back"))["model.layers.0.mlp.up_proj.weight"]?.dtype, .f16)
        try CV.quantize(tmp.sub("back"), tmp.sub("again"))
        try CV.assertSameDirectory(fp8, tmp.sub("again"))

        try CV.quantize(input, tmp.sub("channel"), CV.scheme(.fp8, .channel))
        let c = try CV.tensors(tmp.sub("channel"))
        XCTAssertEqual(c["model.layers.0.mlp.up_proj.weight_scale"]?.dtype, .f16)
        XCTAssertEqual(c["model.layers.0.mlp.up_proj.weight_scale"]?.shape, [352, 1])
    }
}

/// The README's exact round-trip statements (issue 12 items 12, 13) and `--to f32` of
/// compressed-tensors following that package's arithmetic.
final class RoundTripClaimTests: XCTestCase {
    /// compressed-tensors FP8 (channel, tensor): FP8 → BF16 → FP8 keeps every scale and every
    /// code except FP8 −0 (0x80), which comes back as +0 (0x00).
    func testCompressedTensorsFP8RoundTripDiffersOnlyInNegativeZero() throws {
        let tmp = try CVTempDir()
        var negativeZeros = 0
        for sample in [CV.llama, CV.qwen2] {
            for g in [QuantizationScheme.Granularity.channel, .tensor] {
                let name = (sample as NSString).lastPathComponent + "-\(g)"
                let a = tmp.sub(name + "-a"), b = tmp.sub(name + "-b"), c = tmp.sub(name + "-c")
                try CV.quantize(sample, a, CV.scheme(.fp8, g))
                try CV.dequantize(a, b)
                try CV.quantize(b, c, CV.scheme(.fp8, g))
                let ta = try CV.tensors(a), tc = try CV.tensors(c)
                XCTAssertEqual(Set(ta.keys), Set(tc.keys))
                for (n, t) in ta {
                    let u = tc[n]!
                    if n.hasSuffix(".weight") && t.info.dtype == .f8e4m3 {
                        for (i, (x, y)) in zip(t.bytes, u.bytes).enumerated() where x != y {
                            XCTAssertEqual([x, y], [0x80, 0x00], "\(name) \(n)[\(i)]")
                            negativeZeros += 1
                        }
                    } else {
                        XCTAssertEqual(t.bytes, u.bytes, "\(name) \(n)")
                    }
                }
            }
        }
        XCTAssertGreaterThan(negativeZeros, 0, "the samples do exercise the −0 case")
    }

    /// INT8 does not round-trip (documented): the largest code is 127, the scale divides by 127.5.
    func testINT8RoundTripChangesScales() throws {
        let tmp = try CVTempDir()
        try CV.quantize(CV.llama, tmp.sub("a"), CV.scheme(.int8))
        try CV.dequantize(tmp.sub("a"), tmp.sub("b"))
        try CV.quantize(tmp.sub("b"), tmp.sub("c"), CV.scheme(.int8))
        let s = "model.layers.0.mlp.up_proj.weight_scale"
        let a = try CV.tensors(tmp.sub("a"))[s]!.floats, c = try CV.tensors(tmp.sub("c"))[s]!.floats
        XCTAssertNotEqual(a, c)
        for (x, y) in zip(a, c) { XCTAssertEqual(y / x, 127 / 127.5, accuracy: 0.01) }
    }

    /// `dequantize --to f32` of a BF16-scaled compressed-tensors checkpoint holds BF16 values
    /// widened (compressed-tensors computes q × s in the scale dtype), matching the reference.
    func testCompressedTensorsToF32IsBF16Widened() throws {
        let tmp = try CVTempDir()
        try CV.quantize(CV.llama, tmp.sub("ct"), CV.scheme(.fp8, .channel))
        try CV.dequantize(tmp.sub("ct"), tmp.sub("f32"), to: .f32)
        try Edit.assertReference("dequant-f32", tmp.sub("ct"), tmp.sub("f32"))
        let w = try CV.tensors(tmp.sub("f32"))["model.layers.0.self_attn.q_proj.weight"]!
        XCTAssertEqual(w.info.dtype, .f32)
        XCTAssertTrue(w.floats.allSatisfy { $0.bitPattern & 0xFFFF == 0 }, "every value is a BF16 value")
    }
}
