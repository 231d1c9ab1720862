import Foundation
import TestSupport
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

/// Helpers to make edited copies of the single-file samples and to compare with quant_reference.py.
enum Edit {
    typealias Tensors = [(TensorSpec, [UInt8])]

    /// Copies the single-file model `source` to `dest` with its tensors passed through `change`.
    static func copy(_ source: String, to dest: String, _ change: (inout Tensors) throws -> Void) throws {
        try CV.copyDirectory(source, to: dest)
        let f = try SafeTensorsFile(path: source + "/model.safetensors")
        var items: Tensors = f.tensors.map { (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), Array(f.view($0).bytes)) }
        try change(&items)
        try FileManager.default.removeItem(atPath: dest + "/model.safetensors")
        try CV.writeSafetensors(dest + "/model.safetensors", items)
    }

    static func index(_ items: Tensors, _ name: String) -> Int { items.firstIndex { $0.0.name == name }! }

    static func setConfig(_ dir: String, _ key: String, _ value: JSONValue?) throws {
        let c = try CV.json(dir + "/config.json")
        try CV.writeJSON(value.map { c.setting(key, $0) } ?? c.removing(key), to: dir + "/config.json")
    }

    /// BF16 bits of `values` (round to nearest even).
    static func bf16(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in let b = FloatBits.f32ToBF16(v); return [UInt8(b & 0xFF), UInt8(b >> 8)] }
    }

    static func f32(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
    }

    static func floats(_ bytes: [UInt8], _ dtype: DType) -> [Float] {
        let n = bytes.count / dtype.byteSize!
        return bytes.withUnsafeBytes { p in (0..<n).map { FloatFormat.load(p.baseAddress!, dtype.floatFormat!, $0) } }
    }

    /// Runs quant_reference.py MODE and returns (mismatch count, messages, JSON).
    static func reference(_ mode: String, _ input: String, _ output: String, _ options: [String] = []) throws -> (Int, [String], JSONValue) {
        let text = try PythonReference.run("quant_reference.py", [mode, input, output] + options)
        let json = try JSONParser.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
        guard let n = json["mismatch_count"]?.intValue else { throw PythonReference.Failure("no mismatch_count: \(text.prefix(1000))") }
        return (n, json["mismatches"]?.arrayValue?.compactMap(\.stringValue) ?? [], json)
    }

    static func assertReference(_ mode: String, _ input: String, _ output: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (n, messages, _) = try reference(mode, input, output)
        XCTAssertEqual(n, 0, "\(mode) \(input): \(n) mismatches with quant_reference.py:\n" + messages.joined(separator: "\n"), file: file, line: line)
    }
}

/// One classification of every tensor for inspect, quantize and dequantize (issue 12 items 20–23).
final class TensorClassificationTests: XCTestCase {
    let q = "model.layers.0.self_attn.q_proj"

    /// A llama-tiny copy quantized to block FP8 (the usual quantized input of these tests).
    func blockFP8Llama(_ tmp: CVTempDir) throws -> String {
        let out = tmp.sub("llama-fp8")
        try CV.quantize(CV.llama, out)
        return out
    }

    func assertRefusedEverywhere(_ input: String, tensor: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let tmp = try CVTempDir()
        for (label, run) in [("quantize", { try CV.quantize(input, tmp.sub("q")) }), ("dequantize", { try CV.dequantize(input, tmp.sub("d")) })] as [(String, () throws -> ConversionReport)] {
            XCTAssertThrowsError(try run(), label, file: file, line: line) { error in
                guard let e = error as? QuantizationError, case .invalidQuantizedInput = e else {
                    return XCTFail("\(label): \(error)", file: file, line: line)
                }
                XCTAssertEqual(e.tensor, tensor, "\(label)", file: file, line: line)
                XCTAssertEqual(e.code, "quantization.invalid_quantized_input", file: file, line: line)
                XCTAssertEqual(e.file.map { ($0 as NSString).lastPathComponent }, "model.safetensors", "\(label): \(e)", file: file, line: line)
                XCTAssertNotNil(e.offset, "\(label): \(e)", file: file, line: line)
                for m in mentions { XCTAssertTrue(e.message.contains(m), "\(label): '\(m)' not in: \(e.message)", file: file, line: line) }
            }
        }
        for out in [tmp.sub("q"), tmp.sub("d")] where CV.exists(out) {
            XCTAssertEqual(try CV.files(out).filter { $0.hasSuffix(".safetensors") }, [], "nothing written", file: file, line: line)
        }
        let state = QuantizationState.of(try Checkpoint(path: input))
        XCTAssertNotNil(state.problem, "inspect reports the refusal", file: file, line: line)
        XCTAssertTrue(state.problem?.contains(tensor) == true, "\(state.problem ?? "")", file: file, line: line)
    }

    /// Item 20: both `weight_scale_inv` and `weight_scale`: one message, from every command.
    func testBothScaleKindsRefusedWithOneMessage() throws {
        let tmp = try CVTempDir()
        let src = try blockFP8Llama(tmp)
        let input = tmp.sub("both")
        try Edit.copy(src, to: input) { t in
            let i = Edit.index(t, q + ".weight_scale_inv")
            t.insert((TensorSpec(name: q + ".weight_scale", dtype: .bf16, shape: [1]), Edit.bf16([0.01])), at: i + 1)
        }
        try assertRefusedEverywhere(input, tensor: q + ".weight", mentions: [q + ".weight_scale_inv", q + ".weight_scale'", "ambiguous"])
    }

    /// Item 22: orphan scales — a norm with a scale, a scale whose weight is missing, a zero point of
    /// a plain weight — are refused by dequantize exactly as by quantize.
    func testOrphanScalesRefusedByBothCommands() throws {
        let tmp = try CVTempDir()
        let src = try blockFP8Llama(tmp)
        let norm = tmp.sub("norm-scale")
        try Edit.copy(src, to: norm) { t in
            t.append((TensorSpec(name: "model.norm.weight_scale", dtype: .bf16, shape: [1]), Edit.bf16([0.5])))
        }
        try assertRefusedEverywhere(norm, tensor: "model.norm.weight_scale", mentions: ["'model.norm.weight'", "BF16"])

        let missing = tmp.sub("no-weight")
        try Edit.copy(src, to: missing) { t in t.remove(at: Edit.index(t, q + ".weight")) }
        try assertRefusedEverywhere(missing, tensor: q + ".weight_scale_inv", mentions: ["'\(q).weight'", "not in the checkpoint"])

        // A half-converted plain checkpoint: a BF16 weight with a compressed-tensors scale.
        let half = tmp.sub("half")
        try Edit.copy(CV.llama, to: half) { t in
            t.append((TensorSpec(name: "model.layers.0.mlp.up_proj.weight_scale", dtype: .bf16, shape: [352, 1]), Edit.bf16([Float](repeating: 1, count: 352))))
        }
        try assertRefusedEverywhere(half, tensor: "model.layers.0.mlp.up_proj.weight_scale", mentions: ["'model.layers.0.mlp.up_proj.weight'", "BF16"])
    }

    /// Item 21: an FP8 lm_head (block scale) is one quantized weight for inspect, dequantize and
    /// quantize alike: inspect counts it, dequantize turns it into BF16, quantize keeps it in high
    /// precision (lm_head is never quantized), dequantizing it to the model dtype — all checked
    /// against quant_reference.py.
    func testFP8LMHeadIsQuantizedForEveryCommand() throws {
        let tmp = try CVTempDir()
        let src = try blockFP8Llama(tmp)
        let input = tmp.sub("fp8-head")
        let plain = try CV.tensors(CV.llama)["lm_head.weight"]!
        let rows = plain.info.shape[0], cols = plain.info.shape[1]
        let (codes, scales) = referenceBlockFP8(plain.floats, rows: rows, cols: cols)
        try Edit.copy(src, to: input) { t in
            let i = Edit.index(t, "lm_head.weight")
            t[i] = (TensorSpec(name: "lm_head.weight", dtype: .f8e4m3, shape: [rows, cols]), codes)
            t.insert((TensorSpec(name: "lm_head.weight_scale_inv", dtype: .f32, shape: BlockFP8.scaleShape(rows: rows, cols: cols, blockRows: 128, blockCols: 128)), Edit.f32(scales)), at: i + 1)
        }
        let ckpt = try Checkpoint(path: input)
        XCTAssertTrue(ckpt.unknownTensors.isEmpty, "\(ckpt.unknownTensors)")
        let state = QuantizationState.of(ckpt)
        XCTAssertNil(state.problem)
        XCTAssertEqual(state.quantizedWeights, 15, "14 projections + lm_head")

        let deq = tmp.sub("deq")
        try CV.dequantize(input, deq)
        XCTAssertEqual(try CV.tensors(deq)["lm_head.weight"]?.info.dtype, .bf16)
        try Edit.assertReference("dequant-bf16", input, deq)

        let requant = tmp.sub("requant")
        let report = try CV.quantize(input, requant, CV.scheme(.fp8, .channel))
        XCTAssertTrue(report.finalized)
        let out = try CV.tensors(requant)
        XCTAssertEqual(out["lm_head.weight"]?.info.dtype, .bf16, "lm_head stays high precision")
        XCTAssertNil(out["lm_head.weight_scale_inv"])
        try Edit.assertReference("fp8-channel", input, requant)
    }

    /// Item 23: `rotary_emb.inv_freq` buffers (model-level and per-layer, as older Llama exports
    /// store them) are kept byte for byte by quantize and dequantize, never a failure.
    func testRotaryInvFreqBuffersAreKept() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("inv-freq")
        let invFreq = (0..<32).map { Float(pow(500000.0, -Double(2 * $0) / 64.0)) }
        let names = ["model.rotary_emb.inv_freq", "model.layers.0.self_attn.rotary_emb.inv_freq", "model.layers.1.self_attn.rotary_emb.inv_freq"]
        try Edit.copy(CV.llama, to: input) { t in
            for n in names { t.append((TensorSpec(name: n, dtype: .f32, shape: [32]), Edit.f32(invFreq))) }
        }
        let ckpt = try Checkpoint(path: input)
        XCTAssertEqual(ckpt.unknownTensors, [])
        for n in names { XCTAssertEqual(ckpt.roles[n]?.kind, .buffer, n) }
        XCTAssertEqual(CheckpointSummary(ckpt).parameterCount, CheckpointSummary(try Checkpoint(path: CV.llama)).parameterCount, "buffers are not parameters")
        for (mode, scheme) in [("fp8-block", CV.scheme()), ("int8-channel", CV.scheme(.int8))] {
            let out = tmp.sub(mode)
            try CV.quantize(input, out, scheme)
            let t = try CV.tensors(out)
            for n in names { XCTAssertEqual(t[n]?.bytes, Edit.f32(invFreq), "\(mode) \(n)") }
            try Edit.assertReference(mode, input, out)
            let deq = tmp.sub(mode + "-bf16")
            try CV.dequantize(out, deq)
            for n in names { XCTAssertEqual(try CV.tensors(deq)[n]?.bytes, Edit.f32(invFreq), "dequantize \(n)") }
        }
    }

    /// The layout itself: quantization tensors of any module get that role (so `lm_head` and norm
    /// scales reach the classifier instead of "do not fit the layout"), inv_freq is a buffer.
    func testLayoutRoles() {
        let l = ModelLayout(architecture: .llama)
        XCTAssertEqual(l.role(of: "lm_head.weight_scale_inv")?.kind, .quantizationParameter)
        XCTAssertEqual(l.role(of: "model.norm.weight_scale")?.kind, .quantizationParameter)
        XCTAssertEqual(l.role(of: "model.embed_tokens.weight_scale")?.kind, .quantizationParameter)
        XCTAssertEqual(l.role(of: "model.rotary_emb.inv_freq")?.kind, .buffer)
        XCTAssertEqual(l.role(of: "model.layers.3.self_attn.rotary_emb.inv_freq")?.kind, .buffer)
        XCTAssertNil(l.role(of: "model.rotary_emb.weight"))
        XCTAssertNil(l.role(of: "model.layers.3.self_attn.rotary_emb.cos_cached"))
    }
}
