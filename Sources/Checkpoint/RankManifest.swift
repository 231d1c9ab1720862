import JSON
import SystemIO
import Tensors

/// `rank.json`: what `dsconvert shard` writes beside each rank's tensors (or embeds in its pack):
/// the rank's coordinates, the layers and experts it holds and, for every tensor, the global
/// tensor it is a slice of. A checkpoint that carries one is a rank, not a whole model: its
/// shapes are checked against the global shapes listed here (`ConfigValidation`), and the engine
/// runs the split from the ranks' manifests (`Engine.TensorParallelLayout`).
public struct RankManifest: Sendable {
    public static let fileName = "rank.json"
    public static let formatName = "dsconvert-rank"
    /// A rank's pack (`shard --format dspack`), which embeds the rank.json.
    public static let packName = "model.dspack"

    /// What to open for the rank folder `folder`: the folder itself when it holds a rank.json
    /// beside its safetensors files, its pack when it holds one instead, nil when neither.
    public static func checkpointPath(ofRankFolder folder: String) -> String? {
        func isFile(_ p: String) -> Bool { (try? Sys.stat(p))?.isRegular ?? false }
        if isFile(folder + "/" + fileName) { return folder }
        if isFile(folder + "/" + packName) { return folder + "/" + packName }
        return nil
    }

    /// One tensor of the rank: the slice `offset ..< offset + length` of `global` on `splitDim`
    /// (nil: the whole tensor).
    public struct Slice: Sendable, Equatable {
        public var global: String
        public var splitDim: Int?
        public var offset: Int
        public var length: Int
        public var globalShape: [Int]

        /// The shape this rank stores.
        public var localShape: [Int] {
            var s = globalShape
            if let d = splitDim, d < s.count { s[d] = length }
            return s
        }
    }

    public var path: String
    public var rank: Int, tpRank: Int, ppStage: Int, epRank: Int
    public var layers: [Int]
    public var experts: [Int]
    /// By the name stored in this rank, in the file's order.
    public var tensors: [(name: String, slice: Slice)]

    /// How many of the tensors are slices (the rest are held whole).
    public var slicedCount: Int { tensors.reduce(0) { $0 + ($1.slice.splitDim == nil ? 0 : 1) } }

    /// Parses a rank.json; nil when the JSON is not one (no `"format": "dsconvert-rank"`).
    public init?(json: JSONValue, path: String) throws {
        guard json["format"]?.stringValue == Self.formatName else { return nil }
        func bad(_ m: String) -> CheckpointError { .invalidConfig(path: path, m) }
        func int(_ k: String) throws -> Int {
            guard let v = json[k]?.intValue, v >= 0 else { throw bad("'\(k)' must be a non-negative integer") }
            return v
        }
        self.path = path
        rank = try int("rank"); tpRank = try int("tp_rank"); ppStage = try int("pp_stage"); epRank = try int("ep_rank")
        layers = json["layers"]?.arrayValue?.compactMap(\.intValue) ?? []
        experts = json["experts"]?.arrayValue?.compactMap(\.intValue) ?? []
        guard let members = json["tensors"]?.objectMembers else { throw bad("has no 'tensors' object") }
        var out: [(String, Slice)] = []
        out.reserveCapacity(members.count)
        for (name, e) in members {
            guard let global = e["global"]?.stringValue,
                  let shape = e["global_shape"]?.arrayValue?.map(\.intValue), !shape.contains(nil) else {
                throw bad("tensor '\(name)' lacks 'global' or an integer 'global_shape'")
            }
            let dims = shape.map { $0! }
            var slice = Slice(global: global, splitDim: nil, offset: 0, length: dims.first ?? 1, globalShape: dims)
            if let d = e["split_dim"], d != .null {
                guard let dim = d.intValue, dim >= 0, dim < dims.count,
                      let offset = e["offset"]?.intValue, let length = e["length"]?.intValue,
                      offset >= 0, length >= 0, offset + length <= dims[dim] else {
                    throw bad("tensor '\(name)': split_dim, offset and length must name a slice of its global shape \(dims)")
                }
                slice.splitDim = dim; slice.offset = offset; slice.length = length
            }
            out.append((name, slice))
        }
        tensors = out
    }

    /// The manifest `store` carries (a rank folder's rank.json, or a pack's embedded one), if any.
    public static func read(from store: any TensorStore) throws -> RankManifest? {
        guard let bytes = try store.sideFile(fileName) else { return nil }
        let path = store.sideFilePath(fileName)
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw CheckpointError.invalidConfig(path: path, "is not JSON: \(error)") }
        return try RankManifest(json: json, path: path)
    }
}
