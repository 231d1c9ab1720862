import JSON
import SafeTensors
import SystemIO

/// A model's config.json, kept as parsed (key order and number text preserved, so it can be
/// written back with only the fields dsconvert changes), with typed accessors for the values
/// dsconvert uses. Accepts both config styles: top-level `rope_theta` + `rope_scaling` (the
/// DeepSeek and Llama-3.1 releases) and transformers 5's `rope_parameters`.
public struct ModelConfig: Sendable {
    public var json: JSONValue
    /// Where it was read from (for messages).
    public var path: String

    public init(json: JSONValue, path: String) {
        self.json = json
        self.path = path
    }

    public static let fileName = "config.json"

    public static func read(directory: String) throws -> ModelConfig {
        let path = directory + "/" + fileName
        return try parse(Sys.readFile(path, limit: 64 << 20), path: path)
    }

    /// Parses config.json's bytes; `path` names it in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws -> ModelConfig {
        do {
            let v = try JSONParser.parse(bytes)
            guard v.objectMembers != nil else { throw CheckpointError.invalidConfig(path: path, "not a JSON object") }
            return ModelConfig(json: v, path: path)
        } catch let e as JSONError {
            throw CheckpointError.invalidConfig(path: path, "invalid JSON: \(e)")
        }
    }

    public func int(_ key: String) -> Int? { json[key]?.intValue }
    public func double(_ key: String) -> Double? { json[key]?.doubleValue }
    public func string(_ key: String) -> String? { json[key]?.stringValue }

    public var modelType: String? { string("model_type") }
    public var architectures: [String] { json["architectures"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    public var hiddenSize: Int? { int("hidden_size") }
    public var layerCount: Int? { int("num_hidden_layers") }
    public var vocabSize: Int? { int("vocab_size") }
    public var headCount: Int? { int("num_attention_heads") }
    public var kvHeadCount: Int? { int("num_key_value_heads") }
    public var intermediateSize: Int? { int("intermediate_size") }
    public var routedExperts: Int? { int("n_routed_experts") ?? int("num_experts") }
    public var expertsPerToken: Int? { int("num_experts_per_tok") }
    public var moeIntermediateSize: Int? { int("moe_intermediate_size") }
    public var firstDenseLayers: Int? { int("first_k_dense_replace") }
    public var mtpLayers: Int { int("num_nextn_predict_layers") ?? 0 }

    /// The weights' dtype: `torch_dtype`, or transformers 5's `dtype`.
    public var dtype: DType? {
        (string("torch_dtype") ?? string("dtype")).flatMap(DType.init(torchName:))
    }

    /// RoPE theta from `rope_theta` or `rope_parameters.rope_theta`.
    public var ropeTheta: Double? { double("rope_theta") ?? json["rope_parameters"]?["rope_theta"]?.doubleValue }

    /// The rope scaling object (`rope_scaling`, or `rope_parameters` when it names a type).
    public var ropeScaling: JSONValue? {
        if let s = json["rope_scaling"], s != .null { return s }
        if let p = json["rope_parameters"], (p["rope_type"] ?? p["type"]) != nil { return p }
        return nil
    }

    public var ropeScalingType: String? {
        guard let s = ropeScaling else { return nil }
        return (s["rope_type"] ?? s["type"])?.stringValue
    }

    public var quantizationConfig: JSONValue? { json["quantization_config"] }
}
