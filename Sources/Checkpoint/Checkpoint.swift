import JSON
import SafeTensors
import SystemIO
import Dispatch

/// A model directory as a whole: its config, architecture, safetensors weights (read lazily)
/// and the role of every tensor.
public final class Checkpoint: @unchecked Sendable {
    public let directory: String
    /// Nil when the path is a bare safetensors file without a config.json beside it.
    public let config: ModelConfig?
    public let architecture: Architecture?
    public let weights: SafeTensorsCheckpoint
    /// Role of each tensor (only tensors the layout explains).
    public let roles: [String: TensorRole]
    /// Tensors the layout does not explain, in checkpoint order.
    public let unknownTensors: [String]

    /// Opens a directory (or a single .safetensors file). Reads config.json and headers only.
    public init(path: String) throws {
        weights = try SafeTensorsCheckpoint(path: path)
        directory = weights.directory
        // Any entry named config.json is read (a FIFO, a loop or a dangling link is an error
        // naming it); only a missing one means "no config".
        if try Sys.entryExists(weights.directory + "/" + ModelConfig.fileName) {
            let c = try ModelConfig.read(directory: weights.directory)
            config = c
            architecture = try? Architecture.detect(c)
        } else {
            config = nil
            architecture = nil
        }
        var roles: [String: TensorRole] = [:]
        var unknown: [String] = []
        if let architecture {
            let layout = ModelLayout(architecture: architecture)
            let names = weights.tensorNames
            var found = [TensorRole?](repeating: nil, count: names.count)
            found.withUnsafeMutableBufferPointer { out in
                let chunk = 4096
                DispatchQueue.concurrentPerform(iterations: (names.count + chunk - 1) / chunk) { c in
                    for i in c * chunk..<min(names.count, (c + 1) * chunk) { out[i] = layout.role(of: names[i]) }
                }
            }
            roles.reserveCapacity(names.count)
            for (name, r) in zip(names, found) {
                if let r { roles[name] = r } else { unknown.append(name) }
            }
        }
        self.roles = roles
        self.unknownTensors = unknown
    }

    /// Throws unless the checkpoint has a config with a known architecture and every tensor fits it.
    public func requireClassified() throws {
        guard let config else {
            throw CheckpointError.invalidConfig(path: directory + "/" + ModelConfig.fileName, "missing: dsconvert needs the model's config.json to know its architecture")
        }
        guard let architecture else {
            throw CheckpointError.unknownArchitecture(path: config.path, modelType: config.modelType, architectures: config.architectures)
        }
        if !unknownTensors.isEmpty {
            throw CheckpointError.unknownTensors(architecture: architecture.rawValue, names: Array(unknownTensors.prefix(10)), total: unknownTensors.count)
        }
    }

    /// The weights' dtype: config.json's, or else the most common float dtype among linear weights.
    public var modelDType: DType {
        if let d = config?.dtype { return d }
        var counts: [DType: Int] = [:]
        for name in weights.tensorNames {
            if let info = weights.info(name), [.bf16, .f16, .f32].contains(info.dtype) { counts[info.dtype, default: 0] += info.byteCount }
        }
        return counts.max { $0.value < $1.value }?.key ?? .bf16
    }
}
