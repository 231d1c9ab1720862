import Checkpoint
@testable import Conversion
import Foundation
import JSON
import Quantization
import SafeTensors
import TestSupport
import XCTest

/// Tier 1 of the quantizer's proof: every byte dsconvert writes for the three samples is
/// recomputed independently by `Tests/Reference/quant_reference.py` (numpy + ml_dtypes, no
/// dsconvert code) and must agree exactly: tensor names, dtypes, shapes, bytes, the file each
/// tensor lives in, the index, config.json and the copied side files.
///
/// Per sample: `--fp8` (DeepSeek block), `--fp8 --granularity tensor|channel` and `--int8`
/// (compressed-tensors), and `dequantize --to bf16|f32` of the block output. The conversions go
/// through the library (PlanBuilder + ConversionRunner), not the CLI.
///
/// The Python side is not optional: without python3, numpy or ml_dtypes the tests fail with a
/// message to run `make test`.
final class QuantReferenceTests: XCTestCase {
    private static let script = "quant_reference.py"

    private struct Case {
        var mode: String  // quant_reference.py's MODE
        var format: QuantizationScheme.Format
        var granularity: QuantizationScheme.Granularity?
    }

    private static let quantizeCases: [Case] = [
        Case(mode: "fp8-block", format: .fp8, granularity: nil),
        Case(mode: "fp8-tensor", format: .fp8, granularity: .tensor),
        Case(mode: "fp8-channel", format: .fp8, granularity: .channel),
        Case(mode: "int8-channel", format: .int8, granularity: nil),
    ]

    func testDeepSeekV3TinyMatchesReference() throws {
        try checkSample("deepseek-v3-tiny", quantizedWeights: 120)
    }

    func testQwen2TinyMatchesReference() throws {
        try checkSample("qwen2-tiny", quantizedWeights: 14)
    }

    func testLlamaTinyMatchesReference() throws {
        try checkSample("llama-tiny", quantizedWeights: 14)
    }

    /// The reference must see a single flipped byte (otherwise "zero mismatches" proves nothing).
    func testReferenceDetectsACorruptedByte() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-corrupt")
        let input = Self.sample("qwen2-tiny")
        let out = tmp.appending("fp8-channel").path
        try Self.quantize(input, to: out, format: .fp8, granularity: .channel)
        // Flip the last byte of model.safetensors: the last tensor's last byte.
        let file = out + "/model.safetensors"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count - 1] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let r = try Self.reference("fp8-channel", input, out)
        XCTAssertEqual(r.mismatches, 1, "a flipped byte must be reported as exactly one mismatch: \(r.messages)")
        XCTAssertTrue(r.messages.first?.contains("1 of") == true, "\(r.messages)")
    }

    /// Edge cases the samples lack: -0.0 weights (compressed-tensors writes FP8 +0 for them, the
    /// block layout keeps -0), an all-zero row (channel scale = eps) and an all -0.0 row. A copy of
    /// llama-tiny with `model.layers.0.self_attn.q_proj.weight` patched in place.
    func testSignedZerosAndZeroRowsMatchReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-zeros")
        let input = tmp.appending("llama-zeros").path
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        let sampleDir = Self.sample("llama-tiny")
        for f in try FileManager.default.contentsOfDirectory(atPath: sampleDir) where f != "model.safetensors" {
            try FileManager.default.copyItem(atPath: sampleDir + "/" + f, toPath: input + "/" + f)
        }
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: sampleDir + "/model.safetensors")))
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONParser.parse(String(decoding: bytes[8..<8 + headerLength], as: UTF8.self))
        let name = "model.layers.0.self_attn.q_proj.weight"
        guard let entry = header[name], entry["dtype"]?.stringValue == "BF16",
              let shape = entry["shape"]?.arrayValue?.compactMap(\.intValue), shape.count == 2,
              let begin = entry["data_offsets"]?.arrayValue?.first?.intValue
        else { return XCTFail("llama-tiny has no BF16 \(name)") }
        let cols = shape[1]
        func set(_ r: Int, _ c: Int, _ bits: UInt16) {
            let at = 8 + headerLength + begin + 2 * (r * cols + c)
            bytes[at] = UInt8(bits & 0xFF)
            bytes[at + 1] = UInt8(bits >> 8)
        }
        for c in 0..<10 { set(0, c, 0x8000) }       // -0.0 among ordinary values
        for c in 0..<cols { set(1, c, 0x0000) }     // an all-zero row
        for c in 0..<cols { set(2, c, 0x8000) }     // an all -0.0 row
        set(3, 5, 0x8000)
        try Data(bytes).write(to: URL(fileURLWithPath: input + "/model.safetensors"))

        for c in Self.quantizeCases + [Case(mode: "int8-tensor", format: .int8, granularity: .tensor)] {
            let out = tmp.appending(c.mode).path
            try Self.quantize(input, to: out, format: c.format, granularity: c.granularity)
            let r = try Self.reference(c.mode, input, out)
            XCTAssertEqual(r.quantized, 14, "\(c.mode)")
            XCTAssertEqual(r.mismatches, 0, "\(c.mode): \(r.mismatches) mismatches with the numpy reference:\n" + r.messages.joined(separator: "\n"))
            if c.mode != "fp8-block" {
                let deq = tmp.appending("\(c.mode)-dequant").path
                try Self.dequantize(out, to: deq, dtype: .bf16)
                let d = try Self.reference("dequant-bf16", out, deq)
                XCTAssertEqual(d.mismatches, 0, "\(c.mode) dequant-bf16: " + d.messages.joined(separator: "\n"))
            }
        }
    }

    // MARK: - Options and requantization against the reference

    private func assertMatches(_ mode: String, _ input: String, _ output: String, _ options: [String] = [], quantized: Int? = nil,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Self.reference(mode, input, output, options)
        let label = "\(mode) \(options.joined(separator: " ")) of \(input)"
        if let quantized { XCTAssertEqual(r.quantized, quantized, "\(label): number of quantized weights", file: file, line: line) }
        XCTAssertGreaterThan(r.tensors, 0, label, file: file, line: line)
        XCTAssertEqual(r.mismatches, 0, "\(label): \(r.mismatches) mismatches with the numpy reference:\n" + r.messages.joined(separator: "\n"), file: file, line: line)
    }

    /// `--ignore` (regex search on the module name): kept modules byte-identical, the rest
    /// quantized, and the config lists exactly the kept ones (DeepSeek `ignored_layers`;
    /// compressed-tensors `ignore`, read with `re.match` as that package does).
    func testIgnoreMatchesReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-ignore")
        let patterns = [#"self_attn\.o_proj$"#, #"experts\.3\."#, #"shared_experts\.gate_proj$"#]
        let options = patterns.flatMap { ["--ignore", $0] }
        let block = tmp.appending("ds-block").path
        try Self.quantize(Self.sample("deepseek-v3-tiny"), to: block, format: .fp8, granularity: nil, ignore: patterns)
        try assertMatches("fp8-block", Self.sample("deepseek-v3-tiny"), block, options, quantized: 120 - 11)
        let llamaPatterns = [#"self_attn\.o_proj$"#, #"layers\.1\.mlp"#]
        for c in Self.quantizeCases where c.mode != "fp8-block" {
            let out = tmp.appending("llama-\(c.mode)").path
            try Self.quantize(Self.sample("llama-tiny"), to: out, format: c.format, granularity: c.granularity, ignore: llamaPatterns)
            try assertMatches(c.mode, Self.sample("llama-tiny"), out, llamaPatterns.flatMap { ["--ignore", $0] }, quantized: 14 - 5)
        }
    }

    /// `--block-size`: a divisor of the sample's widths (64) and a non-divisor (96, so every
    /// tensor has partial edge blocks), and dequantization of the latter (block size from config).
    func testBlockSizeMatchesReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-block")
        let input = Self.sample("deepseek-v3-tiny")
        for size in [64, 96] {
            let out = tmp.appending("block-\(size)").path
            try Self.quantize(input, to: out, format: .fp8, granularity: nil, blockSize: size)
            try assertMatches("fp8-block", input, out, ["--block-size", String(size)], quantized: 120)
            if size == 96 {
                let deq = tmp.appending("block-96-bf16").path
                try Self.dequantize(out, to: deq, dtype: .bf16)
                try assertMatches("dequant-bf16", out, deq)
            }
        }
    }

    /// `--shard-size`: greedy re-chunking into `model-{i:05d}-of-{n:05d}` files of at most the
    /// limit (header included), a weight and its scale kept together, for quantize (block and
    /// compressed-tensors) and dequantize; one limit small enough that single tensors exceed it.
    func testShardSizeMatchesReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-shards")
        let ds = Self.sample("deepseek-v3-tiny")
        let block = tmp.appending("ds-block").path
        try Self.quantize(ds, to: block, format: .fp8, granularity: nil, shardSize: 1_000_000)
        try assertMatches("fp8-block", ds, block, ["--shard-size", "1000000"], quantized: 120)
        let qwen = Self.sample("qwen2-tiny")
        let int8 = tmp.appending("qwen-int8").path
        try Self.quantize(qwen, to: int8, format: .int8, granularity: nil, shardSize: 300_000)
        try assertMatches("int8-channel", qwen, int8, ["--shard-size", "300000"], quantized: 14)
        let deq = tmp.appending("ds-bf16").path
        try Self.dequantize(block, to: deq, dtype: .bf16, shardSize: 3_000_000)
        try assertMatches("dequant-bf16", block, deq, ["--shard-size", "3000000"])
    }

    /// Requantization: an already-quantized checkpoint as input (dequantized to the model dtype
    /// first): block FP8 to compressed-tensors FP8 / INT8 and to another block size, and
    /// compressed-tensors INT8 back to block FP8.
    func testRequantizeMatchesReference() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-requant")
        let ds = Self.sample("deepseek-v3-tiny")
        let block = tmp.appending("block").path
        try Self.quantize(ds, to: block, format: .fp8, granularity: nil)
        try assertMatches("fp8-block", ds, block, quantized: 120)
        let cases: [(String, QuantizationScheme.Format, QuantizationScheme.Granularity?, Int)] = [
            ("fp8-channel", .fp8, .channel, 128), ("int8-channel", .int8, nil, 128), ("fp8-block", .fp8, nil, 64),
        ]
        for (mode, format, granularity, size) in cases {
            let out = tmp.appending("re-\(mode)-\(size)").path
            try Self.quantize(block, to: out, format: format, granularity: granularity, blockSize: size)
            try assertMatches(mode, block, out, size == 128 ? [] : ["--block-size", String(size)], quantized: 120)
        }
        let llamaInt8 = tmp.appending("llama-int8").path
        try Self.quantize(Self.sample("llama-tiny"), to: llamaInt8, format: .int8, granularity: nil)
        let back = tmp.appending("llama-int8-block").path
        try Self.quantize(llamaInt8, to: back, format: .fp8, granularity: nil)
        try assertMatches("fp8-block", llamaInt8, back, quantized: 14)
    }

    /// Tensors larger than a chunk are computed band by band (bounded memory): with 8 KiB
    /// chunks every weight of the samples takes that path, in many bands. The bytes must still be
    /// the reference's: block FP8 (also with 96-row blocks), per-channel and per-tensor
    /// (two passes) FP8 and INT8, dequantization, and requantization from block FP8.
    func testBandStreamingMatchesReference() throws {
        let saved = ShardConverter.chunkBytes
        ShardConverter.chunkBytes = 8192
        defer { ShardConverter.chunkBytes = saved }
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-bands")
        let ds = Self.sample("deepseek-v3-tiny")
        for c in Self.quantizeCases + [Case(mode: "int8-tensor", format: .int8, granularity: .tensor)] {
            let out = tmp.appending(c.mode).path
            try Self.quantize(ds, to: out, format: c.format, granularity: c.granularity)
            try assertMatches(c.mode, ds, out, quantized: 120)
            let deq = tmp.appending(c.mode + "-bf16").path
            try Self.dequantize(out, to: deq, dtype: .bf16)
            try assertMatches("dequant-bf16", out, deq)
        }
        let b96 = tmp.appending("block-96").path
        try Self.quantize(ds, to: b96, format: .fp8, granularity: nil, blockSize: 96)
        try assertMatches("fp8-block", ds, b96, ["--block-size", "96"], quantized: 120)
        let f32 = tmp.appending("block-96-f32").path
        try Self.dequantize(b96, to: f32, dtype: .f32)
        try assertMatches("dequant-f32", b96, f32)
        for (mode, format, granularity) in [("fp8-tensor", QuantizationScheme.Format.fp8, QuantizationScheme.Granularity.tensor), ("int8-channel", .int8, nil)] {
            let out = tmp.appending("re-\(mode)").path
            try Self.quantize(tmp.appending("fp8-block").path, to: out, format: format, granularity: granularity)
            try assertMatches(mode, tmp.appending("fp8-block").path, out, quantized: 120)
        }
    }

    // MARK: - Helpers

    private static func sample(_ name: String) -> String {
        PythonReference.packageRoot.appendingPathComponent("Samples").appendingPathComponent(name).path
    }

    private static func quantize(_ input: String, to out: String, format: QuantizationScheme.Format, granularity: QuantizationScheme.Granularity?,
                                 blockSize: Int = 128, ignore: [String] = [], shardSize: Int? = nil) throws {
        let scheme = try QuantizationScheme(format: format, granularity: granularity, blockSize: blockSize)
        let ckpt = try Checkpoint(path: input)
        let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: ignore, shardSize: shardSize)
        let report = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
        XCTAssertTrue(report.finalized, "\(out) was not finalized")
    }

    private static func dequantize(_ input: String, to out: String, dtype: DType, shardSize: Int? = nil) throws {
        let ckpt = try Checkpoint(path: input)
        let plan = try PlanBuilder.dequantize(ckpt, to: dtype, shardSize: shardSize)
        let report = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
        XCTAssertTrue(report.finalized, "\(out) was not finalized")
    }

    private struct ReferenceResult {
        var mismatches: Int
        var messages: [String]
        var quantized: Int
        var dequantized: Int
        var tensors: Int
    }

    /// Runs quant_reference.py; throws (the test fails, never skips) when Python or a package is missing.
    private static func reference(_ mode: String, _ input: String, _ output: String, _ options: [String] = []) throws -> ReferenceResult {
        let text = try PythonReference.run(script, [mode, input, output] + options)
        let json: JSONValue
        do {
            json = try JSONParser.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw PythonReference.Failure("\(script) printed invalid JSON (\(error)): \(text.prefix(2000))")
        }
        guard let count = json["mismatch_count"]?.intValue else {
            throw PythonReference.Failure("\(script) printed no mismatch_count: \(text.prefix(2000))")
        }
        return ReferenceResult(
            mismatches: count,
            messages: json["mismatches"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            quantized: json["quantized"]?.intValue ?? -1,
            dequantized: json["dequantized"]?.intValue ?? -1,
            tensors: json["tensors"]?.intValue ?? -1)
    }

    private func checkSample(_ name: String, quantizedWeights: Int) throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "quantref-\(name)")
        let input = Self.sample(name)
        var blockOutput: String?
        for c in Self.quantizeCases {
            let out = tmp.appending(c.mode).path
            try Self.quantize(input, to: out, format: c.format, granularity: c.granularity)
            let r = try Self.reference(c.mode, input, out)
            XCTAssertEqual(r.quantized, quantizedWeights, "\(name) \(c.mode): the reference expected a different number of quantized weights")
            XCTAssertEqual(r.mismatches, 0, "\(name) \(c.mode): \(r.mismatches) mismatches with the numpy reference:\n" + r.messages.joined(separator: "\n"))
            if c.mode == "fp8-block" { blockOutput = out }
        }
        guard let block = blockOutput else { return XCTFail("no block output") }
        for (label, dtype) in [("bf16", DType.bf16), ("f32", DType.f32)] {
            let out = tmp.appending("dequant-\(label)").path
            try Self.dequantize(block, to: out, dtype: dtype)
            let r = try Self.reference("dequant-\(label)", block, out)
            XCTAssertEqual(r.dequantized, quantizedWeights, "\(name) dequant-\(label): the reference expected a different number of dequantized weights")
            XCTAssertEqual(r.mismatches, 0, "\(name) dequant-\(label): \(r.mismatches) mismatches with the numpy reference:\n" + r.messages.joined(separator: "\n"))
        }
    }
}
