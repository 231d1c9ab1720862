import Diagnostics
import JSON
import Checkpoint
import Quantization
import SystemIO

/// `OUT/.dsconvert/plan.json`: what completing the folder needs (the shards, index metadata,
/// the config.json to write, where the input is), the settings it is converted with (digest and
/// words), and every file the conversion writes or was allowed to replace, which it then owns.
///
/// The first run to plan a folder creates it; jobs never replace it (a job with another settings
/// digest refuses to start instead), a single run — which holds the folder alone — may.
struct PlanFile {
    static let name = "plan.json"

    var settings: String
    var settingsDigest: String
    var inputDirectory: String
    var shards: [String]
    var writesIndex: Bool
    var indexMetadata: [(String, JSONValue)]
    var config: JSONValue?
    /// The plan's `extraFiles` (output name → contents). plan.json holds each file's text as one
    /// JSON string (a plan of an older dsconvert: its JSON value, written out pretty as before).
    var extraFiles: [(name: String, bytes: [UInt8])] = []
    /// The output files embed config.json and the side files (packs): completing the folder
    /// writes no index, config.json or copies.
    var embedsModelFiles = false
    var files: [String]

    init(_ plan: ConversionPlan, inputDirectory: String, files: [String]) {
        settings = plan.settings
        settingsDigest = plan.settingsDigestHex
        self.inputDirectory = inputDirectory
        shards = plan.shards.map(\.name)
        writesIndex = plan.writesIndex
        indexMetadata = plan.indexMetadata
        config = plan.config
        extraFiles = plan.extraFiles
        embedsModelFiles = plan.format.embedsModelFiles
        self.files = Array(Set(files)).sorted()
    }

    var json: JSONValue {
        .object([
            ("settings", .string(settings)),
            ("settings_digest", .string(settingsDigest)),
            ("input_directory", .string(inputDirectory)),
            ("shards", .array(shards.map { .string($0) })),
            ("writes_index", .bool(writesIndex)),
            ("index_metadata", .object(indexMetadata)),
            ("config", config ?? .null),
            ("extra_files", .object(extraFiles.map { ($0.name, .string(String(decoding: $0.bytes, as: UTF8.self))) })),
            ("embeds_model_files", .bool(embedsModelFiles)),
            ("files", .array(files.map { .string($0) })),
        ])
    }

    static func path(_ folder: OutputFolder) -> String { folder.state + "/" + name }

    /// The folder's plan; nil when there is none. Any other problem (unreadable, invalid JSON,
    /// `[]`, missing members) is `invalidStateFile` naming the file: a plan is never silently
    /// replaced, since it records what the folder owns.
    static func read(_ folder: OutputFolder) throws -> PlanFile? {
        let path = path(folder)
        func why(_ error: Error) -> String { (error as? any DiagnosticError)?.message ?? "\(error)" }
        let exists: Bool
        do { exists = try Sys.entryExists(path) } catch {
            throw ConversionError.invalidStateFile(path: path, "cannot be read: \(why(error))")
        }
        guard exists else { return nil }
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 256 << 20) } catch {
            throw ConversionError.invalidStateFile(path: path, "cannot be read: \(why(error))")
        }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch {
            throw ConversionError.invalidStateFile(path: path, "not valid JSON (byte \(error.byteOffset)): \(error.message); delete \(ResumeRecord.directoryName) and run the conversion again")
        }
        guard v.objectMembers != nil, let shardValues = v["shards"]?.arrayValue, let settings = v["settings"]?.stringValue,
              let input = v["input_directory"]?.stringValue else {
            throw ConversionError.invalidStateFile(path: path, "not a dsconvert plan: expected an object with \"shards\", \"settings\" and \"input_directory\"; delete \(ResumeRecord.directoryName) and run the conversion again")
        }
        let shards = shardValues.compactMap(\.stringValue)
        guard shards.count == shardValues.count else {
            throw ConversionError.invalidStateFile(path: path, "not a dsconvert plan: \"shards\" holds a value that is not a file name")
        }
        // A plan of an older dsconvert, without a digest, matches no settings of this one.
        let digest = v["settings_digest"]?.stringValue ?? "none"
        var p = PlanFile(settings: settings, settingsDigest: digest, inputDirectory: input, shards: shards,
                         writesIndex: v["writes_index"]?.boolValue ?? false,
                         indexMetadata: v["index_metadata"]?.objectMembers ?? [], config: nil,
                         files: v["files"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        if let c = v["config"], c != .null { p.config = c }
        p.extraFiles = (v["extra_files"]?.objectMembers ?? []).map { (name: $0.0, bytes: $0.1.stringValue.map { Array($0.utf8) } ?? JSONWriter.prettyBytes($0.1)) }
        p.embedsModelFiles = v["embeds_model_files"]?.boolValue ?? false
        return p
    }

    private init(settings: String, settingsDigest: String, inputDirectory: String, shards: [String], writesIndex: Bool,
                 indexMetadata: [(String, JSONValue)], config: JSONValue?, files: [String]) {
        self.settings = settings
        self.settingsDigest = settingsDigest
        self.inputDirectory = inputDirectory
        self.shards = shards
        self.writesIndex = writesIndex
        self.indexMetadata = indexMetadata
        self.config = config
        self.files = files
    }

    private var bytes: [UInt8] { JSONWriter.prettyBytes(json) }

    /// Writes the plan, replacing any other.
    func write(_ folder: OutputFolder) throws {
        let b = bytes
        PhaseTrace.mark("plan.json made")
        try AtomicFile.write(b, to: PlanFile.path(folder))
    }

    /// Creates the plan unless one exists (atomically: of two jobs starting at once, exactly one
    /// creates it). Returns false, writing nothing, when there already is one.
    func create(_ folder: OutputFolder) throws -> Bool {
        try AtomicFile.writeIfAbsent(bytes, to: PlanFile.path(folder))
    }
}
