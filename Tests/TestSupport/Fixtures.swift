import Foundation
import JSON
import Numerics
import SafeTensors
import SystemIO

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the safetensors tests: temporary directories, deterministic bytes, in-memory file
// images, the malformed-file corpus, a private runner for the Python reference scripts and the
// reader of their dumps. Every name starts with `ST` so nothing collides with other helpers in
// this module.

// MARK: - Locations

public enum STFixtures {
    /// The package root, from this file's path: `<root>/Tests/TestSupport/Fixtures.swift`.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `<root>/Tests/Reference`.
    public static var referenceDirectory: String { packageRoot + "/Tests/Reference" }
    /// `<root>/Samples`.
    public static var samplesDirectory: String { packageRoot + "/Samples" }

    /// Copies the regular files of `source` into `destination` (created), writable.
    public static func copyDirectory(_ source: String, to destination: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: source) {
            try fm.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
            try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: destination + "/" + name)
        }
    }

    /// An environment variable as an integer (`_` separators allowed), or `defaultValue`.
    public static func environmentInt(_ name: String, default defaultValue: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment[name] else { return defaultValue }
        return Int(text.replacingOccurrences(of: "_", with: "")) ?? defaultValue
    }
}

// MARK: - Temporary directories

/// A fresh directory under `$TMPDIR` (or /tmp), removed with everything in it on deinit.
public final class STTemporaryDirectory {
    public let path: String
    /// Set to keep the directory (e.g. to look at a failure).
    public var keep = false

    public init(_ label: String = "dsconvert-st") throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/\(label).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        guard made else { throw IOError("mkdtemp", path: base, errno: errno) }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `path/name`.
    public func file(_ name: String) -> String { path + "/" + name }
    /// `path/name` (the conversion tests' spelling).
    public func sub(_ name: String) -> String { file(name) }

    /// Creates the subdirectory `name` and returns its path.
    public func directory(_ name: String) throws -> String {
        let p = file(name)
        try Sys.makeDirectory(p)
        return p
    }

    /// Names in the directory, hidden ones included, sorted.
    public func contents() throws -> [String] { try Sys.listDirectory(path) }

    deinit {
        if !keep { try? FileManager.default.removeItem(atPath: path) }
    }
}

// MARK: - Deterministic bytes

/// Deterministic test randomness: Numerics' SplitMix64 stream with a few conveniences.
public struct STRandom: RandomNumberGenerator {
    private var source: SplitMix64
    public init(seed: UInt64) { source = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { source.next() }

    /// A value in 0..<n (n > 0).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var v = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: v)
                v >>= 8
                i += 1
            }
        }
        return out
    }

    /// `count` pseudo-random bytes from `seed`.
    public static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var r = STRandom(seed: seed)
        return r.bytes(count)
    }
}

// MARK: - In-memory file images

public enum STImage {
    /// `[8-byte little-endian length][header][data]`; with `pad`, the header is padded with
    /// spaces to a multiple of 8 first (as the reference writer does).
    public static func make(header: [UInt8], data: [UInt8] = [], pad: Bool = true) -> [UInt8] {
        var h = header
        if pad { while h.count % 8 != 0 { h.append(0x20) } }
        return lengthPrefix(UInt64(h.count)) + h + data
    }

    public static func make(header: String, data: [UInt8] = [], pad: Bool = true) -> [UInt8] {
        make(header: Array(header.utf8), data: data, pad: pad)
    }

    /// The 8 little-endian bytes of `n`.
    public static func lengthPrefix(_ n: UInt64) -> [UInt8] {
        withUnsafeBytes(of: n.littleEndian) { Array($0) }
    }

    /// A valid file image: the header `SafeTensorsWriter` writes for `specs`, then
    /// deterministic data.
    public static func valid(_ specs: [TensorSpec], metadata: [(String, String)]? = [("format", "pt")], seed: UInt64 = 1) throws -> [UInt8] {
        let header = try SafeTensorsWriter.header(for: specs, metadata: metadata)
        let size = specs.reduce(0) { $0 + $1.byteCount }
        return header + STRandom.bytes(size, seed: seed)
    }

    /// One header entry as JSON text, for hand-made (malformed) headers.
    public static func entry(_ name: String, _ dtype: String, _ shape: String, _ offsets: String) -> String {
        var key = ""
        JSONWriter.writeString(name, into: &key)
        return "\(key):{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    /// Writes `bytes` to `path` (not atomically; test fixtures only).
    public static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw IOError("create", path: path, errno: errno)
        }
    }
}

// MARK: - The malformed-file corpus

/// One file (or sharded directory) of the corpus and what reading it must do.
public struct STCorpusCase: Sendable {
    public enum Expectation: String, Sendable { case accept, reject }

    /// Short identifier, also the file or directory name.
    public var name: String
    /// Path relative to the corpus directory: the file, or the checkpoint directory.
    public var path: String
    public var expectation: Expectation
    /// The error code dsconvert must report (reject cases).
    public var code: SafeTensorsError.Code?
    /// The file the error must name, relative to the corpus directory.
    public var errorFile: String?
    /// The tensor the error must name, when one is concerned.
    public var tensor: String?
    /// Further text the error's description must contain (e.g. a missing shard's name).
    public var mentions: [String]
    /// True for single-file (format-level) cases, which the Python reference must also judge.
    public var reference: Bool
    /// A sharded checkpoint directory rather than a single file.
    public var isDirectory: Bool { !reference }
}

/// Generates the malformed-file corpus: one file per way a safetensors file (or a sharded
/// checkpoint directory) can be broken, plus valid controls, and `manifest.json` describing them
/// (read by Tests/Reference/check_corpus.py).
///
/// Script use: call `STCorpus.write(to: dir)` from anything linking TestSupport, or run the test
/// with `DSCONVERT_CORPUS_DIR=/some/dir swift test --filter MalformedCorpusTests`, which leaves
/// the corpus there.
public enum STCorpus {
    public static let manifestName = "manifest.json"

    /// Writes the corpus into `directory` (created if needed) and returns its cases.
    @discardableResult
    public static func write(to directory: String) throws -> [STCorpusCase] {
        try Sys.makeDirectory(directory)
        var cases: [STCorpusCase] = []
        for (c, content) in fileCases() {
            try STImage.write(content, to: directory + "/" + c.path)
            cases.append(c)
        }
        for (c, files) in try directoryCases() {
            let dir = directory + "/" + c.path
            try Sys.makeDirectory(dir)
            for (name, content) in files { try STImage.write(content, to: dir + "/" + name) }
            cases.append(c)
        }
        try STImage.write(Array(manifest(cases).utf8), to: directory + "/" + manifestName)
        return cases
    }

    /// `manifest.json`: `{"cases": [{"name", "path", "code", "tensor", "reference", "expect"}]}`.
    public static func manifest(_ cases: [STCorpusCase]) -> String {
        JSONWriter.pretty(.object([("cases", .array(cases.map { c in
            .object([
                ("name", .string(c.name)),
                ("path", .string(c.path)),
                ("code", c.code.map { .string($0.rawValue) } ?? .null),
                ("tensor", c.tensor.map { .string($0) } ?? .null),
                ("reference", .bool(c.reference)),
                ("expect", .string(c.expectation.rawValue)),
            ])
        }))]))
    }

    private static func reject(_ name: String, _ code: SafeTensorsError.Code, tensor: String? = nil, mentions: [String] = []) -> STCorpusCase {
        let path = name + ".safetensors"
        return STCorpusCase(name: name, path: path, expectation: .reject, code: code, errorFile: path, tensor: tensor, mentions: mentions, reference: true)
    }

    private static func data(_ n: Int) -> [UInt8] { STRandom.bytes(n, seed: UInt64(n) &* 7919) }

    /// `{entries}` as a file image with `dataBytes` bytes of data.
    private static func image(_ entries: [String], data dataBytes: Int) -> [UInt8] {
        STImage.make(header: "{" + entries.joined(separator: ",") + "}", data: data(dataBytes))
    }

    /// The single-file cases (all checked against the reference implementation too).
    public static func fileCases() -> [(STCorpusCase, [UInt8])] {
        let e = STImage.entry
        var out: [(STCorpusCase, [UInt8])] = []
        func add(_ c: STCorpusCase, _ bytes: [UInt8]) { out.append((c, bytes)) }

        // Valid controls: the reference must accept them, and so must dsconvert.
        let validSpecs = [
            TensorSpec(name: "model.embed_tokens.weight", dtype: .bf16, shape: [8, 4]),
            TensorSpec(name: "scalar", dtype: .f32, shape: []),
            TensorSpec(name: "empty", dtype: .f16, shape: [0, 3]),
            TensorSpec(name: "ids", dtype: .i64, shape: [3]),
            TensorSpec(name: "mask", dtype: .u8, shape: [5]),
        ]
        add(STCorpusCase(name: "valid", path: "valid.safetensors", expectation: .accept, code: nil, errorFile: nil, tensor: nil, mentions: [], reference: true),
            try! STImage.valid(validSpecs))
        // Entries out of data order in the JSON, zero-size tensors at both ends, no metadata.
        add(STCorpusCase(name: "valid-unordered", path: "valid-unordered.safetensors", expectation: .accept, code: nil, errorFile: nil, tensor: nil, mentions: [], reference: true),
            image([e("b", "U8", "[4]", "[4,8]"), e("z0", "F32", "[0]", "[0,0]"), e("a", "U8", "[2,2]", "[0,4]"), e("z1", "F32", "[2,0]", "[8,8]")], data: 8))

        // JSON whitespace before the object is accepted by the reference (0.8).
        add(STCorpusCase(name: "valid-leading-whitespace", path: "valid-leading-whitespace.safetensors", expectation: .accept, code: nil, errorFile: nil, tensor: nil, mentions: [], reference: true),
            STImage.make(header: " \n\t\r{" + e("a", "U8", "[2]", "[0,2]") + "}", data: data(2)))

        // Framing.
        add(reject("short-file", .truncated), [0x10, 0, 0, 0, 0])
        add(reject("header-length-beyond-file", .headerOutOfBounds), STImage.lengthPrefix(4096) + Array("{}      ".utf8) + data(16))
        add(reject("header-too-large", .headerTooLarge), STImage.lengthPrefix(100_000_001) + Array("{}      ".utf8) + data(48))
        add(reject("header-length-max", .headerTooLarge), STImage.lengthPrefix(.max) + Array("{}      ".utf8))
        add(reject("empty-header", .invalidHeader), STImage.lengthPrefix(0) + data(8))

        // JSON.
        add(reject("invalid-json", .invalidJSON), image([e("a", "U8", "[4]", "[0,4]"), ""], data: 4))  // trailing comma
        add(reject("invalid-utf8-name", .invalidJSON),
            STImage.make(header: Array("{\"a".utf8) + [0xC0, 0x80] + Array("b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}".utf8), data: data(4)))
        add(reject("surrogate-utf8-name", .invalidJSON),
            STImage.make(header: Array("{\"a".utf8) + [0xED, 0xA0, 0x80] + Array("\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}".utf8), data: data(4)))
        add(reject("lone-surrogate-escape", .invalidJSON), image(["\"w\\ud800\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}"], data: 4))
        add(reject("header-not-object", .invalidHeader), STImage.make(header: "[{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}]", data: data(4)))
        add(reject("header-byte-order-mark", .invalidHeader), STImage.make(header: Array("\u{FEFF}{}".utf8)))
        add(reject("header-nul-padding", .invalidJSON), STImage.make(header: Array("{}".utf8) + [0, 0, 0, 0, 0, 0], pad: false))
        add(reject("duplicate-tensor-name", .invalidJSON, mentions: ["w"]), image([e("w", "U8", "[4]", "[0,4]"), e("w", "U8", "[4]", "[4,8]")], data: 8))

        // Entries.
        add(reject("unknown-dtype", .unknownDType, tensor: "weird", mentions: ["F12"]), image([e("weird", "F12", "[4]", "[0,4]")], data: 4))
        add(reject("entry-not-object", .invalidHeader, tensor: "w"), image(["\"w\":[1,2]"], data: 0))
        add(reject("missing-offsets", .invalidHeader, tensor: "w"), image(["\"w\":{\"dtype\":\"U8\",\"shape\":[4]}"], data: 4))
        add(reject("negative-shape", .invalidShape, tensor: "w"), image([e("w", "U8", "[-4]", "[0,4]")], data: 4))
        add(reject("float-shape", .invalidShape, tensor: "w"), image([e("w", "U8", "[4.0]", "[0,4]")], data: 4))
        add(reject("exponent-shape", .invalidShape, tensor: "w"), image([e("w", "U8", "[4e0]", "[0,4]")], data: 4))
        add(reject("negative-zero-shape", .invalidShape, tensor: "w"), image([e("w", "U8", "[-0,4]", "[0,0]")], data: 0))
        add(reject("string-shape", .invalidShape, tensor: "w"), image([e("w", "U8", "[\"4\"]", "[0,4]")], data: 4))
        add(reject("shape-overflow", .invalidShape, tensor: "w"), image([e("w", "U8", "[4294967296,4294967296]", "[0,4]")], data: 4))
        add(reject("sub-byte-not-whole", .invalidShape, tensor: "w"), image([e("w", "F4", "[3]", "[0,2]")], data: 2))
        add(reject("size-mismatch", .sizeMismatch, tensor: "w", mentions: ["20", "24"]), image([e("w", "F32", "[2,3]", "[0,20]")], data: 20))
        add(reject("begin-after-end", .invalidHeader, tensor: "w"), image([e("w", "U8", "[0]", "[8,4]")], data: 8))
        add(reject("negative-offset", .invalidHeader, tensor: "w"), image([e("w", "U8", "[4]", "[-1,3]")], data: 4))
        add(reject("negative-zero-offset", .invalidHeader, tensor: "w"), image([e("w", "U8", "[4]", "[-0,4]")], data: 4))
        add(reject("three-offsets", .invalidHeader, tensor: "w"), image([e("w", "U8", "[4]", "[0,4,4]")], data: 4))

        // Layout of the data buffer.
        add(reject("overlap", .overlap, tensor: "b"), image([e("a", "U8", "[8]", "[0,8]"), e("b", "U8", "[8]", "[4,12]")], data: 12))
        add(reject("hole", .hole, tensor: "b"), image([e("a", "U8", "[4]", "[0,4]"), e("b", "U8", "[4]", "[8,12]")], data: 12))
        add(reject("hole-at-start", .hole, tensor: "a"), image([e("a", "U8", "[4]", "[4,8]")], data: 8))
        add(reject("truncated-data", .offsetOutOfBounds, tensor: "b"), image([e("a", "U8", "[4]", "[0,4]"), e("b", "U8", "[16]", "[4,20]")], data: 10))
        add(reject("trailing-bytes", .notFullyCovered), image([e("a", "U8", "[4]", "[0,4]")], data: 8))
        add(reject("data-without-tensors", .notFullyCovered), image([], data: 8))

        // Metadata.
        add(reject("metadata-not-string", .invalidMetadata, mentions: ["step"]), image(["\"__metadata__\":{\"format\":\"pt\",\"step\":5}", e("a", "U8", "[4]", "[0,4]")], data: 4))
        add(reject("metadata-not-object", .invalidMetadata), image(["\"__metadata__\":[\"pt\"]", e("a", "U8", "[4]", "[0,4]")], data: 4))
        return out
    }

    /// The sharded-checkpoint cases: (case, files in its directory).
    public static func directoryCases() throws -> [(STCorpusCase, [(String, [UInt8])])] {
        let s1 = "model-00001-of-00002.safetensors"
        let s2 = "model-00002-of-00002.safetensors"
        let idx = SafeTensorsIndex.fileName
        func shard(_ names: [String], seed: UInt64) throws -> [UInt8] {
            try STImage.valid(names.map { TensorSpec(name: $0, dtype: .bf16, shape: [2, 2]) }, seed: seed)
        }
        func index(_ map: [(String, String)]) -> [UInt8] {
            SafeTensorsIndex(metadata: [], weightMap: map).serialized(totalSize: 8 * map.count)
        }
        func dirCase(_ name: String, _ expectation: STCorpusCase.Expectation, _ code: SafeTensorsError.Code?, file: String?, tensor: String?, mentions: [String] = []) -> STCorpusCase {
            STCorpusCase(name: name, path: name, expectation: expectation, code: code, errorFile: file.map { name + "/" + $0 }, tensor: tensor, mentions: mentions, reference: false)
        }
        let good = [("a", s1), ("b", s2), ("c", s2)]
        return [
            (dirCase("sharded-valid", .accept, nil, file: nil, tensor: nil),
             [(s1, try shard(["a"], seed: 1)), (s2, try shard(["b", "c"], seed: 2)), (idx, index(good))]),
            (dirCase("sharded-missing-shard", .reject, .missingShard, file: idx, tensor: "b", mentions: [s2]),
             [(s1, try shard(["a"], seed: 1)), (idx, index(good))]),
            (dirCase("sharded-tensor-absent", .reject, .missingTensor, file: s2, tensor: "c"),
             [(s1, try shard(["a"], seed: 1)), (s2, try shard(["b"], seed: 2)), (idx, index(good))]),
            (dirCase("sharded-wrong-shard", .reject, .missingTensor, file: s2, tensor: "c", mentions: [s1]),
             [(s1, try shard(["a", "c"], seed: 1)), (s2, try shard(["b"], seed: 2)), (idx, index(good))]),
            (dirCase("sharded-duplicate-tensor", .reject, .duplicateTensor, file: s2, tensor: "a", mentions: [s1]),
             [(s1, try shard(["a"], seed: 1)), (s2, try shard(["a", "b", "c"], seed: 2)), (idx, index(good))]),
            (dirCase("sharded-unlisted-tensor", .reject, .unlistedTensor, file: s2, tensor: "x", mentions: [idx]),
             [(s1, try shard(["a"], seed: 1)), (s2, try shard(["b", "c", "x"], seed: 2)), (idx, index(good))]),
            (dirCase("sharded-invalid-index-json", .reject, .indexInvalid, file: idx, tensor: nil),
             [(s1, try shard(["a"], seed: 1)), (idx, Array("{\"metadata\":{\"total_size\":8},\"weight_map\":{\"a\":\"\(s1)\",}}".utf8))]),
            (dirCase("sharded-index-without-weight-map", .reject, .indexInvalid, file: idx, tensor: nil, mentions: ["weight_map"]),
             [(s1, try shard(["a"], seed: 1)), (idx, Array("{\"metadata\":{\"total_size\":8}}".utf8))]),
            (dirCase("sharded-index-path-escape", .reject, .indexInvalid, file: idx, tensor: "a"),
             [(s1, try shard(["a"], seed: 1)), (idx, index([("a", "../" + s1)]))]),
            (dirCase("sharded-bad-shard-inside", .reject, .sizeMismatch, file: s2, tensor: "b"),
             [(s1, try shard(["a"], seed: 1)), (s2, image([STImage.entry("b", "BF16", "[2,2]", "[0,6]")], data: 6)), (idx, index([("a", s1), ("b", s2)]))]),
        ]
    }
}

// MARK: - Running the Python reference scripts

/// Why a reference script could not give an answer. Its description tells the user how to get
/// the Python side installed.
public struct STReferenceFailure: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum STPython {
    public static let installHint =
        "the safetensors tests compare against Python's safetensors (with numpy and ml_dtypes): run `make test`, which installs them"

    /// Runs `python3 Tests/Reference/<script> <arguments>` and returns its standard output.
    /// The interpreter is `$DSCONVERT_PYTHON` when set, else `python3` from PATH. Throws (the
    /// test fails; it is never skipped) when Python or a package is missing or the script fails.
    public static func run(_ script: String, _ arguments: [String]) throws -> String {
        let scriptPath = STFixtures.referenceDirectory + "/" + script
        guard Sys.exists(scriptPath) else { throw STReferenceFailure("reference script \(scriptPath) is missing") }
        let python = ProcessInfo.processInfo.environment["DSCONVERT_PYTHON"] ?? "python3"
        if ReferenceServer.enabled {
            let r: ReferenceServer.Reply
            do { r = try ReferenceServer.shared.run(scriptPath, arguments) } catch {
                throw STReferenceFailure("\(error)\n\(installHint)")
            }
            guard r.status == 0 else {
                throw STReferenceFailure("\(python) \(script) exited with status \(r.status): \(r.stderr.suffix(4000))\n\(installHint)")
            }
            return r.stdout
        }
        let scratch = try STTemporaryDirectory("st-python")
        let outPath = scratch.file("stdout"), errPath = scratch.file("stderr")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            throw STReferenceFailure("cannot capture the output of \(script)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, scriptPath] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: STFixtures.packageRoot)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            throw STReferenceFailure("cannot start \(python) (\(error)); \(installHint)")
        }
        process.waitUntilExit()
        try? out.close()
        try? err.close()
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let status = process.terminationStatus
            let why = status == 127 ? "\(python) was not found" : "\(python) \(script) exited with status \(status)"
            throw STReferenceFailure("\(why): \(stderr.suffix(4000))\n\(installHint)")
        }
        return stdout
    }

    /// Runs a script and parses its standard output as JSON.
    public static func runJSON(_ script: String, _ arguments: [String]) throws -> JSONValue {
        let text = try run(script, arguments)
        do {
            return try JSONParser.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw STReferenceFailure("\(script) printed invalid JSON (\(error)): \(text.prefix(2000))")
        }
    }
}

// MARK: - Reference dumps

/// What a reference script wrote with `st_common.DumpWriter`: every tensor's file, name, dtype,
/// shape and raw bytes, and every file's metadata.
public struct STReferenceDump {
    public struct Tensor {
        public var file: String
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var range: Range<Int>
    }

    public var tensors: [Tensor]
    /// File name → metadata (nil when the file has none).
    public var metadata: [String: [String: String]?]
    public var blob: [UInt8]

    /// Reads `prefix.json` and `prefix.bin`.
    public init(prefix: String) throws {
        let json = try JSONParser.parse(Sys.readFile(prefix + ".json"))
        blob = try Sys.readFile(prefix + ".bin")
        metadata = [:]
        for (file, info) in json["files"]?.objectMembers ?? [] {
            if let m = info["metadata"]?.objectMembers {
                metadata[file] = Dictionary(uniqueKeysWithValues: m.map { ($0.0, $0.1.stringValue ?? "<not a string>") })
            } else {
                metadata[file] = .some(nil)
            }
        }
        tensors = try (json["tensors"]?.arrayValue ?? []).map { t in
            guard let file = t["file"]?.stringValue, let name = t["name"]?.stringValue, let dtype = t["dtype"]?.stringValue,
                  let shape = t["shape"]?.arrayValue?.compactMap(\.intValue), let offset = t["offset"]?.intValue,
                  let length = t["length"]?.intValue
            else { throw STReferenceFailure("malformed dump entry \(JSONWriter.compact(t))") }
            return Tensor(file: file, name: name, dtype: dtype, shape: shape, range: offset..<offset + length)
        }
    }

    public func bytes(_ t: Tensor) -> ArraySlice<UInt8> { blob[t.range] }

    /// Every difference between this dump and what dsconvert reads from `checkpoint`: missing or
    /// extra tensors, dtype, shape, byte and metadata differences. Empty when they agree bit for bit.
    public func differences(from checkpoint: SafeTensorsCheckpoint) throws -> [String] {
        var problems: [String] = []
        var seen = Set<String>()
        let shardIndex = Dictionary(uniqueKeysWithValues: checkpoint.shards.enumerated().map { ($1.name, $0) })
        var files: [Int: SafeTensorsFile] = [:]
        for t in tensors {
            let key = t.file + "/" + t.name
            seen.insert(key)
            guard let si = shardIndex[t.file] else { problems.append("\(t.file): not a shard of the checkpoint"); continue }
            guard let loc = checkpoint.location(t.name), loc.shard == si else {
                problems.append("\(key): not found by dsconvert in that file")
                continue
            }
            if files[si] == nil { files[si] = try checkpoint.open(shard: si) }
            let view = try files[si]!.tensor(t.name)
            if view.dtype.rawValue != t.dtype { problems.append("\(key): dtype \(view.dtype.rawValue), reference \(t.dtype)") }
            if view.shape != t.shape { problems.append("\(key): shape \(view.shape), reference \(t.shape)") }
            let expected = bytes(t)
            if view.bytes.count != expected.count || !view.bytes.elementsEqual(expected) {
                let firstDiff = zip(view.bytes, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                problems.append("\(key): \(view.bytes.count) bytes differ from the reference's \(expected.count) (first difference at \(firstDiff.map(String.init) ?? "the end"))")
            }
        }
        for (si, shard) in checkpoint.shards.enumerated() {
            for t in shard.header.tensors where !seen.contains(shard.name + "/" + t.name) {
                problems.append("\(shard.name)/\(t.name): read by dsconvert (shard \(si)) but not by the reference")
            }
            if let expected = metadata[shard.name] {
                let mine = shard.header.metadata.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) }
                if mine != expected {
                    problems.append("\(shard.name): metadata \(String(describing: mine)), reference \(String(describing: expected))")
                }
            } else {
                problems.append("\(shard.name): not read by the reference")
            }
        }
        return problems
    }
}
