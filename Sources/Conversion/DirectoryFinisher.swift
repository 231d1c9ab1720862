import JSON
import Checkpoint
import Quantization
import SafeTensors
import SystemIO

/// Completes an output directory once every shard exists: the index (from the shards' own
/// headers), config.json, the input's other files, and removal of `.dsconvert/`. This is the
/// last step of a single-process run and the whole of `dsconvert merge-index`.
public enum DirectoryFinisher {
    static let planName = "plan.json"

    /// Files of the input folder that are not copied (other weight formats).
    static func isOtherWeightFormat(_ name: String) -> Bool {
        [".bin", ".pth", ".pt", ".gguf", ".ckpt", ".h5", ".msgpack", ".onnx"].contains { name.hasSuffix($0) }
    }

    /// Records in `OUT/.dsconvert/plan.json` what completing the directory needs.
    static func writePlan(_ plan: ConversionPlan, checkpoint: Checkpoint, outputDirectory out: String) throws {
        let v = JSONValue.object([
            ("settings", .string(plan.settings)),
            ("input_directory", .string(try Sys.realPath(checkpoint.directory))),
            ("shards", .array(plan.shards.map { .string($0.name) })),
            ("writes_index", .bool(plan.writesIndex)),
            ("index_metadata", .object(plan.indexMetadata)),
            ("config", plan.config ?? .null),
        ])
        try AtomicFile.write(Array(JSONWriter.pretty(v).utf8), to: out + "/" + ResumeRecord.directoryName + "/" + planName)
    }

    public struct Result: Sendable {
        public var shards: Int
        public var totalSize: Int
        public var copied: [String]
        public var notCopied: [String]
    }

    /// Verifies every planned shard against its record (hashing those not in `alreadyVerified`),
    /// then writes index, config and copies, and removes `.dsconvert/`.
    @discardableResult
    public static func finish(outputDirectory out: String, alreadyVerified: Set<String> = [], observer: ConversionObserver = SilentObserver()) throws -> Result {
        let state = out + "/" + ResumeRecord.directoryName
        let planPath = state + "/" + planName
        guard Sys.exists(planPath) else { throw ConversionError.notAConversionDirectory(out) }
        let plan = try JSONParser.parse(Sys.readFile(planPath))
        guard let shards = plan["shards"]?.arrayValue?.compactMap(\.stringValue), let settings = plan["settings"]?.stringValue,
              let input = plan["input_directory"]?.stringValue else {
            throw ConversionError.notAConversionDirectory(out)
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
        for s in shards {
            guard let rec = ResumeRecord.read(ResumeRecord.path(outputDirectory: out, shard: s)), rec.settings == settings,
                  let st = try? Sys.stat(out + "/" + s), st.size == rec.size, inputsUnchanged(rec) else {
                missing.append(s)
                continue
            }
            if !alreadyVerified.contains(s) {
                let (_, h) = try ResumeRecord.hashFile(out + "/" + s)
                if h != rec.xxh64 {
                    throw ConversionError.corruptShard(path: out + "/" + s, "contents changed since it was written (checksum mismatch); delete it and run its job again")
                }
            }
        }
        if !missing.isEmpty { throw ConversionError.incomplete(directory: out, missing: missing) }
        // Every file to be copied can be read: checked before anything is written.
        let sides = try SideFiles.scan(input)
        // Every job has finished: temporaries still here were left by killed runs.
        AtomicFile.removeStaleTemporaries(in: out)

        var weightMap: [(String, String)] = []
        var total = 0
        for s in shards {
            let h = try SafeTensorsHeader.read(path: out + "/" + s)
            for t in h.tensors {
                weightMap.append((t.name, s))
                total += t.byteCount
            }
        }
        if plan["writes_index"]?.boolValue == true {
            let idx = SafeTensorsIndex(metadata: plan["index_metadata"]?.objectMembers ?? [], weightMap: weightMap)
            try AtomicFile.write(idx.serialized(totalSize: total), to: out + "/" + SafeTensorsIndex.fileName)
        } else if Sys.exists(out + "/" + SafeTensorsIndex.fileName) {
            // Left by an earlier run into this directory (e.g. with --shard-size): loaders would
            // follow it to the wrong files instead of this single-file output.
            Sys.unlink(out + "/" + SafeTensorsIndex.fileName)
            observer.note("removed the \(SafeTensorsIndex.fileName) an earlier run left in \(out): this output is a single file")
        }
        let planned = Set(shards)
        let strays = try Sys.listDirectory(out).filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") && !planned.contains($0) }
        if !strays.isEmpty {
            observer.note("\(out) also holds \(strays.count) .safetensors file(s) this conversion did not write (\(strays.prefix(3).joined(separator: ", "))\(strays.count > 3 ? ", …" : "")); delete them, or some loaders will read them too")
        }
        if let config = plan["config"], config != .null {
            try AtomicFile.write(Array(JSONWriter.pretty(config).utf8), to: out + "/" + ModelConfig.fileName)
        }
        for name in sides.copy {
            try Sys.copyFile(from: input + "/" + name, to: out + "/" + name)
        }
        let copied = sides.copy, notCopied = sides.notCopied
        if !notCopied.isEmpty {
            observer.note("not copied (subfolders and other weight formats): \(notCopied.joined(separator: ", "))")
        }
        for n in (try? Sys.listDirectory(state)) ?? [] { Sys.unlink(state + "/" + n) }
        Sys.removeDirectory(state)
        return Result(shards: shards.count, totalSize: total, copied: copied, notCopied: notCopied)
    }
}
