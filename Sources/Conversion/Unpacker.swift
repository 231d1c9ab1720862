import DSPack
import JSON
import SafeTensors
import SystemIO
import Tensors

/// `dsconvert unpack`: a .dspack (or a .dspack.zst transport file) back to the safetensors folder
/// it was packed from: the shards its metadata's `source` names (Formats/dspack.md §2.4), each
/// with the same tensors in table order, the index when the source had one, and every embedded
/// file. Every tensor's XXH3-64 is checked while it is copied, every embedded file's when it is
/// read; the folder is written under a temporary name beside the output and renamed into place
/// only when complete, so a failure (or Ctrl-C) leaves nothing under the output's name.
public enum Unpacker {
    public struct Shard: Sendable {
        public var name: String
        public var tensors: Range<Int>
        public var metadata: [(String, String)]?
    }

    public struct Report: Sendable {
        public var shards: [String] = []
        public var tensors = 0
        public var files: [String] = []
        /// Bytes of the folder written (shards, index and files).
        public var bytes = 0
        /// True when the input was a transport file (restored first).
        public var restored = false
    }

    /// The safetensors files `pack`'s metadata says the tensors came from; one `model.safetensors`
    /// when the metadata has no `source` (a pack from another writer).
    public static func shards(of pack: DSPackFile) throws -> (shards: [Shard], index: [(String, JSONValue)]?) {
        func bad(_ m: String) -> DSPackError {
            DSPackError(.metadataInvalid, file: pack.location, "metadata_invalid: the metadata's source " + m)
        }
        let count = pack.tensorNames.count
        guard let source = pack.metadata["source"], source != .null else {
            return ([Shard(name: "model.safetensors", tensors: 0..<count, metadata: [("format", "pt")])], nil)
        }
        guard let list = source["shards"]?.arrayValue else { throw bad("has no shards list") }
        var shards: [Shard] = []
        var at = 0
        var seen = Set<String>()
        for s in list {
            guard let name = s["name"]?.stringValue, let n = s["tensors"]?.intValue, n >= 0, n <= count - at else {
                throw bad("shard \(shards.count) has no name or a tensor count beyond the pack's \(count) tensors")
            }
            guard !name.contains("/"), !name.utf8.contains(0), !name.hasPrefix("."), name.hasSuffix(".safetensors"), seen.insert(name).inserted else {
                throw bad("shard name '\(name)' is not a plain, distinct .safetensors file name")
            }
            var meta: [(String, String)]? = nil
            if let m = s["metadata"], m != .null {
                guard let members = m.objectMembers else { throw bad("shard '\(name)' has metadata that is not an object") }
                meta = try members.map { k, v in
                    guard let str = v.stringValue else { throw bad("shard '\(name)' has a metadata value for '\(k)' that is not a string") }
                    return (k, str)
                }
            }
            shards.append(Shard(name: name, tensors: at..<(at + n), metadata: meta))
            at += n
        }
        guard at == count else { throw bad("shards hold \(at) tensors, the pack \(count)") }
        var index: [(String, JSONValue)]? = nil
        if source["index"]?.boolValue == true {
            index = source["index_metadata"]?.objectMembers ?? []
        }
        return (shards, index)
    }

    /// Unpacks `input` (a .dspack or .dspack.zst) into the folder `output`, which must not exist
    /// or be an empty folder. `progress` gets bytes done and total.
    @discardableResult
    public static func unpack(_ input: String, to output: String, progress: ((Int, Int) -> Void)? = nil) throws -> Report {
        var out = output
        while out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        if Sys.isDirectory(out) {
            let present = try listing(out)
            if !present.isEmpty { throw ConversionError.wouldOverwrite(directory: out, files: present) }
        } else if try Sys.entryExists(out) {
            throw ConversionError.wouldOverwrite(directory: out, files: [out])
        }
        let parent = out.lastIndex(of: "/").map { String(out[..<$0]) } ?? "."
        if !parent.isEmpty && !Sys.isDirectory(parent) {
            do { try Sys.makeDirectory(parent) } catch { throw ConversionError.unreadableInput(path: parent, "\(error)") }
        }
        let folder = try AtomicDirectory(out)
        defer { folder.abort() }  // nothing once committed
        var report = Report()
        let pack: DSPackFile
        var restoredName: String? = nil
        if DSPackTransport.isTransport(path: input) {
            // Restored to a file in the temporary folder (streamed frame by frame, verified before
            // it gets its name there), read from, and removed before the folder is renamed.
            let name = "restored.dspack"
            folder.created(name)
            try DSPackTransport.restore(input, to: folder.file(name)) { done, total in progress?(done / 2, total) }
            restoredName = name
            report.restored = true
            pack = try DSPackFile(path: folder.file(name))
        } else {
            pack = try DSPackFile(path: input)
        }
        let (shards, index) = try shards(of: pack)
        let sideNames = pack.sideFileNames
        let taken = Set(shards.map(\.name) + (index != nil ? [SafeTensorsIndex.fileName] : []))
        if let clash = sideNames.first(where: { taken.contains($0) || $0 == restoredName }) {
            throw DSPackError(.metadataInvalid, file: pack.location, tensor: clash, "metadata_invalid: the embedded file '\(clash)' has the name of a shard or of the index")
        }
        let total = pack.totalTensorBytes
        func tick(_ done: Int) {
            if restoredName != nil { progress?((total + done) / 2, total) } else { progress?(done, total) }
        }
        var done = 0
        let chunk = 64 << 20
        var weightMap: [(String, String)] = []
        for shard in shards {
            let names = Array(pack.tensorNames[shard.tensors])
            let specs = names.map { n -> TensorSpec in
                let i = pack.info(n)!
                return TensorSpec(name: n, dtype: i.dtype, shape: i.shape)
            }
            let writer = try SafeTensorsWriter(path: folder.file(shard.name), tensors: specs, metadata: shard.metadata)
            defer { writer.abort() }
            for n in names {
                let entry = pack.entry(n)!
                let v = try pack.view(n)
                let hash = Checksums.XXH3Stream()
                var at = 0
                repeat {
                    if Interrupt.requested { throw Interrupted() }
                    let end = min(v.bytes.count, at + chunk)
                    let piece = UnsafeRawBufferPointer(rebasing: v.bytes[at..<end])
                    hash.update(piece)
                    try writer.write(n, piece)
                    at = end
                } while at < v.bytes.count
                pack.release([n])
                let h = hash.digest
                guard h == entry.xxh3 else {
                    throw DSPackError(.checksumMismatch, file: input, tensor: n, offset: entry.dataOffset,
                        "checksum_mismatch: tensor data [\(entry.dataOffset), \(entry.dataOffset + entry.dataSize)) has XXH3-64 \(hex(h)), the table says \(hex(entry.xxh3)); nothing was written under \(out)")
                }
                done += v.bytes.count
                weightMap.append((n, shard.name))
                tick(done)
            }
            try writer.finish()
            folder.created(shard.name)
            report.bytes += writer.fileSize
            report.shards.append(shard.name)
        }
        if let index {
            var meta = index
            let total = meta.first(where: { $0.0 == "total_size" })?.1.intValue ?? pack.totalTensorBytes
            meta.removeAll { $0.0 == "total_size" }
            let bytes = SafeTensorsIndex(metadata: meta, weightMap: weightMap).serialized(totalSize: total)
            try AtomicFile.write(bytes, to: folder.file(SafeTensorsIndex.fileName))
            folder.created(SafeTensorsIndex.fileName)
            report.bytes += bytes.count
            report.files.append(SafeTensorsIndex.fileName)
        }
        for n in sideNames {
            guard let b = try pack.sideFile(n) else { continue }  // checked against its XXH3-64
            try AtomicFile.write(b, to: folder.file(n))
            folder.created(n)
            report.bytes += b.count
            report.files.append(n)
        }
        if let restoredName { Sys.unlink(folder.file(restoredName)) }
        if Interrupt.requested { throw Interrupted() }
        try folder.commit()
        report.tensors = pack.tensorNames.count
        return report
    }

    private static func listing(_ dir: String) throws -> [String] {
        do { return try Sys.listDirectory(dir) } catch { throw ConversionError.unreadableInput(path: dir, "\(error)") }
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - s.count) + s
    }
}
