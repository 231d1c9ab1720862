/// The model families dsconvert understands.
public enum Architecture: String, Sendable, CaseIterable {
    case deepseekV3 = "deepseek_v3"
    case qwen2 = "qwen2"
    case llama = "llama"

    /// From config.json's `model_type` (or, failing that, its `architectures` list).
    public static func detect(_ config: ModelConfig) throws -> Architecture {
        if let t = config.modelType, let a = Architecture(rawValue: t) { return a }
        for name in config.architectures {
            switch name {
            case "DeepseekV3ForCausalLM": return .deepseekV3
            case "Qwen2ForCausalLM": return .qwen2
            case "LlamaForCausalLM": return .llama
            default: continue
            }
        }
        throw CheckpointError.unknownArchitecture(path: config.path, modelType: config.modelType, architectures: config.architectures)
    }
}
