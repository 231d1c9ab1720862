import Diagnostics
import Checkpoint
import Conversion
import Engine
import Foundation
import Quantization
import SafeTensors
import TestSupport
import XCTest

/// The engine on static W8A8 checkpoints (`quantize --act static --ranges`, issue 16 item 7): each
/// linear input is quantized with its `input_scale` as a serving engine does, and the logits match
/// transformers fp32 on the exactly dequantized weights with the same fake quantization as forward
/// pre-hooks (Tests/Fixtures/static_golden_logits.safetensors, from Tests/Reference/quantized_goldens.py
/// with the ranges in Tests/Fixtures/static_ranges/, which that script also wrote; for deepseek_v3 the
/// script replaces transformers' fused experts module with a per-expert loop that quantizes each
/// routed expert's gate/up and down inputs with that expert's scales). The same
/// weights without the activation quantization give logits far from these: it is exercised.
final class StaticActivationGoldenTests: XCTestCase {
    static var fixture: String { PythonReference.packageRoot.appendingPathComponent("Tests/Fixtures/static_golden_logits.safetensors").path }
    static var ranges: String { PythonReference.packageRoot.appendingPathComponent("Tests/Fixtures/static_ranges").path }

    func testQwen2StaticFP8() throws { try check("qwen2-fp8-static", "qwen2-tiny", .fp8, .tensor) }
    func testQwen2StaticINT8() throws { try check("qwen2-int8-static", "qwen2-tiny", .int8, nil) }
    func testLlamaStaticFP8() throws { try check("llama-fp8-static", "llama-tiny", .fp8, .tensor) }
    func testLlamaStaticINT8() throws { try check("llama-int8-static", "llama-tiny", .int8, nil) }
    // MLA, the shared expert and every routed expert on its routed tokens with that expert's own
    // input scales (the reference runs transformers' fused experts as a per-expert loop).
    func testDeepSeekStaticFP8() throws { try check("ds-fp8-static", "deepseek-v3-tiny", .fp8, .tensor) }
    func testDeepSeekStaticINT8() throws { try check("ds-int8-static", "deepseek-v3-tiny", .int8, nil) }

    private func check(_ name: String, _ sample: String, _ format: QuantizationScheme.Format, _ granularity: QuantizationScheme.Granularity?) throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "static-\(name)")
        let out = tmp.appending(name).path
        let ckpt = try Checkpoint(path: EngineFixtures.samples + "/" + sample)
        let file = Self.ranges + "/\(sample)-\(format.rawValue).json"
        let text = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
        var amax: [String: Double] = [:]
        for case let i as [String: Any] in text["inputs"] as! [Any] {
            for case let c as String in i["consumers"] as! [Any] { amax[c] = i["amax"] as? Double }
        }
        let scheme = try QuantizationScheme(format: format, granularity: granularity, staticActivations: true)
        let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: [], layout: OutputLayout(shardSize: nil), ranges: InputRanges(file: file, amax: amax))
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()

        let golden = try SafeTensorsCheckpoint(path: Self.fixture)
        let (ids, shape) = try EngineFixtures.ids(golden, name + "/input_ids")
        let want = try EngineFixtures.floats(golden, name + "/logits")
        let engine = try Model(checkpoint: Checkpoint(path: out))
        let got = try engine.forward(ids, cache: KVCache(config: engine.config, batch: shape[0], capacity: shape[1]), pool: WorkerPool(threads: 2))
        let err = EngineFixtures.maxAbsDifference(got, want)
        print("static golden \(name): max abs error \(err)")
        XCTAssertLessThanOrEqual(err, 1e-4, name)

        // transformers on the same weights without the activation quantization is far away: the
        // input scales really act.
        let weightsOnly = try EngineFixtures.floats(golden, name + "/logits_weights_only")
        XCTAssertGreaterThan(EngineFixtures.maxAbsDifference(got, weightsOnly), 100 * max(err, 1e-6), "\(name): the activation quantization changes the logits")
    }

    /// A damaged input scale (negative, zero, NaN) is refused when the model opens, naming it.
    func testDamagedInputScaleIsNamed() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "static-bad")
        let out = tmp.appending("q").path
        let ckpt = try Checkpoint(path: EngineFixtures.samples + "/qwen2-tiny")
        let scheme = try QuantizationScheme(format: .int8, staticActivations: true)
        var amax: [String: Double] = [:]
        for (n, role) in ckpt.roles where role.quantizedByDefault && n.hasSuffix(".weight") { amax[role.module] = 2 }
        let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: [], layout: OutputLayout(shardSize: nil), ranges: InputRanges(file: "test", amax: amax))
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
        let name = "model.layers.1.mlp.down_proj.input_scale"
        let st = try SafeTensorsCheckpoint(path: out)
        let path = st.files[try XCTUnwrap(st.fileIndex(of: name))].path
        let offset = try XCTUnwrap(st.fileOffset(of: name))
        for (bits, what) in [(UInt16(0xBF80), "-1.0"), (0x0000, "0.0"), (0x7FC0, "nan")] {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try h.seek(toOffset: UInt64(offset))
            try h.write(contentsOf: withUnsafeBytes(of: bits.littleEndian) { Data($0) })
            try h.close()
            XCTAssertThrowsError(try Model(checkpoint: Checkpoint(path: out)), what) { e in
                let d = e as? any DiagnosticError
                XCTAssertEqual(d?.tensor, name, "\(what): \(e)")
                XCTAssertTrue(d?.message.contains("positive and finite") ?? false, "\(what): \(e)")
            }
        }
    }
}
