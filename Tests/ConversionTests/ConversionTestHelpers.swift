import Foundation
import TestSupport
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

/// Paths, conversion shortcuts and comparisons for the conversion tests (prefixed `CV` so nothing
/// collides with TestSupport).
enum CV {
    /// The package root, from this file's path: `<root>/Tests/ConversionTests/<file>`.
    static let root = STFixtures.packageRoot
    static let deepseek = root + "/Samples/deepseek-v3-tiny"
    static let qwen2 = root + "/Samples/qwen2-tiny"
    static let llama = root + "/Samples/llama-tiny"
    static let deepseekShards = (1...5).map { "model-0000\($0)-of-00005.safetensors" }

    /// Runs `Tests/Reference/shard_gather.py` on a shard output: every rank gathered back and
    /// compared bit for bit with `input`; `layers` are the expected stages, written by hand;
    /// `format` is the rank files' (`safetensors` folders or `dspack` packs).
    static func gatherShards(_ input: String, _ out: String, tp: Int, pp: Int = 1, ep: Int = 1, placement: String = "contiguous",
                             keepMTP: Bool = false, layers: [[Int]], format: String = "safetensors",
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let spec: JSONValue = .object([
            ("tp", .int(tp)), ("pp", .int(pp)), ("ep", .int(ep)), ("placement", .string(placement)), ("keep_mtp", .bool(keepMTP)),
            ("layers", .array(layers.map { .array($0.map { .int($0) }) })), ("format", .string(format)),
        ])
        let path = out + ".spec.json"
        try writeJSON(spec, to: path)
        XCTAssertNoThrow(try PythonReference.run("shard_gather.py", [input, out, path]), "tp \(tp) pp \(pp) ep \(ep) \(format)", file: file, line: line)
    }

    // MARK: Running conversions through the library

    static func scheme(_ format: QuantizationScheme.Format = .fp8, _ granularity: QuantizationScheme.Granularity? = nil) -> QuantizationScheme {
        try! QuantizationScheme(format: format, granularity: granularity)
    }

    @discardableResult
    static func quantize(_ input: String, _ output: String, _ scheme: QuantizationScheme = CV.scheme(), ignore: [String] = [],
                         shardSize: Int? = nil, jobs: Int = 1, jobIndex: Int = 0,
                         observer: ConversionObserver = SilentObserver()) throws -> ConversionReport {
        let ckpt = try Checkpoint(path: input)
        let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: ignore, shardSize: shardSize)
        return try ConversionRunner(checkpoint: ckpt, plan: plan,
                                    options: ConversionOptions(outputDirectory: output, jobs: jobs, jobIndex: jobIndex),
                                    observer: observer).run()
    }

    @discardableResult
    static func dequantize(_ input: String, _ output: String, to dtype: DType = .bf16, shardSize: Int? = nil,
                           jobs: Int = 1, jobIndex: Int = 0, observer: ConversionObserver = SilentObserver()) throws -> ConversionReport {
        let ckpt = try Checkpoint(path: input)
        let plan = try PlanBuilder.dequantize(ckpt, to: dtype, shardSize: shardSize)
        return try ConversionRunner(checkpoint: ckpt, plan: plan,
                                    options: ConversionOptions(outputDirectory: output, jobs: jobs, jobIndex: jobIndex),
                                    observer: observer).run()
    }

    /// Writes a llama-layout checkpoint of `blueprint`'s shapes in `shards` files, every value
    /// BF16 0.01 (fast to write: for tests that need a conversion to take a while, not numbers).
    static func writeConstantCheckpoint(_ blueprint: ModelBlueprint, to dir: String, shards: Int = 1) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeJSON(blueprint.config, to: dir + "/config.json")
        let per = (blueprint.tensors.count + shards - 1) / shards
        var weightMap: [(String, String)] = []
        for k in 0..<shards {
            let specs = Array(blueprint.tensors[min(k * per, blueprint.tensors.count)..<min((k + 1) * per, blueprint.tensors.count)])
            let name = shards == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", k + 1, shards)
            let w = try SafeTensorsWriter(path: dir + "/" + name, tensors: specs)
            for spec in specs {
                precondition(spec.dtype == .bf16, "constant checkpoints are BF16")
                let values = [UInt16](repeating: UInt16(0x3C24).littleEndian, count: spec.byteCount / 2)
                try values.withUnsafeBytes { try w.write(spec.name, $0) }
                weightMap.append((spec.name, name))
            }
            try w.finish()
        }
        if shards > 1 {
            let total = blueprint.tensors.reduce(0) { $0 + $1.byteCount }
            try write(SafeTensorsIndex(metadata: [], weightMap: weightMap).serialized(totalSize: total), to: dir + "/model.safetensors.index.json")
        }
    }

    // MARK: Files

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func write(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    static func json(_ path: String) throws -> JSONValue { try JSONParser.parse(bytes(path)) }

    static func writeJSON(_ v: JSONValue, to path: String) throws { try write(Array(JSONWriter.pretty(v).utf8), to: path) }

    /// Names in a directory, hidden ones included, sorted.
    static func files(_ dir: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

    /// The names in an output folder without dsconvert's own `.dsconvert/` (which a completed
    /// conversion keeps: the lock file and the manifest of what it wrote).
    static func modelFiles(_ dir: String) throws -> [String] { try files(dir).filter { $0 != ".dsconvert" } }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Copies the regular files of `source` into `destination` (created), writable.
    static func copyDirectory(_ source: String, to destination: String) throws {
        try STFixtures.copyDirectory(source, to: destination)
    }

    /// Every file under `dir` whose name marks a dsconvert temporary (`.dsconvert-tmp-…`), recursively.
    static func temporaries(_ dir: String) -> [String] {
        let e = FileManager.default.enumerator(atPath: dir)
        var out: [String] = []
        while let p = e?.nextObject() as? String {
            if (p as NSString).lastPathComponent.hasPrefix(".dsconvert-tmp-") { out.append(p) }
        }
        return out
    }

    /// Asserts that two directories hold the same top-level files (names, hidden ones included)
    /// with the same bytes.
    static func assertSameDirectory(_ a: String, _ b: String, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) throws {
        let fa = try files(a), fb = try files(b)
        XCTAssertEqual(fa, fb, "file lists differ \(message)", file: file, line: line)
        for name in Set(fa).intersection(fb).sorted() {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: a + "/" + name, isDirectory: &isDir), isDir.boolValue { continue }
            if try bytes(a + "/" + name) != bytes(b + "/" + name) {
                XCTFail("\(name) differs between \(a) and \(b) \(message)", file: file, line: line)
            }
        }
    }

    // MARK: Tensors

    struct Tensor {
        var info: TensorInfo
        var bytes: [UInt8]
        var file: String
        var shape: [Int] { info.shape }
        var dtype: DType { info.dtype }

        /// Element i as f32 (BF16, F16, F32, E4M3).
        func float(_ i: Int) -> Float {
            switch info.dtype {
            case .bf16: return FloatBits.bf16ToF32(UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8)
            case .f16: return FloatBits.f16ToF32(UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8)
            case .f32: return Float(bitPattern: UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24)
            case .f8e4m3: return FloatBits.e4m3ToF32(bytes[i])
            default: fatalError("no float view of \(info.dtype)")
            }
        }
        var floats: [Float] { (0..<info.elementCount).map(float) }
    }

    /// Every tensor of a checkpoint directory (or file), by name.
    static func tensors(_ path: String) throws -> [String: Tensor] {
        let w = try SafeTensorsCheckpoint(path: path)
        var out: [String: Tensor] = [:]
        for i in w.shards.indices {
            let f = try w.open(shard: i)
            for t in f.tensors { out[t.name] = Tensor(info: t, bytes: Array(f.view(t).bytes), file: w.shards[i].name) }
        }
        return out
    }

    /// Writes a checkpoint file of `tensors` (in this order) with `format: pt` metadata.
    static func writeSafetensors(_ path: String, _ tensors: [(TensorSpec, [UInt8])]) throws {
        let w = try SafeTensorsWriter(path: path, tensors: tensors.map(\.0))
        for (s, b) in tensors { try w.write(s.name, b) }
        try w.finish()
    }

    /// Object keys sorted, recursively (for comparing JSON where member order does not matter).
    static func canonical(_ v: JSONValue) -> JSONValue {
        switch v {
        case let .object(m): return .object(m.map { ($0.0, canonical($0.1)) }.sorted { $0.0 < $1.0 })
        case let .array(a): return .array(a.map(canonical))
        default: return v
        }
    }
}

/// A fresh directory, removed on deinit (TestSupport's, shared by every test target).
typealias CVTempDir = STTemporaryDirectory

/// Records what a run reports, and can act after the n-th tensor.
final class RecordingObserver: ConversionObserver {
    var tensors: [String] = []
    var shardsDone: [String] = []
    var skipped: [String] = []
    var notes: [String] = []
    var afterTensor: ((Int) -> Void)?

    func started(shards: Int, tensors: Int, inputBytes: Int) {}
    func skipped(shard: String, tensors: Int, inputBytes: Int) { skipped.append(shard) }
    func tensorDone(_ name: String, inputBytes: Int) {
        tensors.append(name)
        afterTensor?(tensors.count)
    }
    func shardDone(_ name: String, bytes: Int) { shardsDone.append(name) }
    func note(_ message: String) { notes.append(message) }
}

/// The DeepSeek block-FP8 reference, element by element in plain Swift (docs/reference.md): per
/// 128×128 block, amax = max |w| (f32), scale = max(amax, 1e-12) / 448, q = E4M3(clamp(w / scale))
/// with a true f32 division. Independent of BlockFP8 and the C kernels.
func referenceBlockFP8(_ w: [Float], rows: Int, cols: Int, block: Int = 128) -> (q: [UInt8], scales: [Float]) {
    let rb = (rows + block - 1) / block, cb = (cols + block - 1) / block
    var scales = [Float](repeating: 0, count: rb * cb)
    var q = [UInt8](repeating: 0, count: rows * cols)
    for br in 0..<rb {
        for bc in 0..<cb {
            var amax: Float = 0
            for r in br * block..<min(rows, (br + 1) * block) {
                for c in bc * block..<min(cols, (bc + 1) * block) { amax = max(amax, abs(w[r * cols + c])) }
            }
            let s = max(amax, 1e-12) / 448
            scales[br * cb + bc] = s
            for r in br * block..<min(rows, (br + 1) * block) {
                for c in bc * block..<min(cols, (bc + 1) * block) { q[r * cols + c] = FloatBits.f32ToE4M3Saturating(w[r * cols + c] / s) }
            }
        }
    }
    return (q, scales)
}

extension Array where Element == Float {
    /// Little-endian f32 bytes.
    var f32Bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 4)
        for v in self { let b = v.bitPattern; out += [UInt8(b & 0xFF), UInt8(b >> 8 & 0xFF), UInt8(b >> 16 & 0xFF), UInt8(b >> 24)] }
        return out
    }
}
