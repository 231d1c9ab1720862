import DSPack
import JSON
import SafeTensors
import SystemIO
import Dispatch

/// A model directory as a whole: its config, architecture, weights (any `TensorStore`, read
/// lazily) and the role of every tensor.
public final class Checkpoint: @unchecked Sendable {
    public let directory: String
    /// Nil when the path is a bare safetensors file without a config.json beside it.
    public let config: ModelConfig?
    public let architecture: Architecture?
    /// The weights, through the reader seam only: nothing above this type sees headers,
    /// mappings or file ranges.
    public let weights: any TensorStore
    /// Whether the weights came with a sharded index (`model.safetensors.index.json`).
    public let hasIndex: Bool
    /// The index's `metadata` entries (`total_size` included), empty without an index.
    public let indexMetadata: [(String, JSONValue)]
    /// Set when the path is one shard file of an indexed checkpoint (see `requireWhole`).
    public let partOfIndex: SafeTensorsCheckpoint.PartOfIndex?
    /// Role of each tensor (only tensors the layout explains).
    public let roles: [String: TensorRole]
    /// Tensors the layout does not explain, in checkpoint order.
    public let unknownTensors: [String]
    /// The rank's manifest when this checkpoint is one rank of a `dsconvert shard` output
    /// (rank.json beside the tensors, or embedded in the pack); its shapes are slices.
    public let rank: RankManifest?

    /// Opens a directory (or a single .safetensors file, or a .dspack). Reads config.json and
    /// headers only; with `verify` also every checksum a .dspack holds (see `openStore`).
    public convenience init(path: String, verify: Bool = false) throws {
        try self.init(store: Checkpoint.openStore(path: path, verify: verify))
    }

    /// Opens the store at `path` in the format its name and contents say. This is the one place
    /// a new on-disk format is hooked in. Opening a .dspack always checks its header digest;
    /// `verify` (the commands' `--verify`) also checks every entry's XXH3-64 and zero gap on all
    /// cores before the store is handed out, failing with the corrupted tensor named. Safetensors
    /// files hold no checksums: `verify` has nothing more to check there.
    public static func openStore(path: String, verify: Bool = false) throws -> any TensorStore {
        if DSPackFile.isPack(path: path) {
            let pack = try DSPackFile(path: path)
            if verify { try DSPackVerifier.requireIntact(pack) }
            return pack
        }
        return try SafeTensorsCheckpoint(path: path)
    }

    /// A checkpoint over an opened store; config.json is the store's side file of that name.
    public init(store: any TensorStore) throws {
        PhaseTrace.mark("store opened")
        weights = store
        if let st = store as? SafeTensorsCheckpoint {
            directory = st.directory
            hasIndex = st.index != nil
            indexMetadata = st.index?.metadata ?? []
            partOfIndex = st.partOfIndex
        } else {
            directory = store.location
            hasIndex = false
            indexMetadata = []
            partOfIndex = nil
        }
        let configPath = store.sideFilePath(ModelConfig.fileName)
        if let bytes = try store.sideFile(ModelConfig.fileName) {
            let c = try ModelConfig.parse(bytes, path: configPath)
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
        PhaseTrace.mark("roles")
        self.roles = roles
        self.unknownTensors = unknown
        rank = try RankManifest.read(from: store)
    }

    /// Throws unless the checkpoint has a config with a known architecture, every tensor fits it and
    /// the config agrees with the tensors (`validateConfig`).
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
        try validateConfig()
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
