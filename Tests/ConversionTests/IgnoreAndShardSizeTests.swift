import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

final class IgnoreAndShardSizeTests: XCTestCase {
    /// `--ignore` is a regex search against the module name (the tensor name without `.weight`).
    static let patterns = [
        #"self_attn\.o_proj$"#,          // `$` only matches because the module name has no `.weight`
        #"experts\.3\."#,                 // unanchored search, and not experts.13
        #"shared_experts\.gate_proj$"#,
    ]

    static func expectIgnored(_ name: String) -> Bool {
        name.hasSuffix("self_attn.o_proj.weight") || name.contains("experts.3.") || name.hasSuffix("shared_experts.gate_proj.weight")
    }

    /// The search semantics on the deepseek sample (block layout): ignored modules stay exactly as
    /// they were, everything else is quantized, and the config is DeepSeek's quantization_config
    /// plus `ignored_layers` naming exactly the kept modules (the key vLLM's and SGLang's Fp8Config
    /// read; without --ignore it is absent, see QuantizeOutputTests).
    func testIgnoreSearchesTheModuleName() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try CV.quantize(CV.deepseek, out, ignore: Self.patterns)
        let input = try CV.tensors(CV.deepseek)
        let output = try CV.tensors(out)
        let ckpt = try Checkpoint(path: CV.deepseek)
        var ignored = 0
        for (name, t) in input where ckpt.roles[name]!.quantizedByDefault {
            let o = try XCTUnwrap(output[name])
            let module = String(name.dropLast(".weight".count))
            if Self.expectIgnored(name) {
                ignored += 1
                XCTAssertEqual(o.dtype, .bf16, name)
                XCTAssertTrue(o.bytes == t.bytes, "\(name) must be kept as it is")
                XCTAssertNil(output[module + ".weight_scale_inv"], name)
            } else {
                XCTAssertEqual(o.dtype, .f8e4m3, name)
                XCTAssertNotNil(output[module + ".weight_scale_inv"], name)
            }
        }
        // 3 o_proj, experts.3 of layers 1 and 2 (3 each), 2 shared gate_proj.
        XCTAssertEqual(ignored, 3 + 6 + 2)
        XCTAssertEqual(output.count, 139 + 120 - ignored)
        let qc = try CV.json(out + "/config.json")["quantization_config"]!
        let kept = input.keys.filter { ckpt.roles[$0]!.quantizedByDefault && Self.expectIgnored($0) }
            .map { String($0.dropLast(".weight".count)) }.sorted()
        XCTAssertEqual(kept.count, ignored)
        let expected = JSONValue.object([
            ("quant_method", .string("fp8")), ("fmt", .string("e4m3")), ("activation_scheme", .string("dynamic")),
            ("weight_block_size", .array([.int(128), .int(128)])), ("ignored_layers", .array(kept.map { .string($0) })),
        ])
        XCTAssertEqual(CV.canonical(qc), CV.canonical(expected))
        // An invalid pattern is refused up front.
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, tmp.sub("bad"), ignore: ["(unclosed"])) { error in
            XCTAssertEqual((error as? PatternError)?.code, "usage.invalid_pattern", "\(error)")
        }
        XCTAssertFalse(CV.exists(tmp.sub("bad")))
    }

    /// In the compressed-tensors layout the ignored modules are listed in `ignore` as `re:` entries;
    /// each entry, matched from the start as compressed-tensors does (`re.match`), selects exactly
    /// the modules that were kept, besides the defaults (lm_head, the router).
    func testIgnoreCompressedTensors() throws {
        // The plan's config for the deepseek sample (no need to run the conversion).
        let ds = try Checkpoint(path: CV.deepseek)
        let plan = try PlanBuilder.quantize(ds, scheme: CV.scheme(.fp8, .channel), ignore: Self.patterns, shardSize: nil)
        let ignore = try XCTUnwrap(plan.config?["quantization_config"]?["ignore"]?.arrayValue?.compactMap(\.stringValue))
        XCTAssertEqual(ignore, ["lm_head", #"re:.*mlp\.gate$"#] + Self.patterns.map { "re:.*(?:\($0))" })
        XCTAssertEqual(plan.counts["quantized"], 120 - 11)
        let regexes = try ignore.filter { $0.hasPrefix("re:") }.map { try NSRegularExpression(pattern: String($0.dropFirst(3))) }
        func listed(_ module: String) -> Bool {
            if module == "lm_head" { return ignore.contains("lm_head") }
            return regexes.contains { $0.firstMatch(in: module, options: [.anchored], range: NSRange(location: 0, length: (module as NSString).length)) != nil }
        }
        for name in ds.weights.tensorNames where name.hasSuffix(".weight") {
            let role = ds.roles[name]!
            let module = role.module
            if role.quantizedByDefault { XCTAssertEqual(listed(module), Self.expectIgnored(name), module) }
            if role.kind == .router || role.kind == .lmHead { XCTAssertTrue(listed(module), module) }
        }

        // A run on llama-tiny: kept modules byte-identical, listed; the rest quantized per channel.
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        let patterns = [#"self_attn\.o_proj$"#, #"layers\.1\.mlp"#]
        try CV.quantize(CV.llama, out, CV.scheme(.int8), ignore: patterns)
        let input = try CV.tensors(CV.llama), output = try CV.tensors(out)
        var kept = 0
        for (name, t) in input where name.hasSuffix("proj.weight") {
            let keep = name.hasSuffix("o_proj.weight") || name.hasPrefix("model.layers.1.mlp.")
            XCTAssertEqual(output[name]!.dtype, keep ? .bf16 : .i8, name)
            if keep { kept += 1; XCTAssertTrue(output[name]!.bytes == t.bytes, name) }
            XCTAssertEqual(output[String(name.dropLast(".weight".count)) + ".weight_scale"] != nil, !keep, name)
        }
        XCTAssertEqual(kept, 2 + 3)
        let listedLlama = try CV.json(out + "/config.json")["quantization_config"]?["ignore"]?.arrayValue?.compactMap(\.stringValue)
        XCTAssertEqual(listedLlama, ["lm_head"] + patterns.map { "re:.*(?:\($0))" })
    }

    /// `--shard-size`: files named model-{i:05d}-of-{n:05d}, each at most the limit unless a single
    /// tensor is larger, the index right, and the same tensor bytes as the mirrored layout.
    func testShardSizeRechunking() throws {
        let tmp = try CVTempDir()
        let limit = 1_000_000
        let out = tmp.sub("chunked"), mirrored = tmp.sub("mirrored")
        try CV.quantize(CV.deepseek, out, shardSize: limit)
        try CV.quantize(CV.deepseek, mirrored)
        let shardFiles = try CV.files(out).filter { $0.hasSuffix(".safetensors") }
        let n = shardFiles.count
        XCTAssertGreaterThan(n, 5)
        XCTAssertEqual(shardFiles, (1...n).map { String(format: "model-%05d-of-%05d.safetensors", $0, n) })
        var sizes: [Int] = []
        for f in shardFiles {
            let size = try CV.bytes(out + "/" + f).count
            let h = try SafeTensorsHeader.read(path: out + "/" + f)
            // Only lm_head and the embedding (2 MB each) are larger than the limit on their own.
            if h.tensors.count > 1 { XCTAssertLessThanOrEqual(size, limit, "\(f) has \(h.tensors.count) tensors") }
            else if size > limit { XCTAssertEqual(h.tensors[0].byteCount, 4096 * 256 * 2, f) }
            sizes.append(size)
            XCTAssertEqual(h.metadata?.first?.1, "pt")
        }
        // Greedy: no file could have taken the next file's first tensor.
        // (The next file's first weight, with its scale when it has one, plus at least 40 bytes
        // of header per tensor, minus the padding slack, did not fit.)
        for i in 0..<(n - 1) {
            let next = try SafeTensorsHeader.read(path: out + "/" + shardFiles[i + 1]).tensors
            let moved = next[0].name.hasSuffix(".weight") && next.count > 1 && next[1].name == next[0].name + "_scale_inv" ? Array(next[0...1]) : [next[0]]
            let need = moved.reduce(0) { $0 + $1.byteCount + $1.name.utf8.count + 40 } - 8
            XCTAssertGreaterThan(sizes[i] + need, limit, "\(shardFiles[i]) stopped early")
        }
        // The index describes the files; the tensors are those of the mirrored output.
        let chunked = try CV.tensors(out)
        let mirror = try CV.tensors(mirrored)
        XCTAssertEqual(Set(chunked.keys), Set(mirror.keys))
        for (name, t) in chunked {
            XCTAssertEqual(t.info.dtype, mirror[name]!.info.dtype)
            XCTAssertTrue(t.bytes == mirror[name]!.bytes, name)
        }
        let index = try SafeTensorsIndex.read(path: out + "/model.safetensors.index.json")
        XCTAssertEqual(index.weightMap.count, chunked.count)
        for (name, file) in index.weightMap { XCTAssertEqual(chunked[name]?.file, file) }
        XCTAssertEqual(try CV.json(out + "/model.safetensors.index.json")["metadata"]?["total_size"]?.intValue,
                       chunked.values.reduce(0) { $0 + $1.bytes.count })
        // A scale travels with its weight.
        for name in chunked.keys where name.hasSuffix("_scale_inv") {
            XCTAssertEqual(chunked[name]!.file, chunked[String(name.dropLast("_scale_inv".count))]!.file)
        }
    }

    /// The limit holds for the whole file, header included, at every limit (plans only, sizes from
    /// the writer's own header): a file exceeds it only when it holds a single weight (and its
    /// scale) that does not fit alone, and no file could have taken the next one's first weight.
    func testShardSizeLimitIsExactForManyLimits() throws {
        let ckpt = try Checkpoint(path: CV.deepseek)
        var rng = SplitMix64(seed: 9)
        var limits = [1, 1000, 40_000, 131_072, 2_097_152, 2_100_000, 20_000_000]
        limits += (0..<150).map { _ in 150_000 + Int(rng.next() % 3_000_000) }
        for limit in limits {
            let plan = try PlanBuilder.quantize(ckpt, scheme: CV.scheme(), ignore: [], shardSize: limit)
            XCTAssertTrue(plan.writesIndex)
            XCTAssertEqual(plan.shards.map(\.name), (1...plan.shards.count).map { String(format: "model-%05d-of-%05d.safetensors", $0, plan.shards.count) })
            XCTAssertEqual(plan.shards.reduce(0) { $0 + $1.tensors.count }, 139)
            func size(_ t: [TensorPlan]) throws -> Int {
                let specs = t.flatMap(\.outputs)
                return try SafeTensorsWriter.header(for: specs, metadata: [("format", "pt")]).count + specs.reduce(0) { $0 + $1.byteCount }
            }
            for (i, shard) in plan.shards.enumerated() {
                let s = try size(shard.tensors)
                if shard.tensors.count > 1 { XCTAssertLessThanOrEqual(s, limit, "limit \(limit): \(shard.name)") }
                if i + 1 < plan.shards.count {
                    XCTAssertGreaterThan(try size(shard.tensors + [plan.shards[i + 1].tensors[0]]), limit, "limit \(limit): \(shard.name) stopped early")
                }
            }
        }
    }

    /// A single-file model re-chunked into one file: the name dsconvert chose is only found through
    /// the index, so the index is written.
    func testShardSizeSingleFileGetsAnIndex() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try CV.quantize(CV.llama, out, shardSize: 1 << 30)
        XCTAssertEqual(try CV.files(out).filter { $0.contains("safetensors") },
                       ["model-00001-of-00001.safetensors", "model.safetensors.index.json"])
        let ckpt = try Checkpoint(path: out)
        XCTAssertEqual(ckpt.weights.tensorCount, 21 + 14)
        XCTAssertNoThrow(try ckpt.requireClassified())
        // Without --shard-size the single file keeps its name and gets no index.
        try CV.quantize(CV.llama, tmp.sub("mirror"))
        XCTAssertEqual(try CV.files(tmp.sub("mirror")).filter { $0.contains("safetensors") }, ["model.safetensors"])
    }
}
