import Foundation
import TestSupport
import XCTest
import Checkpoint
import JSON
import SafeTensors

/// Paths and small utilities for the checkpoint tests (names prefixed `CK` so nothing collides
/// with TestSupport).
enum CK {
    /// The package root, from this file's path: `<root>/Tests/CheckpointTests/<file>`.
    static let root = STFixtures.packageRoot
    static let samples = root + "/Samples"
    static let deepseek = samples + "/deepseek-v3-tiny"
    static let qwen2 = samples + "/qwen2-tiny"
    static let llama = samples + "/llama-tiny"

    /// Copies the regular files of `source` into `destination` (created), writable.
    static func copyDirectory(_ source: String, to destination: String) throws {
        try STFixtures.copyDirectory(source, to: destination)
    }

    static func writeJSON(_ v: JSONValue, to path: String) throws {
        try Data(JSONWriter.pretty(v).utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// A fresh directory, removed on deinit (TestSupport's, shared by every test target).
typealias CKTempDir = STTemporaryDirectory

/// What a tensor name should be, written down independently of `ModelLayout` from the Hugging Face
/// names in docs/reference.md and the samples' README (one anchored pattern per kind of name).
struct ExpectedRole: Equatable, CustomStringConvertible {
    var kind: TensorRole.Kind
    var layer: Int?
    var expert: Int?
    var projection: String?
    /// Whether quantize touches it by default: attention, dense MLP, routed and shared expert weights.
    var quantized: Bool

    var description: String { "\(kind) layer \(layer.map(String.init) ?? "-") expert \(expert.map(String.init) ?? "-") proj \(projection ?? "-") q=\(quantized)" }

    private struct Rule {
        var regex: NSRegularExpression
        var kind: TensorRole.Kind
        var deepseekOnly: Bool
        var qwenOnly: Bool
        /// Capture group numbers (0 = none).
        var layerGroup: Int
        var expertGroup: Int
        var projectionGroup: Int
        var quantized: Bool
    }

    private static func rule(_ p: String, _ kind: TensorRole.Kind, ds: Bool = false, qwen: Bool = false,
                             layer: Int = 0, expert: Int = 0, proj: Int = 0, quantized: Bool = false) -> Rule {
        Rule(regex: try! NSRegularExpression(pattern: "^" + p + "$"), kind: kind, deepseekOnly: ds, qwenOnly: qwen,
             layerGroup: layer, expertGroup: expert, projectionGroup: proj, quantized: quantized)
    }

    private static let L = #"model\.layers\.(\d+)\."#
    // Routed experts first: they are 98 % of DeepSeek's names.
    private static let rules: [Rule] = [
        rule(L + #"mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight"#, .expert, ds: true, layer: 1, expert: 2, proj: 3, quantized: true),
        rule(#"model\.embed_tokens\.weight"#, .embedding),
        rule(#"lm_head\.weight"#, .lmHead),
        rule(#"model\.norm\.weight"#, .norm),
        rule(L + #"(?:input_layernorm|post_attention_layernorm)\.weight"#, .norm, layer: 1),
        rule(L + #"self_attn\.(?:q_a_layernorm|kv_a_layernorm)\.weight"#, .norm, ds: true, layer: 1),
        rule(L + #"self_attn\.(q_proj|k_proj|v_proj|o_proj)\.weight"#, .attention, layer: 1, proj: 2, quantized: true),
        rule(L + #"self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj)\.weight"#, .attention, ds: true, layer: 1, proj: 2, quantized: true),
        rule(L + #"self_attn\.(q_proj|k_proj|v_proj)\.bias"#, .bias, qwen: true, layer: 1, proj: 2),
        rule(L + #"mlp\.(gate_proj|up_proj|down_proj)\.weight"#, .mlp, layer: 1, proj: 2, quantized: true),
        rule(L + #"mlp\.gate\.weight"#, .router, ds: true, layer: 1),
        rule(L + #"mlp\.gate\.e_score_correction_bias"#, .routerBias, ds: true, layer: 1),
        rule(L + #"mlp\.shared_experts\.(gate_proj|up_proj|down_proj)\.weight"#, .sharedExpert, ds: true, layer: 1, proj: 2, quantized: true),
        rule(L + #"(?:enorm|hnorm)\.weight"#, .norm, ds: true, layer: 1),
        rule(L + #"eh_proj\.weight"#, .mtpProjection, ds: true, layer: 1, proj: 0),
        rule(L + #"embed_tokens\.weight"#, .embedding, ds: true, layer: 1),
        rule(L + #"shared_head\.norm\.weight"#, .norm, ds: true, layer: 1),
        rule(L + #"shared_head\.head\.weight"#, .lmHead, ds: true, layer: 1),
    ]

    /// The expected role of `name` in `arch`, or nil when the name does not belong to it.
    static func of(_ name: String, _ arch: Architecture) -> ExpectedRole? {
        let ns = name as NSString
        for r in rules {
            if r.deepseekOnly && arch != .deepseekV3 { continue }
            if r.qwenOnly && arch != .qwen2 { continue }
            guard let m = r.regex.firstMatch(in: name, range: NSRange(location: 0, length: ns.length)) else { continue }
            func group(_ g: Int) -> String? { g == 0 ? nil : ns.substring(with: m.range(at: g)) }
            return ExpectedRole(kind: r.kind, layer: group(r.layerGroup).flatMap { Int($0) },
                                expert: group(r.expertGroup).flatMap { Int($0) }, projection: group(r.projectionGroup),
                                quantized: r.quantized)
        }
        return nil
    }
}

/// Checks `ModelLayout`'s role of every name against `ExpectedRole`, and that the module is the
/// name without its last component. Returns the count of each kind.
@discardableResult
func checkRoles(_ names: [String], _ arch: Architecture, file: StaticString = #filePath, line: UInt = #line) -> [TensorRole.Kind: Int] {
    let layout = ModelLayout(architecture: arch)
    var counts: [TensorRole.Kind: Int] = [:]
    var failures = 0
    for name in names {
        guard let expected = ExpectedRole.of(name, arch) else {
            XCTFail("test bug: no expectation for \(name)", file: file, line: line)
            continue
        }
        guard let role = layout.role(of: name) else {
            failures += 1
            if failures < 10 { XCTFail("\(arch): '\(name)' not classified; expected \(expected)", file: file, line: line) }
            continue
        }
        let got = ExpectedRole(kind: role.kind, layer: role.layer, expert: role.expert,
                               projection: expected.projection == nil ? nil : role.projection, quantized: role.quantizedByDefault)
        if got != expected || role.module != String(name[..<name.lastIndex(of: ".")!]) || role.parameter != String(name[name.index(after: name.lastIndex(of: ".")!)...]) {
            failures += 1
            if failures < 10 { XCTFail("\(arch): '\(name)': got \(got) module \(role.module), expected \(expected)", file: file, line: line) }
        }
        counts[role.kind, default: 0] += 1
    }
    return counts
}
