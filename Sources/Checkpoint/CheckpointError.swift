/// Problems with a model directory as a whole (as opposed to one safetensors file).
public enum CheckpointError: Error, CustomStringConvertible, Sendable {
    case invalidConfig(path: String, String)
    case unknownArchitecture(path: String, modelType: String?, architectures: [String])
    /// Tensors the architecture's layout does not explain (at most a few names are shown).
    case unknownTensors(architecture: String, names: [String], total: Int)
    case invalidTensor(file: String, tensor: String, String)

    public var description: String {
        switch self {
        case let .invalidConfig(path, msg):
            return "\(path): \(msg)"
        case let .unknownArchitecture(path, modelType, archs):
            return "\(path): unsupported architecture (model_type \(modelType.map { "'\($0)'" } ?? "missing"), architectures \(archs)); dsconvert supports deepseek_v3, qwen2 and llama"
        case let .unknownTensors(arch, names, total):
            let shown = names.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
            let more = total > 10 ? " and \(total - 10) more" : ""
            return "\(total) tensor(s) do not fit the \(arch) layout, so dsconvert will not guess what to do with them: \(shown)\(more)"
        case let .invalidTensor(file, tensor, msg):
            return "\(file): tensor '\(tensor)': \(msg)"
        }
    }
}
