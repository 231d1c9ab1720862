import Diagnostics

/// Problems with a model directory as a whole (as opposed to one safetensors file).
public enum CheckpointError: DiagnosticError {
    case invalidConfig(path: String, String)
    case unknownArchitecture(path: String, modelType: String?, architectures: [String])
    /// Tensors the architecture's layout does not explain (at most a few names are shown).
    case unknownTensors(architecture: String, names: [String], total: Int)
    case invalidTensor(file: String, tensor: String, String)
    /// config.json contradicts the tensors: `key` has `value`, `tensor` disagrees.
    case configMismatch(path: String, key: String, value: String, tensor: String?, String)

    public var category: ErrorCategory { .input }

    public var code: String {
        switch self {
        case .invalidConfig: return "checkpoint.invalid_config"
        case .unknownArchitecture: return "checkpoint.unknown_architecture"
        case .unknownTensors: return "checkpoint.unknown_tensors"
        case .invalidTensor: return "checkpoint.invalid_tensor"
        case .configMismatch: return "checkpoint.config_mismatch"
        }
    }

    public var file: String? {
        switch self {
        case let .invalidConfig(p, _), let .unknownArchitecture(p, _, _), let .configMismatch(p, _, _, _, _): return p
        case let .invalidTensor(f, _, _): return f
        case .unknownTensors: return nil
        }
    }

    public var tensor: String? {
        switch self {
        case let .invalidTensor(_, t, _): return t
        case let .configMismatch(_, _, _, t, _): return t
        default: return nil
        }
    }

    public var message: String {
        switch self {
        case let .invalidConfig(_, msg):
            return msg
        case let .unknownArchitecture(_, modelType, archs):
            return "unsupported architecture (model_type \(modelType.map { "'\($0)'" } ?? "missing"), architectures \(archs)); dsconvert supports deepseek_v3, qwen2 and llama"
        case let .unknownTensors(arch, names, total):
            let shown = names.prefix(10).map { "'\(Diagnostic.escaped($0))'" }.joined(separator: ", ")
            let more = total > 10 ? " and \(total - 10) more" : ""
            return "\(total) tensor(s) do not fit the \(arch) layout, so dsconvert will not guess what to do with them: \(shown)\(more)"
        case let .invalidTensor(_, _, msg):
            return msg
        case let .configMismatch(_, key, value, _, msg):
            return "\(key) = \(value): \(msg)"
        }
    }
}
