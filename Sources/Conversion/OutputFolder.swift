import Quantization
import JSON
import SafeTensors
import SystemIO

/// What dsconvert knows about an output folder it writes into: where its state lives
/// (`OUT/.dsconvert/`), which files a dsconvert run wrote there (so that nothing else is ever
/// overwritten or removed without the user's say-so), and the temporaries killed runs left.
///
/// Ownership comes from three records, all in `OUT/.dsconvert/`: `plan.json` (every file a
/// planned conversion writes), the resume record of each finished shard, and `manifest.json`,
/// which a completed conversion leaves behind (with the lock file) listing every file it wrote.
struct OutputFolder {
    let path: String
    var state: String { path + "/" + ResumeRecord.directoryName }
    var manifestPath: String { state + "/" + OutputFolder.manifestName }

    static let manifestName = "manifest.json"

    init(_ path: String) { self.path = path }

    /// Names (relative to the folder) of the files a dsconvert run wrote here, as far as the
    /// records show: the last manifest, the plan's files and the shards with resume records.
    /// Unreadable records own nothing (a damaged state file never licenses a deletion).
    /// `plan`: the folder's plan, already in hand (the run that wrote it), read instead of
    /// parsing `plan.json` back.
    func ownedFiles(plan: PlanFile? = nil) -> Set<String> {
        var owned = Set<String>()
        if let plan { owned.formUnion(plan.files); owned.formUnion(plan.shards) }
        for name in [OutputFolder.manifestName] + (plan == nil ? [PlanFile.name] : []) {
            guard let bytes = try? Sys.readFile(state + "/" + name, limit: 256 << 20), let v = try? JSONParser.parse(bytes) else { continue }
            for key in ["files", "shards"] {
                for f in v[key]?.arrayValue ?? [] { if let s = f.stringValue { owned.insert(s) } }
            }
        }
        for n in (try? Sys.listDirectory(state)) ?? [] {
            if let shard = ResumeRecord.shard(fromFileName: n) { owned.insert(shard) }
        }
        return owned
    }

    /// True when a file (or symlink) named `name` exists in the folder; also when that cannot be
    /// told (the conservative answer: a file that may be there is never overwritten unasked).
    func holds(_ name: String) -> Bool { (try? Sys.entryExists(path + "/" + name)) ?? true }

    /// The files among `names` that exist here and that no dsconvert run wrote.
    func foreign(_ names: [String], owned: Set<String>) -> [String] {
        names.filter { !owned.contains($0) && holds($0) }
    }

    /// Writes `manifest.json`: the settings and every file dsconvert wrote into the folder.
    func writeManifest(files: [String], settings: String, digest: String) throws {
        let v = JSONValue.object([
            ("format", .int(1)),
            ("settings", .string(settings)),
            ("settings_digest", .string(digest)),
            ("files", .array(Array(Set(files)).sorted().map { .string($0) })),
        ])
        try AtomicFile.write(Array(JSONWriter.pretty(v).utf8), to: manifestPath)
    }

    func directory(of name: String) -> String {
        let d = OutputLayout.folder(of: name)
        return d.isEmpty ? path : path + "/" + d
    }

    /// Removes every dsconvert temporary in the folder, its state and the subfolders `shards`
    /// live in (only when no other run can be writing here).
    func removeAllTemporaries(shards: [String]) {
        var dirs = [path, state]
        for s in shards { let d = directory(of: s); if !dirs.contains(d) { dirs.append(d) } }
        for d in dirs { AtomicFile.removeTemporaries(in: d) }
    }

    /// Removes the temporaries of `shard` and of its resume record (a killed attempt of the same job).
    func removeTemporaries(of shard: String) {
        AtomicFile.removeTemporaries(in: directory(of: shard), of: OutputLayout.split(shard).file)
        AtomicFile.removeTemporaries(in: state, of: ResumeRecord.fileName(shard: shard))
    }
}
