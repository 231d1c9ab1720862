import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

final class BadInputTests: XCTestCase {
    func testOutputDirectoryEqualToInputIsRefused() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.llama, to: input)
        let before = try CV.files(input)
        for out in [input, input + "/", input + "/.", tmp.path + "/../" + (tmp.path as NSString).lastPathComponent + "/in"] {
            XCTAssertThrowsError(try CV.quantize(input, out), out) { error in
                guard case ConversionError.outputIsInput = error else { return XCTFail("\(out): \(error)") }
            }
        }
        XCTAssertEqual(try CV.files(input), before, "nothing written into the input")
        // A symlink to the input is the input too.
        try FileManager.default.createSymbolicLink(atPath: tmp.sub("link"), withDestinationPath: input)
        XCTAssertThrowsError(try CV.quantize(input, tmp.sub("link"))) { error in
            guard case ConversionError.outputIsInput = error else { return XCTFail("symlink to the input: \(error)") }
        }
        XCTAssertEqual(try CV.files(input), before)
    }

    /// Writes `source` (a single-file model directory) to `dir` with `value` at (row, col) of `tensor`.
    func poison(_ source: String, _ dir: String, shard: String, tensor: String, row: Int, col: Int, value: UInt16) throws {
        try CV.copyDirectory(source, to: dir)
        let f = try SafeTensorsFile(path: source + "/" + shard)
        var items: [(TensorSpec, [UInt8])] = []
        for t in f.tensors {
            var b = Array(f.view(t).bytes)
            if t.name == tensor {
                XCTAssertEqual(t.dtype, .bf16)
                let i = row * t.shape[1] + col
                b[2 * i] = UInt8(value & 0xFF)
                b[2 * i + 1] = UInt8(value >> 8)
            }
            items.append((TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape), b))
        }
        try FileManager.default.removeItem(atPath: dir + "/" + shard)
        try CV.writeSafetensors(dir + "/" + shard, items)
    }

    /// A NaN (or infinity) makes quantize fail with an error naming the tensor, and no partial shard
    /// is left: the block path reports the block's first row and column, the channel path the row.
    func testNonFiniteWeightIsNamedAndLeavesNoPartialShard() throws {
        let tmp = try CVTempDir()
        let tensor = "model.layers.1.mlp.up_proj.weight"  // [352, 128]
        for (label, value) in [("nan", UInt16(0x7FC0)), ("inf", UInt16(0xFF80))] {
            let input = tmp.sub("in-\(label)")
            try poison(CV.llama, input, shard: "model.safetensors", tensor: tensor, row: 200, col: 100, value: value)
            let schemes = label == "nan" ? [(CV.scheme(), 128), (CV.scheme(.fp8, .channel), 200), (CV.scheme(.int8, .tensor), 200)] : [(CV.scheme(), 128)]
            for (scheme, row) in schemes {
                let out = tmp.sub("out-\(label)-\(scheme.granularity)-\(scheme.format)")
                XCTAssertThrowsError(try CV.quantize(input, out, scheme)) { error in
                    guard case let QuantizationError.nonFinite(name, r, _) = error else { return XCTFail("\(error)") }
                    XCTAssertEqual(name, tensor)
                    XCTAssertEqual(r, row)
                    XCTAssertTrue("\(error)".contains("'\(tensor)'"), "\(error)")
                }
                XCTAssertFalse(CV.exists(out + "/model.safetensors"), "no partial output")
                XCTAssertFalse(CV.exists(out + "/config.json"))
                XCTAssertEqual(CV.temporaries(out), [])
            }
        }
    }

    /// In a sharded model the shards before the bad tensor are complete and recorded; the shard
    /// holding it is absent; the others are not started.
    func testNonFiniteInShardedModel() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        let shard = CV.deepseekShards[3]
        let tensor = try XCTUnwrap(try SafeTensorsHeader.read(path: CV.deepseek + "/" + shard).tensors.first { $0.name.hasSuffix("experts.9.up_proj.weight") }?.name)
        try poison(CV.deepseek, input, shard: shard, tensor: tensor, row: 3, col: 3, value: 0xFFC0)
        let out = tmp.sub("out")
        XCTAssertThrowsError(try CV.quantize(input, out)) { error in
            guard case let QuantizationError.nonFinite(name, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, tensor)
        }
        let present = CV.deepseekShards.filter { CV.exists(out + "/" + $0) }
        XCTAssertEqual(present, Array(CV.deepseekShards[0..<3]))
        for s in present { XCTAssertNotNil(ResumeRecord.read(out + "/.dsconvert/" + s + ".json"), s) }
        XCTAssertEqual(CV.temporaries(out), [])
    }

    /// An unknown model_type is a clear error before anything is written.
    func testUnknownModelType() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.llama, to: input)
        let config = try CV.json(input + "/config.json")
        try CV.writeJSON(config.setting("model_type", .string("mistral")).setting("architectures", .array([.string("MistralForCausalLM")])),
                         to: input + "/config.json")
        XCTAssertThrowsError(try CV.quantize(input, tmp.sub("out"))) { error in
            guard case let CheckpointError.unknownArchitecture(_, modelType, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(modelType, "mistral")
            let text = "\(error)"
            XCTAssertTrue(text.contains("'mistral'") && text.contains("deepseek_v3, qwen2 and llama") && text.contains("config.json"), text)
        }
        XCTAssertFalse(CV.exists(tmp.sub("out")))
    }

    /// A scale tensor beside an unquantized weight (a half-converted checkpoint) is named clearly.
    func testOrphanScale() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.llama, to: input)
        try CV.writeSafetensors(input + "/extra.safetensors", [(TensorSpec(name: "model.layers.0.mlp.up_proj.weight_scale", dtype: .bf16, shape: [352, 1]), [UInt8](repeating: 0x3F, count: 704))])
        XCTAssertThrowsError(try CV.quantize(input, tmp.sub("out"))) { error in
            guard case let QuantizationError.invalidQuantizedInput(tensor, message, at) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(tensor, "model.layers.0.mlp.up_proj.weight_scale")
            XCTAssertTrue(message.contains("'model.layers.0.mlp.up_proj.weight', which is BF16"), message)
            XCTAssertEqual(at?.file, input + "/extra.safetensors")
        }
    }
}
