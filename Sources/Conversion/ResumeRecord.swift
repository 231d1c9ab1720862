import Diagnostics
import JSON
import Numerics
import SystemIO

/// The small record written beside each finished output shard in `OUT/.dsconvert/`, which lets
/// a re-run skip the shard: its inputs' sizes and mtimes, the settings digest (and, for messages,
/// the settings in words and the job that wrote it), and the output's size and XXH3-64 (libxxhash,
/// as the packs use). A shard is skipped only when the record matches and the file's bytes hash to
/// the recorded value.
public struct ResumeRecord: Equatable, Sendable {
    public struct Input: Equatable, Sendable {
        public var name: String
        public var size: Int
        public var mtimeNanoseconds: Int64
    }

    public var shard: String
    /// The settings in words (messages only; never compared).
    public var settings: String
    /// `SettingsDigest`, 16 hex digits: what resume and merge-index compare.
    public var settingsDigest: String
    /// The job that wrote the shard (`jobIndex` of `jobs`; 0 of 1 for a single run).
    public var jobIndex: Int
    public var jobs: Int
    public var inputs: [Input]
    public var size: Int
    /// XXH3-64 (seed 0) of the whole output file.
    public var xxh3: UInt64

    public static let directoryName = ".dsconvert"

    public static func path(outputDirectory: String, shard: String) -> String {
        "\(outputDirectory)/\(directoryName)/\(fileName(shard: shard))"
    }

    /// The record's file name in `.dsconvert/`: the shard's relative name with `%` and `/`
    /// percent-encoded (records of shards in subfolders stay in the one flat state folder), `.json`.
    public static func fileName(shard: String) -> String {
        var out = ""
        for c in shard {
            switch c {
            case "%": out += "%25"
            case "/": out += "%2F"
            default: out.append(c)
            }
        }
        return out + ".json"
    }

    /// The shard a record file name belongs to; nil for the other state files and temporaries.
    public static func shard(fromFileName name: String) -> String? {
        guard name.hasSuffix(".json"), !name.hasPrefix("."), name != "plan.json", name != "manifest.json" else { return nil }
        let encoded = name.dropLast(".json".count)
        guard !encoded.isEmpty else { return nil }
        var out = ""
        var rest = Substring(encoded)
        while let c = rest.first {
            if rest.hasPrefix("%2F") { out += "/"; rest = rest.dropFirst(3) }
            else if rest.hasPrefix("%25") { out += "%"; rest = rest.dropFirst(3) }
            else if c == "%" { return nil }
            else { out.append(c); rest = rest.dropFirst() }
        }
        return out
    }

    public var json: JSONValue {
        .object([
            ("shard", .string(shard)),
            ("settings", .string(settings)),
            ("settings_digest", .string(settingsDigest)),
            ("job_index", .int(jobIndex)),
            ("jobs", .int(jobs)),
            ("inputs", .array(inputs.map { .object([("name", .string($0.name)), ("size", .int($0.size)), ("mtime_ns", .number(String($0.mtimeNanoseconds)))]) })),
            ("size", .int(size)),
            ("xxh3", .string(XXH64.hex(xxh3))),
        ])
    }

    public init(shard: String, settings: String, settingsDigest: String, jobIndex: Int = 0, jobs: Int = 1, inputs: [Input], size: Int, xxh3: UInt64) {
        self.shard = shard
        self.settings = settings
        self.settingsDigest = settingsDigest
        self.jobIndex = jobIndex
        self.jobs = jobs
        self.inputs = inputs
        self.size = size
        self.xxh3 = xxh3
    }

    /// Reads a record; nil when it is missing or unreadable (the shard is then redone).
    public static func read(_ path: String) -> ResumeRecord? { (try? load(path)) ?? nil }

    /// Reads a record: nil when there is none; a record that exists but cannot be read or parsed
    /// is an error naming its file (`conversion.invalid_state_file`).
    public static func load(_ path: String) throws -> ResumeRecord? {
        do { guard try Sys.entryExists(path) else { return nil } } catch {
            throw ConversionError.invalidStateFile(path: path, "resume record cannot be read: \((error as? any DiagnosticError)?.message ?? "\(error)")")
        }
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 1 << 20) } catch {
            throw ConversionError.invalidStateFile(path: path, "resume record cannot be read: \((error as? any DiagnosticError)?.message ?? "\(error)")")
        }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch {
            throw ConversionError.invalidStateFile(path: path, "resume record is not valid JSON (byte \(error.byteOffset)): \(error.message)")
        }
        func bad(_ why: String) -> ConversionError {
            .invalidStateFile(path: path, "not a dsconvert resume record: \(why)")
        }
        guard v.objectMembers != nil else { throw bad("expected a JSON object") }
        guard let shard = v["shard"]?.stringValue else { throw bad("no \"shard\" string") }
        guard let settings = v["settings"]?.stringValue else { throw bad("no \"settings\" string") }
        guard let size = v["size"]?.intValue else { throw bad("no integer \"size\"") }
        if v["xxh3"] == nil, v["xxh64"] != nil {
            throw ConversionError.invalidStateFile(path: path, "resume record of an earlier dsconvert (an XXH64 checksum, now XXH3-64)")
        }
        guard let hex = v["xxh3"]?.stringValue, hex.count == 16, let hash = UInt64(hex, radix: 16) else { throw bad("no 16-digit hexadecimal \"xxh3\"") }
        guard let ins = v["inputs"]?.arrayValue else { throw bad("no \"inputs\" array") }
        // Records of an older dsconvert, without a digest, match no settings of this one.
        let digest = v["settings_digest"]?.stringValue ?? "none"
        let jobIndex = v["job_index"]?.intValue ?? 0, jobs = v["jobs"]?.intValue ?? 1
        var inputs: [Input] = []
        for i in ins {
            guard let n = i["name"]?.stringValue, let s = i["size"]?.intValue,
                  case let .number(t)? = i["mtime_ns"], let m = Int64(t) else { throw bad("an \"inputs\" entry lacks name, size or mtime_ns") }
            inputs.append(Input(name: n, size: s, mtimeNanoseconds: m))
        }
        return ResumeRecord(shard: shard, settings: settings, settingsDigest: digest, jobIndex: jobIndex, jobs: jobs, inputs: inputs, size: size, xxh3: hash)
    }

    public func write(outputDirectory: String) throws {
        try AtomicFile.write(Array(JSONWriter.pretty(json).utf8), to: ResumeRecord.path(outputDirectory: outputDirectory, shard: shard))
    }

    /// XXH3-64 of a whole file (mapped; pages released as it goes).
    public static func hashFile(_ path: String) throws -> (size: Int, xxh3: UInt64) {
        let m = try MappedFile(path: path)
        m.advise(.sequential)
        let h = XXH3.Stream()
        let step = 64 << 20
        var off = 0
        while off < m.size {
            let end = min(m.size, off + step)
            h.update(m.bytes(off..<end))
            m.release(off..<end)
            off = end
        }
        return (m.size, h.digest)
    }
}
