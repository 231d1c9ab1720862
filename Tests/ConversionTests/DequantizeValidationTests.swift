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
