import Checkpoint
import Foundation
import Tensors

/// A model cut by `dsconvert shard` (OUT/rank-…/, each with rank.json or a pack embedding it), run as the ranks would
/// run it: each weight matrix is read from the rank folders that hold its slices, never put back
/// together. A column-parallel weight (split on its output dimension) computes each rank's slice
/// of the output, concatenated; a row-parallel one (split on its input dimension) computes each
/// rank's partial product from its slice of the input, and the partial sums are added in rank
/// order (the all-reduce); a replicated tensor is read from the first rank that has it; a whole
/// tensor (an expert on its EP rank, a layer on its PP stage) from the rank that holds it.
public struct TensorParallelLayout: Sendable {
    /// One rank's slice of a global tensor.
    public struct Part: Sendable {
        public let store: TensorStore
        public let name: String
        /// Where the slice starts on the split dimension, and how long it is.
        public let offset: Int, length: Int
    }

    public enum Placement: Sendable {
        /// Replicated (every holder has the whole tensor) or held by one rank.
        case whole(TensorStore, name: String)
        /// Cut on `dim` into `parts`, in offset order (= rank order), tiling the dimension.
        case split(dim: Int, parts: [Part])
    }

    public let placements: [String: Placement]
    /// Each rank's checkpoint path (its folder, or the pack in it), in rank order.
    public let ranks: [String]
    public let config: ModelConfig

    /// The rank folders `rank-XXXXX-of-NNNNN` of `directory` (each with rank.json, or with a
    /// `model.dspack` that embeds it: `shard --format dspack`); empty when it holds none.
    public static func rankFolders(_ directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("rank-") && RankManifest.checkpointPath(ofRankFolder: directory + "/" + $0) != nil }
            .sorted().map { directory + "/" + $0 }
    }

    public init(directory: String) throws {
        let folders = Self.rankFolders(directory)
        guard !folders.isEmpty else { throw EngineError.config(path: directory, "holds no rank-…/rank.json folders (`dsconvert shard` output)") }
        var found: [String: [(Part, dim: Int?, global: [Int])]] = [:]
        var first: ModelConfig?
        var roots: [String] = []
        for folder in folders {
            // A folder of loose files (safetensors + rank.json), or one pack embedding rank.json.
            guard let root = RankManifest.checkpointPath(ofRankFolder: folder) else {
                throw EngineError.config(path: folder, "holds neither \(RankManifest.fileName) nor \(RankManifest.packName)")
            }
            roots.append(root)
            let ckpt = try Checkpoint(path: root)
            guard let c = ckpt.config else { throw EngineError.config(path: ckpt.weights.sideFilePath("config.json"), "missing: every rank carries the model's config.json") }
            if first == nil { first = c }
            guard let manifest = ckpt.rank else {
                throw EngineError.config(path: ckpt.weights.sideFilePath(RankManifest.fileName), "is not a dsconvert rank.json (format \(RankManifest.formatName) with a tensors object)")
            }
            for (local, s) in manifest.tensors {
                guard ckpt.weights.info(local) != nil else {
                    throw EngineError.tensor(name: local, file: manifest.path, "is listed in rank.json but not stored in \(folder)")
                }
                found[s.global, default: []].append((Part(store: ckpt.weights, name: local, offset: s.offset, length: s.length), s.splitDim, s.globalShape))
            }
        }
        config = first!
        ranks = roots
        var placements: [String: Placement] = [:]
        for (global, holders) in found {
            let dims = Set(holders.map { $0.dim ?? -1 })
            guard dims.count == 1 else {
                throw EngineError.config(path: directory, "'\(global)' is split on different dimensions by different ranks")
            }
            guard let dim = holders[0].dim else {
                placements[global] = .whole(holders[0].0.store, name: holders[0].0.name)
                continue
            }
            // Slices of one tensor: every rank holding the same slice (replicas across EP or DP
            // groups) counts once; the distinct slices must tile the dimension.
            var byOffset: [Int: Part] = [:]
            for h in holders where byOffset[h.0.offset] == nil { byOffset[h.0.offset] = h.0 }
            let parts = byOffset.keys.sorted().map { byOffset[$0]! }
            var at = 0
            for p in parts {
                guard p.offset == at else {
                    throw EngineError.config(path: directory, "the slices of '\(global)' on dimension \(dim) do not tile it (a gap or overlap at \(at))")
                }
                at += p.length
            }
            guard at == holders[0].global[dim] else {
                throw EngineError.config(path: directory, "the slices of '\(global)' cover \(at) of its \(holders[0].global[dim]) on dimension \(dim)")
            }
            placements[global] = parts.count == 1 ? .whole(parts[0].store, name: parts[0].name) : .split(dim: dim, parts: parts)
        }
        self.placements = placements
    }
}

extension Linear {
    /// Column-parallel: each part computes its slice of the outputs, written side by side.
    convenience init(columnParallel parts: [Linear]) {
        self.init(parts: parts, split: .columns)
    }

    /// Row-parallel: each part reads its slice of the inputs; the partial products are added in
    /// part (rank) order, then `bias` once.
    convenience init(rowParallel parts: [Linear], bias: [Float]?) {
        self.init(parts: parts, split: .rows, bias: bias)
    }

    /// The split product: see `init(columnParallel:)` and `init(rowParallel:bias:)`.
    func applyParts(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                    _ each: (Linear, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        switch split {
        case .columns:
            var col = 0
            for p in parts {
                each(p, x, ldx, y + col, ldy)
                col += p.outputs
            }
        case .rows:
            // Rank 0's partial product goes straight into y; every later rank's is added to it.
            each(parts[0], x, ldx, y, ldy)
            let partial = Matrix(rows: m, cols: outputs)
            var col = parts[0].inputs
            for p in parts.dropFirst() {
                each(p, x + col, ldx, partial.data, partial.cols)
                for i in 0..<m {
                    let dst = y + i * ldy, src = partial.data + i * partial.cols
                    for j in 0..<outputs { dst[j] += src[j] }
                }
                col += p.inputs
            }
            if let b = bias { for i in 0..<m { for j in 0..<outputs { y[i * ldy + j] += b[j] } } }
        case .none:
            preconditionFailure("applyParts on an unsplit Linear")
        }
    }

    /// Embedding rows of a split table: a vocabulary-parallel one (split on the rows) takes each
    /// id from the part holding it; one split on the hidden dimension writes each part's columns.
    func gatherParts(_ ids: [Int], into out: UnsafeMutablePointer<Float>, ld: Int) {
        if split == .rows {
            var col = 0
            for p in parts { p.gatherRows(ids, into: out + col, ld: ld); col += p.inputs }
            return
        }
        for (i, id) in ids.enumerated() {
            var first = 0
            for p in parts {
                if id < first + p.outputs { p.gatherRows([id - first], into: out + i * ld, ld: ld); break }
                first += p.outputs
            }
        }
    }
}
