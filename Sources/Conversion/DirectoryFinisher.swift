import JSON
import Checkpoint
import DSPack
import Quantization
import SafeTensors
import SystemIO

/// Completes an output directory once every shard exists: the index (from the shards' own
/// headers), config.json, the input's other files, and `.dsconvert/manifest.json`. This is the
/// last step of a single-process run and the whole of `dsconvert merge-index`.
public enum DirectoryFinisher {

    /// Files of the input folder that are not copied (other weight formats).
    static func isOtherWeightFormat(_ name: String) -> Bool {
        [".bin", ".pth", ".pt", ".gguf", ".ckpt", ".h5", ".msgpack", ".onnx"].contains { name.hasSuffix($0) }
    }

    /// Every file completing the directory writes besides the shards: the index (when the plan
    /// has one), config.json (when it has a config) and the copies of the input's other files.
    static func finishingFiles(folders: [String], writesIndex: Bool, hasConfig: Bool, copies: [String]) -> [String] {
        folders.flatMap { f in
            ((writesIndex ? [SafeTensorsIndex.fileName] : []) + (hasConfig ? [ModelConfig.fileName] : []) + copies).map { OutputLayout.join(f, $0) }
        }
    }

    /// The folders of a layout's output names ("" is the top level), in order of first appearance;
    /// each is completed as a loadable checkpoint of its own (index, config.json, side files).
    static func folders(of shards: [String]) -> [String] {
        var seen = Set<String>()
        let fs = shards.map(OutputLayout.folder(of:)).filter { seen.insert($0).inserted }
        return fs.isEmpty ? [""] : fs
    }

    public struct Result: Sendable {
        public var shards: Int
        public var totalSize: Int
        public var copied: [String]
        public var notCopied: [String]
        /// The settings (words and digest) every shard was verified to be made with.
        public var settings: String
        public var settingsDigest: String
        /// The shards are packs that embed config.json and the side files: nothing was written beside them.
        public var embedsModelFiles = false
    }

    /// Verifies every planned shard against its record (hashing those not in `alreadyVerified`)
    /// and checks that nothing it writes would replace a file no dsconvert run wrote; only then
    /// writes index, config and copies, records them in `.dsconvert/manifest.json` and removes
    /// the rest of the state (the lock and the manifest stay).
    @discardableResult
    public static func finish(outputDirectory out: String, alreadyVerified: Set<String> = [], observer: ConversionObserver = SilentObserver()) throws -> Result {
        try finish(outputDirectory: out, alreadyVerified: alreadyVerified, observer: observer, lockHeld: false)
    }

    /// `lockHeld`: the caller (a single run) holds the folder's exclusive lock already. `planned`:
    /// the plan that caller wrote to the folder, given instead of reading (and parsing) it back —
    /// for a shard plan it holds every rank.json, and a second copy of those would be the run's
    /// peak memory.
    /// `shardTensors`: the tensors of each shard in file order, from the plan the caller just
    /// wrote them by (every shard verified against its record), taken for the indexes instead of
    /// parsing every shard's header back.
    static func finish(outputDirectory out: String, alreadyVerified: Set<String>, observer: ConversionObserver, lockHeld: Bool,
                       planned: PlanFile? = nil, shardTensors: [String: [TensorSpec]]? = nil) throws -> Result {
        let folder = OutputFolder(out)
        let state = folder.state
        guard Sys.isDirectory(state) else { throw ConversionError.notAConversionDirectory(out) }
        let lock = lockHeld ? nil : try FolderLock.acquire(folder, jobs: nil, jobIndex: 0, observer: observer)
        defer { lock?.release() }
        guard let plan = try planned ?? PlanFile.read(folder) else { throw ConversionError.notAConversionDirectory(out) }
        let shards = plan.shards, settings = plan.settings, input = plan.inputDirectory
        // The input folder is where the side files are copied from (and the inputs the shards were
        // made from): it must be there before anything is checked further or written.
        do {
            if DSPackFile.isPack(path: input) { _ = try Sys.stat(input) } else { _ = try Sys.listDirectory(input) }
        } catch {
            throw ConversionError.inputUnavailable(input: input, plan: PlanFile.path(folder), reason: (error as? IOError)?.reason ?? "\(error)")
        }
        /// False when an input the shard was made from has changed since (another size or mtime),
        /// as a job re-run would find; an input that is gone is not held against the shard.
        func inputsUnchanged(_ rec: ResumeRecord) -> Bool {
            rec.inputs.allSatisfy { i in
                guard let st = try? Sys.stat(input + "/" + i.name) else { return true }
                return st.size == i.size && st.mtimeNanoseconds == i.mtimeNanoseconds
            }
        }
        var missing: [String] = []
        var disagreeing: [(shard: String, settings: String)] = []
        var records: [String: ResumeRecord] = [:]
        for s in shards {
            guard let rec = try ResumeRecord.load(ResumeRecord.path(outputDirectory: out, shard: s)) else {
                missing.append(s)
                continue
            }
            if rec.settingsDigest != plan.settingsDigest {
                disagreeing.append((s, "\(rec.settings) (digest \(rec.settingsDigest))"))
                continue
            }
            guard let st = try? Sys.stat(out + "/" + s), st.size == rec.size, inputsUnchanged(rec) else {
                missing.append(s)
                continue
            }
            records[s] = rec
        }
        if !disagreeing.isEmpty {
            throw ConversionError.settingsMismatch(directory: out, shards: disagreeing.map(\.shard),
                                                   planned: "\(settings) (digest \(plan.settingsDigest))", found: disagreeing.map(\.settings))
        }
        if !missing.isEmpty { throw ConversionError.incomplete(directory: out, missing: missing) }
        for s in shards {
            let rec = records[s]!
            if !alreadyVerified.contains(s) {
                let (_, h) = try ResumeRecord.hashFile(out + "/" + s)
                if h != rec.xxh3 {
                    let job = rec.jobs > 1 ? "run job index \(rec.jobIndex) of the \(rec.jobs) jobs again (the job that wrote it), then merge-index"
                        : "run the same conversion again"
                    throw ConversionError.corruptShard(path: out + "/" + s, "contents changed since it was written (checksum mismatch); \(job): it notices the mismatch and rewrites this shard, nothing needs deleting")
                }
            }
        }

        // Everything that will be written or removed, checked before the first write: every file
        // to be copied can be read, and none of them replaces a file no dsconvert run wrote.
        let writesIndex = plan.writesIndex
        // Packs carry config.json and the side files inside: nothing is written beside them.
        let embeds = plan.embedsModelFiles
        let config = embeds ? nil : plan.config
        var side = try SideFiles.scan(input)
        if embeds { side.copy = [] }
        let owned = folder.ownedFiles(plan: planned)
        let folders = Self.folders(of: shards)
        var foreign = folder.foreign(finishingFiles(folders: folders, writesIndex: writesIndex, hasConfig: config != nil, copies: side.copy)
                                     + plan.extraFiles.map(\.name), owned: owned)
        let removesIndex = folders.map { OutputLayout.join($0, SafeTensorsIndex.fileName) }.filter { !writesIndex && folder.holds($0) }
        foreign += removesIndex.filter { !owned.contains($0) }
        if !foreign.isEmpty { throw ConversionError.wouldOverwrite(directory: out, files: foreign) }

        // Every index's contents, from the shards' own headers, before the first write.
        var indexes: [(weightMap: [(String, String)], total: Int)] = []
        for f in folders {
            var weightMap: [(String, String)] = []
            var folderTotal = 0
            for s in shards where OutputLayout.folder(of: s) == f {
                let local = OutputLayout.split(s).file
                if let specs = shardTensors?[s] {
                    for t in specs {
                        weightMap.append((t.name, local))
                        folderTotal += t.byteCount
                    }
                    continue
                }
                let store = try Checkpoint.openStore(path: out + "/" + s)
                for t in store.tensorNames {
                    weightMap.append((t, local))
                    folderTotal += store.info(t)!.byteCount
                }
            }
            indexes.append((weightMap, folderTotal))
        }

        // Every job has finished: temporaries still here were left by killed runs.
        folder.removeAllTemporaries(shards: shards)

        var total = 0
        var written = shards
        for (f, (weightMap, folderTotal)) in zip(folders, indexes) {
            let dir = f.isEmpty ? out : out + "/" + f
            let mine = shards.filter { OutputLayout.folder(of: $0) == f }
            total += folderTotal
            if writesIndex {
                let idx = SafeTensorsIndex(metadata: plan.indexMetadata, weightMap: weightMap)
                try AtomicFile.write(idx.serialized(totalSize: folderTotal), to: dir + "/" + SafeTensorsIndex.fileName)
                written.append(OutputLayout.join(f, SafeTensorsIndex.fileName))
            } else if removesIndex.contains(OutputLayout.join(f, SafeTensorsIndex.fileName)) {
                // Written by an earlier dsconvert run into this folder (its records say so), e.g. with
                // a shard size: loaders would follow it to the wrong files instead of this single file.
                Sys.unlink(dir + "/" + SafeTensorsIndex.fileName)
                observer.note("removed the \(SafeTensorsIndex.fileName) an earlier dsconvert run wrote in \(dir): this output is a single file")
            }
            let planned = Set(mine.map { OutputLayout.split($0).file })
            let strays = try Sys.listDirectory(dir).filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") && !planned.contains($0) }
            if !strays.isEmpty {
                observer.note("\(dir) also holds \(strays.count) .safetensors file(s) this conversion did not write (\(strays.prefix(3).joined(separator: ", "))\(strays.count > 3 ? ", …" : "")); delete them, or some loaders will read them too")
            }
            if let config {
                try AtomicFile.write(JSONWriter.prettyBytes(config), to: dir + "/" + ModelConfig.fileName)
                written.append(OutputLayout.join(f, ModelConfig.fileName))
            }
            for name in side.copy {
                try SideFiles.copy(name, of: input, to: dir + "/" + name)
                written.append(OutputLayout.join(f, name))
            }
        }
        for f in plan.extraFiles {
            try AtomicFile.write(f.bytes, to: out + "/" + f.name)
            written.append(f.name)
        }
        if !side.notCopied.isEmpty {
            observer.note("not copied (subfolders and other weight formats): \(side.notCopied.joined(separator: ", "))")
        }
        // What dsconvert wrote here, this run and earlier ones (files still present), stays on
        // record so that a later run into this folder knows what it may replace.
        let earlier = owned.filter { folder.holds($0) && !removesIndex.contains($0) && !written.contains($0) }
        try folder.writeManifest(files: Array(earlier) + written, settings: settings, digest: plan.settingsDigest)
        for n in (try? Sys.listDirectory(state)) ?? [] where n == PlanFile.name || ResumeRecord.shard(fromFileName: n) != nil || FolderLock.isJobLock(n) {
            Sys.unlink(state + "/" + n)
        }
        return Result(shards: shards.count, totalSize: total, copied: side.copy, notCopied: side.notCopied,
                      settings: settings, settingsDigest: plan.settingsDigest, embedsModelFiles: embeds)
    }
}
