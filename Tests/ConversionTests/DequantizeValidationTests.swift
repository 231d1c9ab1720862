import Foundation
import TestSupport
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

/// dequantize (and requantization) refuse what they cannot compute or what would be silently wrong
/// (issue 12 items 6 and 7).
final class DequantizeValidationTests: XCTestCase {
    let q = "model.layers.0.self_attn.q_proj"
    let up = "model.layers.1.mlp.up_proj"

    /// Byte offset of `tensor`'s first byte in the safetensors file, read with a hand-written
    /// header walk (8-byte little-endian length, JSON, data), not dsconvert's reader.
    func fileOffset(_ path: String, _ tensor: String) throws -> Int {
        let bytes = try CV.bytes(path)
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONParser.parse(String(decoding: bytes[8..<8 + n], as: UTF8.self))
        return 8 + n + header[tensor]!["data_offsets"]!.arrayValue![0].intValue!
    }

    func assertInvalidValue(_ input: String, tensor: String, index: Int, byteOffset: Int, mentions: String,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let tmp = try CVTempDir()
        let runs: [(String, () throws -> ConversionReport)] = [
            ("dequantize", { try CV.dequantize(input, tmp.sub("d")) }),
            ("requantize", { try CV.quantize(input, tmp.sub("q"), CV.scheme(.int8)) }),
        ]
        for (label, run) in runs {
            XCTAssertThrowsError(try run(), label, file: file, line: line) { error in
                guard let e = error as? QuantizationError, case let .invalidValue(t, i, _, f, offset) = e else {
                    return XCTFail("\(label): \(error)", file: file, line: line)
                }
                XCTAssertEqual(t, tensor, label, file: file, line: line)
                XCTAssertEqual(i, index, label, file: file, line: line)
                XCTAssertEqual(f, input + "/model.safetensors", label, file: file, line: line)
                XCTAssertEqual(offset, byteOffset, label, file: file, line: line)
                XCTAssertTrue(e.message.contains(mentions), "\(label): \(e.message)", file: file, line: line)
                XCTAssertTrue("\(e)".contains("(byte \(byteOffset))"), "\(e)", file: file, line: line)
            }
        }
        for out in [tmp.sub("d"), tmp.sub("q")] where CV.exists(out) {
            XCTAssertEqual(try CV.files(out).filter { $0.hasSuffix(".safetensors") }, [], "no output shard", file: file, line: line)
        }
    }

    /// Item 7: NaN, infinite, zero and negative scales, in the block layout (F32 scales) and
    /// compressed-tensors (BF16 scales).
    func testBadScalesAreRefused() throws {
        let tmp = try CVTempDir()
        let block = tmp.sub("block"), channel = tmp.sub("channel")
        try CV.quantize(CV.llama, block)
        try CV.quantize(CV.llama, channel, CV.scheme(.fp8, .channel))
        let cases: [(String, Float, String)] = [("nan", .nan, "NaN"), ("inf", .infinity, "infinite"), ("zero", 0, "zero"), ("neg", -0.5, "negative")]
        for (label, value, word) in cases {
            let b = tmp.sub("block-\(label)")
            try Edit.copy(block, to: b) { t in
                let i = Edit.index(t, up + ".weight_scale_inv")  // [3, 1]
                withUnsafeBytes(of: value.bitPattern.littleEndian) { for k in 0..<4 { t[i].1[4 + k] = $0[k] } }  // element 1
            }
            try assertInvalidValue(b, tensor: up + ".weight_scale_inv", index: 1,
                                   byteOffset: try fileOffset(b + "/model.safetensors", up + ".weight_scale_inv") + 4, mentions: word)
            let c = tmp.sub("channel-\(label)")
            try Edit.copy(channel, to: c) { t in
                let i = Edit.index(t, q + ".weight_scale")
                let bits = FloatBits.f32ToBF16(value)
                t[i].1[2 * 7] = UInt8(bits & 0xFF)
                t[i].1[2 * 7 + 1] = UInt8(bits >> 8)
            }
            try assertInvalidValue(c, tensor: q + ".weight_scale", index: 7,
                                   byteOffset: try fileOffset(c + "/model.safetensors", q + ".weight_scale") + 14, mentions: word)
        }
    }

    /// Item 7: the FP8 NaN codes 0x7F and 0xFF in a weight.
    func testFP8NaNCodesAreRefused() throws {
        let tmp = try CVTempDir()
        let block = tmp.sub("block")
        try CV.quantize(CV.llama, block)
        for (k, code) in [(0, UInt8(0x7F)), (5000, UInt8(0xFF))] {
            let input = tmp.sub("nan-\(code)")
            try Edit.copy(block, to: input) { t in t[Edit.index(t, q + ".weight")].1[k] = code }
            try assertInvalidValue(input, tensor: q + ".weight", index: k,
                                   byteOffset: try fileOffset(input + "/model.safetensors", q + ".weight") + k,
                                   mentions: "0x\(String(code, radix: 16, uppercase: true)) is NaN")
        }
    }

    /// Item 6: an F8_E5M2 weight with a scale is not passed through: both commands refuse it.
    func testE5M2WeightWithScaleIsRefused() throws {
        let tmp = try CVTempDir()
        let channel = tmp.sub("channel")
        try CV.quantize(CV.llama, channel, CV.scheme(.fp8, .channel))
        let input = tmp.sub("e5m2")
        try Edit.copy(channel, to: input) { t in
            let i = Edit.index(t, q + ".weight")
            t[i].0.dtype = .f8e5m2
        }
        XCTAssertNotNil(QuantizationState.of(try Checkpoint(path: input)).problem)
        for (label, run) in [("dequantize", { try CV.dequantize(input, tmp.sub("d")) }), ("quantize", { try CV.quantize(input, tmp.sub("q")) })] as [(String, () throws -> ConversionReport)] {
            XCTAssertThrowsError(try run(), label) { error in
                guard case let QuantizationError.unsupportedDType(tensor, dtype, _) = error else { return XCTFail("\(label): \(error)") }
                XCTAssertEqual(tensor, q + ".weight")
                XCTAssertEqual(dtype, "F8_E5M2")
            }
        }
    }
}

/// Item 4: asymmetric compressed-tensors checkpoints (`weight_zero_point`) are dequantized and
/// requantized with (q − zp) × scale exactly as compressed-tensors computes it, checked against
/// quant_reference.py; inspect shows the zero points.
final class ZeroPointTests: XCTestCase {
    let q = "model.layers.0.self_attn.q_proj", up = "model.layers.1.mlp.up_proj"

    func testAsymmetricINT8AndFP8MatchReference() throws {
        let tmp = try CVTempDir()
        let int8 = tmp.sub("int8"), fp8 = tmp.sub("fp8-tensor")
        try CV.quantize(CV.llama, int8, CV.scheme(.int8, .channel))
        try CV.quantize(CV.llama, fp8, CV.scheme(.fp8, .tensor))

        // INT8 per channel with an I8 zero point per row (values across the whole range).
        let asymInt8 = tmp.sub("asym-int8")
        try Edit.copy(int8, to: asymInt8) { t in
            for m in [q, up] {
                let rows = t[Edit.index(t, m + ".weight")].0.shape[0]
                let zp = (0..<rows).map { UInt8(truncatingIfNeeded: ($0 * 37 + 11) % 256) }
                t.insert((TensorSpec(name: m + ".weight_zero_point", dtype: .i8, shape: [rows, 1]), zp), at: Edit.index(t, m + ".weight_scale") + 1)
            }
        }
        // FP8 per tensor with an F8_E4M3 zero point (1.375 and -0.8125): (q − zp) is rounded to BF16.
        let asymFP8 = tmp.sub("asym-fp8")
        try Edit.copy(fp8, to: asymFP8) { t in
            for (m, code) in [(q, UInt8(0x3B)), (up, UInt8(0xB5))] {
                t.insert((TensorSpec(name: m + ".weight_zero_point", dtype: .f8e4m3, shape: [1]), [code]), at: Edit.index(t, m + ".weight_scale") + 1)
            }
        }
        for input in [asymInt8, asymFP8] {
            let state = QuantizationState.of(try Checkpoint(path: input))
            XCTAssertNil(state.problem)
            let zps = state.groups.compactMap(\.zeroPointDType)
            XCTAssertEqual(zps.count, 1, "one group with zero points: \(state.groups)")
            XCTAssertEqual(state.groups.first { $0.zeroPointDType != nil }?.count, 2)
            for (mode, dtype) in [("dequant-bf16", DType.bf16), ("dequant-f32", DType.f32)] {
                let out = tmp.sub((input as NSString).lastPathComponent + "-" + mode)
                try CV.dequantize(input, out, to: dtype)
                try Edit.assertReference(mode, input, out)
                XCTAssertNil(try CV.tensors(out)[q + ".weight_zero_point"], "zero points are consumed")
            }
            let requant = tmp.sub((input as NSString).lastPathComponent + "-block")
            try CV.quantize(input, requant)
            try Edit.assertReference("fp8-block", input, requant)
        }
        // The zero point matters: without it the output differs (the test could not pass by ignoring it).
        let a = try CV.tensors(tmp.sub("asym-int8-dequant-bf16"))[q + ".weight"]!.bytes
        let sym = tmp.sub("sym-bf16")
        try CV.dequantize(int8, sym)
        XCTAssertNotEqual(a, try CV.tensors(sym)[q + ".weight"]!.bytes)
    }

    /// A zero point beside a DeepSeek block scale or of the wrong size is refused.
    func testInvalidZeroPointsAreRefused() throws {
        let tmp = try CVTempDir()
        let block = tmp.sub("block"), int8 = tmp.sub("int8")
        try CV.quantize(CV.llama, block)
        try CV.quantize(CV.llama, int8, CV.scheme(.int8, .channel))
        let withBlock = tmp.sub("zp-block")
        try Edit.copy(block, to: withBlock) { t in t.append((TensorSpec(name: q + ".weight_zero_point", dtype: .i8, shape: [1, 1]), [3])) }
        XCTAssertThrowsError(try CV.dequantize(withBlock, tmp.sub("o1"))) { error in
            guard case let QuantizationError.invalidQuantizedInput(tensor, message, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(tensor, q + ".weight_zero_point")
            XCTAssertTrue(message.contains("block scale"), message)
        }
        let wrongSize = tmp.sub("zp-size")
        try Edit.copy(int8, to: wrongSize) { t in t.append((TensorSpec(name: q + ".weight_zero_point", dtype: .i8, shape: [3]), [1, 2, 3])) }
        XCTAssertThrowsError(try CV.quantize(wrongSize, tmp.sub("o2"))) { error in
            guard case let QuantizationError.badShape(tensor, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(tensor, q + ".weight_zero_point")
        }
    }
}

/// Item 11: an F32 weight inside a BF16 model (channel, tensor, INT8): q is computed from the
/// scale as stored (rounded to BF16), checked against quant_reference.py.
final class MixedDTypeTests: XCTestCase {
    /// A scale that does not fit the stored scale dtype (an F32 weight of 1e30 in an F16 model) is
    /// refused rather than stored as infinity.
    func testScaleOverflowingTheModelDTypeIsRefused() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("f32-in-f16")
        let n = "model.layers.0.self_attn.q_proj.weight"
        try Edit.copy(CV.llama, to: input) { t in
            let i = Edit.index(t, n)
            var v = Edit.floats(t[i].1, .bf16)
            v[3 * t[i].0.shape[1] + 5] = 1e30
            t[i] = (TensorSpec(name: n, dtype: .f32, shape: t[i].0.shape), Edit.f32(v))
        }
        try Edit.setConfig(input, "torch_dtype", .string("float16"))
        for g in [QuantizationScheme.Granularity.channel, .tensor] {
            XCTAssertThrowsError(try CV.quantize(input, tmp.sub("out-\(g)"), CV.scheme(.fp8, g)), "\(g)") { error in
                guard case let QuantizationError.invalidValue(tensor, index, message, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(tensor, n)
                XCTAssertEqual(index, g == .channel ? 3 : 0)
                XCTAssertTrue(message.contains("overflows the F16"), message)
            }
        }
    }

    func testF32WeightInBF16ModelUsesTheStoredScale() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("f32-in-bf16")
        let names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"]
        try Edit.copy(CV.llama, to: input) { t in
            for n in names {
                let i = Edit.index(t, n)
                var rng = STRandom(seed: 42)
                // BF16 values perturbed below BF16 resolution, so they are not BF16-representable.
                let v = Edit.floats(t[i].1, .bf16).map { x -> Float in
                    let u = Float(rng.below(1 << 16)) / Float(1 << 16) - 0.5
                    return x * (1 + u / 128) + u * 1e-4
                }
                t[i] = (TensorSpec(name: n, dtype: .f32, shape: t[i].0.shape), Edit.f32(v))
            }
        }
        XCTAssertEqual(try Checkpoint(path: input).modelDType, .bf16)
        let cases: [(String, QuantizationScheme)] = [
            ("fp8-channel", CV.scheme(.fp8, .channel)), ("fp8-tensor", CV.scheme(.fp8, .tensor)),
            ("int8-channel", CV.scheme(.int8, .channel)), ("int8-tensor", CV.scheme(.int8, .tensor)),
        ]
        for (mode, scheme) in cases {
            let out = tmp.sub(mode)
            try CV.quantize(input, out, scheme)
            let t = try CV.tensors(out)
            XCTAssertEqual(t[names[0].replacingOccurrences(of: ".weight", with: ".weight_scale")]?.info.dtype, .bf16, mode)
            try Edit.assertReference(mode, input, out)
            let deq = tmp.sub(mode + "-bf16")
            try CV.dequantize(out, deq)
            try Edit.assertReference("dequant-bf16", out, deq)
        }
    }
}
