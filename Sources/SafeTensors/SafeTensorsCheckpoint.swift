import Dispatch
import SystemIO

/// The safetensors weights of a checkpoint: one file, or a directory of shards with
/// `model.safetensors.index.json`, validated as a whole but read lazily.
///
/// Opening reads only headers. Every tensor name is unique across the shards, every index entry
/// points at a file that exists and holds that tensor, and every tensor in a shard is listed.
public final class SafeTensorsCheckpoint: TensorStore, @unchecked Sendable {
    public struct Shard: Sendable {
        /// File name within `directory`.
        public var name: String
        public var path: String
        public var header: SafeTensorsHeader
        public var status: Sys.FileStatus
    }

    /// Where a tensor lives.
    public struct Location: Sendable {
        public var shard: Int
        public var info: TensorInfo
    }

    public let directory: String
    /// The path given to `init` (a directory or a .safetensors file).
    public let location: String
    public let shards: [Shard]
    /// The index, when the checkpoint has one.
    public let index: SafeTensorsIndex?
    /// `.safetensors` files in the directory that the index does not name (they are not read;
    /// `inspect` and `quantize` warn about them).
    public let unindexedFiles: [String]

    /// Set when the path is a single file that an index beside it names: one shard of a larger
    /// checkpoint, which conversions refuse (`requireWhole`) and `inspect` points out.
    public struct PartOfIndex: Sendable {
        public var indexPath: String
        public var shardCount: Int
        public var tensorCount: Int
    }
    public let partOfIndex: PartOfIndex?

    /// The single-file name transformers loads before looking for an index.
    public static let singleFileName = "model.safetensors"

    /// Throws when the checkpoint holds no tensor, or is one shard of an indexed checkpoint (converting it alone would give a
    /// model with a fraction of its tensors).
    public func requireWhole() throws {
        if tensorCount == 0 {
            throw SafeTensorsError(.noTensors, file: location, "holds no tensors: there is nothing to convert")
        }
        if let part = partOfIndex {
            throw SafeTensorsError(.shardOfIndexedCheckpoint, file: location,
                "is one of the \(part.shardCount) shards that \(part.indexPath) names (\(tensorCount) of its \(part.tensorCount) tensors); give the directory \(directory) to convert the whole checkpoint, or copy this file out of that folder to convert it alone")
        }
    }
    /// Tensor names in shard order, then data order within each shard.
    public let tensorNames: [String]
    private let locations: [String: Location]

    /// Opens `path`: a `.safetensors` file, or a directory holding an index or safetensors files.
    public init(path: String) throws {
        let p = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        location = p
        let isDir: Bool
        do { isDir = try Sys.stat(p).isDirectory } catch { throw SafeTensorsError.io(error) }
        var shardNames: [String]
        var index: SafeTensorsIndex?
        var unindexed: [String] = []
        var partOf: PartOfIndex?
        if isDir {
            directory = p
            let indexPath = p + "/" + SafeTensorsIndex.fileName
            let hasIndex: Bool
            do { hasIndex = try Sys.entryExists(indexPath) } catch { throw SafeTensorsError.io(error) }
            if hasIndex {
                let idx = try SafeTensorsIndex.read(path: indexPath)
                index = idx
                var seen = Set<String>()
                shardNames = []
                var last = ""
                for (_, f) in idx.weightMap where f != last {
                    last = f
                    if seen.insert(f).inserted { shardNames.append(f) }
                }
                shardNames.sort()
                if shardNames.isEmpty {
                    throw SafeTensorsError(.indexInvalid, file: indexPath, "\"weight_map\" is empty: the index names no tensor, so there is nothing to read or convert")
                }
                // Other .safetensors files beside the index: loaders disagree about them.
                let listed = Set(shardNames)
                let names: [String]
                do { names = try Sys.listDirectory(p) } catch { throw SafeTensorsError.io(error) }
                unindexed = names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") && !listed.contains($0) }
                if unindexed.contains(SafeTensorsCheckpoint.singleFileName) {
                    // transformers loads model.safetensors when it exists and never reads the index;
                    // vLLM and SGLang follow the index. Which one the user means is not knowable.
                    throw SafeTensorsError(.ambiguousWeights, file: p,
                        "holds both \(SafeTensorsCheckpoint.singleFileName) and \(SafeTensorsIndex.fileName), which names other files (\(shardNames.prefix(2).joined(separator: ", "))\(shardNames.count > 2 ? ", …" : "")): transformers would load \(SafeTensorsCheckpoint.singleFileName), vLLM and SGLang the indexed shards; move one of them out of the folder")
                }
                // A name that exists in any form (a dangling symlink, a loop, a FIFO) is left to the
                // header read, which says what is wrong with it; only a missing entry is "missing".
                for f in shardNames where !((try? Sys.entryExists(p + "/" + f)) ?? true) {
                    let example = idx.weightMap.first { $0.1 == f }!.0
                    throw SafeTensorsError(.missingShard, file: indexPath, tensor: example,
                        "the index maps this tensor to '\(f)', which does not exist in \(p)")
                }
            } else {
                let names: [String]
                do { names = try Sys.listDirectory(p) } catch { throw SafeTensorsError.io(error) }
                shardNames = names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
                if shardNames.isEmpty {
                    throw SafeTensorsError(.missingShard, file: p, "no .safetensors files and no \(SafeTensorsIndex.fileName) in this directory")
                }
            }
        } else {
            let slash = p.lastIndex(of: "/")
            directory = slash.map { String(p[..<$0]) } ?? "."
            let name = slash.map { String(p[p.index(after: $0)...]) } ?? p
            shardNames = [name]
            // A file that an index beside it names is one shard of a larger checkpoint.
            let siblingIndex = directory + "/" + SafeTensorsIndex.fileName
            if (try? Sys.entryExists(siblingIndex)) == true, let idx = try? SafeTensorsIndex.read(path: siblingIndex),
               idx.weightMap.contains(where: { $0.1 == name }) {
                let files = Set(idx.weightMap.map(\.1))
                partOf = PartOfIndex(indexPath: siblingIndex, shardCount: files.count, tensorCount: idx.weightMap.count)
            }
        }
        self.index = index
        self.unindexedFiles = unindexed
        self.partOfIndex = partOf

        // Headers are read and parsed concurrently (a 163-shard checkpoint has ~90k entries).
        let dir = directory
        let parsed = UnsafeMutableBufferPointer<Result<Shard, Error>?>.allocate(capacity: shardNames.count)
        parsed.initialize(repeating: nil)
        defer { parsed.deallocate() }
        DispatchQueue.concurrentPerform(iterations: shardNames.count) { i in
            let f = shardNames[i]
            let path = dir + "/" + f
            parsed[i] = Result {
                let header = try SafeTensorsHeader.read(path: path, displayName: path)
                let status: Sys.FileStatus
                do { status = try Sys.stat(path) } catch { throw SafeTensorsError.io(error) }
                return Shard(name: f, path: path, header: header, status: status)
            }
        }
        PhaseTrace.mark("headers parsed")
        var shards: [Shard] = []
        shards.reserveCapacity(shardNames.count)
        var locations: [String: Location] = [:]
        var names: [String] = []
        let totalTensors = parsed.reduce(0) { $0 + ((try? $1!.get())?.header.tensors.count ?? 0) }
        locations.reserveCapacity(totalTensors)
        names.reserveCapacity(totalTensors)
        for (i, _) in shardNames.enumerated() {
            let shard = try parsed[i]!.get()
            let path = shard.path
            let header = shard.header
            shards.append(shard)
            for t in header.tensors {
                if let other = locations.updateValue(Location(shard: i, info: t), forKey: t.name) {
                    throw SafeTensorsError(.duplicateTensor, file: path, tensor: t.name,
                        "tensor also stored in \(shardNames[other.shard])")
                }
                names.append(t.name)
            }
        }
        if let index {
            let indexPath = directory + "/" + SafeTensorsIndex.fileName
            // weight_map keys are unique (the JSON parser rejects duplicates), so when every entry is
            // found and the counts agree, every stored tensor is listed.
            for (name, f) in index.weightMap {
                guard let loc = locations[name] else {
                    throw SafeTensorsError(.missingTensor, file: directory + "/" + f, tensor: name,
                        "listed in \(SafeTensorsIndex.fileName) but not present in this shard")
                }
                if shardNames[loc.shard] != f {
                    throw SafeTensorsError(.missingTensor, file: directory + "/" + f, tensor: name,
                        "listed in \(SafeTensorsIndex.fileName) for this shard but stored in \(shardNames[loc.shard])")
                }
            }
            if index.weightMap.count != locations.count {
                let listed = Set(index.weightMap.map(\.0))
                let extra = names.first(where: { !listed.contains($0) })!
                throw SafeTensorsError(.unlistedTensor, file: shards[locations[extra]!.shard].path, tensor: extra,
                    "stored in this shard but missing from \(indexPath)")
            }
        }
        self.shards = shards
        self.files = shards.map { StoreFile(name: $0.name, path: $0.path, status: $0.status, tensorNames: $0.header.tensors.map(\.name)) }
        self.locations = locations
        self.tensorNames = names
    }

    public var tensorCount: Int { locations.count }

    public func location(_ name: String) -> Location? { locations[name] }
    public func info(_ name: String) -> TensorInfo? { locations[name]?.info }
    public func contains(_ name: String) -> Bool { locations[name] != nil }

    /// Total bytes of all shard files.
    public var totalFileBytes: Int { shards.reduce(0) { $0 + $1.header.fileSize } }
    /// Total tensor data bytes (what the index's `total_size` counts).
    public var totalTensorBytes: Int { shards.reduce(0) { $0 + $1.header.tensors.reduce(0) { $0 + $1.byteCount } } }

    // MARK: TensorStore

    public var formatName: String { "safetensors" }

    /// The shards as store files (computed once when opened).
    public let files: [StoreFile]

    public func fileIndex(of name: String) -> Int? { locations[name]?.shard }

    public func fileOffset(of name: String) -> Int? {
        guard let l = locations[name] else { return nil }
        return shards[l.shard].header.dataStart + l.info.dataOffsets.lowerBound
    }

    /// A safetensors tensor's bytes are stored verbatim at its data offsets.
    public func storedLocation(of name: String) -> (file: Int, offset: Int)? {
        guard let l = locations[name] else { return nil }
        return (l.shard, shards[l.shard].header.dataStart + l.info.dataOffsets.lowerBound)
    }

    /// Mappings opened so far, one per shard, shared by every view.
    private let mappingLock = PThreadLock()
    private var mapped: [Int: SafeTensorsFile] = [:]

    /// Shard `i`, mapped once and kept for the store's lifetime (views keep it alive beyond that).
    public func file(shard i: Int) throws -> SafeTensorsFile {
        try mappingLock.withLock {
            if let f = mapped[i] { return f }
            let f = try SafeTensorsFile(path: shards[i].path, header: shards[i].header)
            mapped[i] = f
            return f
        }
    }

    public func view(_ name: String) throws -> TensorView {
        guard let loc = locations[name] else {
            throw SafeTensorsError(.missingTensor, file: location, tensor: name, "not in the checkpoint")
        }
        return try file(shard: loc.shard).view(loc.info)
    }

    public func prefetch(_ names: [String]) { advise(names, .willNeed) }

    public func release(_ names: [String]) {
        for n in names {
            guard let loc = locations[n], let f = mappingLock.withLock({ mapped[loc.shard] }) else { continue }
            f.mapping.release(f.fileRange(loc.info))
        }
    }

    public func prefetch(_ name: String, bytes range: Range<Int>) {
        guard let loc = locations[name], let f = try? file(shard: loc.shard) else { return }
        let r = f.fileRange(loc.info)
        f.mapping.advise(.willNeed, (r.lowerBound + range.lowerBound)..<(r.lowerBound + range.upperBound))
    }

    public func release(_ name: String, bytes range: Range<Int>) {
        guard let loc = locations[name], let f = mappingLock.withLock({ mapped[loc.shard] }) else { return }
        let r = f.fileRange(loc.info)
        f.mapping.release((r.lowerBound + range.lowerBound)..<(r.lowerBound + range.upperBound))
    }

    public func releaseAll() {
        for f in mappingLock.withLock({ Array(mapped.values) }) { f.mapping.advise(.dontNeed) }
    }

    public func prefetch(mapped bytes: UnsafeRawBufferPointer) {
        for f in mappingLock.withLock({ Array(mapped.values) }) where f.mapping.contains(bytes) {
            f.mapping.advise(.willNeed, mapped: bytes)
            return
        }
    }

    private func advise(_ names: [String], _ advice: MappedFile.Advice) {
        for n in names {
            guard let loc = locations[n], let f = try? file(shard: loc.shard) else { continue }
            f.mapping.advise(advice, f.fileRange(loc.info))
        }
    }

    /// Regular files beside the weights that a model carries (config.json, tokenizer files,
    /// generation_config.json, ...): everything in the directory but safetensors files, the index,
    /// hidden files and folders. A bare .safetensors file has none.
    public var sideFileNames: [String] {
        guard (try? Sys.stat(location).isDirectory) == true, let names = try? Sys.listDirectory(directory) else { return [] }
        return names.filter { n in
            !n.hasPrefix(".") && !n.hasSuffix(".safetensors") && n != SafeTensorsIndex.fileName
                && (try? Sys.stat(directory + "/" + n).isRegular) == true
        }.sorted()
    }

    public func sideFilePath(_ name: String) -> String { directory + "/" + name }

    public func sideFile(_ name: String) throws -> [UInt8]? {
        let p = sideFilePath(name)
        do { guard try Sys.entryExists(p) else { return nil } } catch { throw SafeTensorsError.io(error) }
        do { return try Sys.readFile(p) } catch { throw SafeTensorsError.io(error) }
    }

    /// Maps shard `i` (shared with `view`).
    public func open(shard i: Int) throws -> SafeTensorsFile { try file(shard: i) }
}
