import JSON
import Numerics
import SafeTensors

/// A stable fingerprint of everything, besides the input tensors' bytes, that decides the bytes a
/// conversion writes: the arithmetic version, the command and its options (scheme, granularity,
/// block size, weight-only, ignore list, target dtype, shard size), the config.json fields the
/// conversion reads (`torch_dtype` / `dtype`, the input's `quantization_config`, `model_type`,
/// `architectures`), the config.json it writes, and the plan itself: the file format, every
/// output file's (relative) name and, for every tensor in it, the region read, how it is made
/// and the name, dtype and shape of what it produces.
///
/// Resume records and merge-index compare this digest, never the human-readable settings
/// summary: two runs whose outputs could differ in any byte have different digests (changing
/// `torch_dtype` between two jobs, for instance, changes the scales' dtype).
///
/// The encoding is XXH64 (seed 0) over a sequence of length-prefixed fields (8-byte
/// little-endian length, then the UTF-8 bytes); JSON values enter as their compact text with
/// object keys sorted recursively. It depends on nothing that varies between machines or runs
/// (paths, times, thread counts), so every job of a job array computes the same value.
public enum SettingsDigest {
    /// Raised whenever dsconvert's arithmetic changes the bytes it writes for the same input and
    /// options, so that outputs of an older version are never resumed into a newer one.
    public static let arithmeticVersion = 1

    /// The digest of a plan made by `command` with `options`, from a checkpoint whose config.json
    /// is `inputConfig` (nil when it has none).
    public static func compute(command: String, options: [(String, JSONValue)], inputConfig: JSONValue?, plan: ConversionPlan) -> UInt64 {
        var e = Encoder()
        e.add("dsconvert settings")
        e.add(String(arithmeticVersion))
        e.add(command)
        e.add(.object(options))
        let used = ["torch_dtype", "dtype", "quantization_config", "model_type", "architectures"]
        e.add(.object(used.map { ($0, inputConfig?[$0] ?? .null) }))
        e.add(plan.format.name)
        e.add(plan.config ?? .null)
        e.add(plan.writesIndex ? "index" : "no index")
        e.add(.object(plan.indexMetadata))
        e.add(String(plan.shards.count))
        for shard in plan.shards {
            e.add(shard.name)
            e.add(String(shard.tensors.count))
            for t in shard.tensors {
                e.add(t.source)
                e.add(t.region.map(\.description) ?? "whole")
                e.add(describe(t.action))
                // The calibrated input scale (static activations only: other digests are unchanged).
                if let a = t.inputScale { e.add("input_scale " + String(a.bitPattern, radix: 16)) }
                // SmoothQuant's fold (only with factors: other digests are unchanged).
                if let f = t.fold {
                    let h = f.scales.withUnsafeBytes { XXH64.hash($0) }
                    e.add("fold \(f.kind.rawValue) \(f.norm) \(f.scales.count) " + XXH64.hex(h))
                }
                e.add(String(t.outputs.count))
                for o in t.outputs {
                    e.add(o.name)
                    e.add(o.dtype.rawValue)
                    e.add(o.shape.map(String.init).joined(separator: ","))
                }
            }
        }
        // Files a layout adds beside the tensors (rank.json); absent for other plans, whose
        // digests are unchanged by this field.
        if !plan.extraFiles.isEmpty {
            e.add("extra files " + String(plan.extraFiles.count))
            for f in plan.extraFiles { e.add(f.name); e.add(bytes: f.bytes) }
        }
        return e.hash.finalize()
    }

    /// 16 lowercase hex digits.
    public static func hex(_ digest: UInt64) -> String { XXH64.hex(digest) }

    static func describe(_ action: TensorPlan.Action) -> String {
        switch action {
        case .copy: return "copy"
        case let .quantize(s): return "quantize " + describe(s)
        case let .dequantize(q, d): return "dequantize " + describe(q) + " to " + d.rawValue
        case let .requantize(q, s, d): return "requantize " + describe(q) + " via " + d.rawValue + " " + describe(s)
        }
    }

    static func describe(_ s: QuantizationScheme) -> String {
        "\(s.format.rawValue) \(s.granularity.rawValue) block=\(s.blockSize) weight-only=\(s.weightOnly)" + (s.staticActivations ? " act=static" : "")
    }

    static func describe(_ q: QuantizedWeight) -> String {
        let g = q.encoding.scale.description
        return "[\(q.weight.dtype.rawValue) \(g) scale \(q.scale.name) \(q.scale.dtype.rawValue) extras \(q.extras.map(\.name).joined(separator: ","))]"
    }

    /// Length-prefixed fields into XXH64, gathered in a buffer that is hashed a megabyte at a
    /// time (the digest of a 46k-tensor plan is some 400k small fields: one streaming update
    /// each cost more than the hashing).
    struct Encoder {
        private var state = XXH64()
        private var buffer: [UInt8] = []

        init() { buffer.reserveCapacity(Self.flushAt + 4096) }

        private static let flushAt = 1 << 20

        private mutating func length(_ n: Int) {
            withUnsafeBytes(of: UInt64(n).littleEndian) { buffer.append(contentsOf: $0) }
        }

        private mutating func flushIfFull() {
            if buffer.count >= Self.flushAt { flush() }
        }

        private mutating func flush() {
            buffer.withUnsafeBytes { state.update($0) }
            buffer.removeAll(keepingCapacity: true)
        }

        mutating func add(_ s: String) {
            var s = s
            s.withUTF8 { b in
                length(b.count)
                buffer.append(contentsOf: b)
            }
            flushIfFull()
        }

        mutating func add(_ v: JSONValue) { add(JSONWriter.compact(SettingsDigest.canonical(v))) }

        /// A field of bytes (a file's contents), as `add` of a string holding them.
        mutating func add(bytes: [UInt8]) {
            length(bytes.count)
            flush()
            bytes.withUnsafeBytes { state.update($0) }
        }

        /// The digest of every field added.
        var hash: XXH64 {
            mutating get {
                flush()
                return state
            }
        }
    }

    /// `v` with object members sorted by key, recursively.
    static func canonical(_ v: JSONValue) -> JSONValue {
        switch v {
        case let .object(m): return .object(m.map { ($0.0, canonical($0.1)) }.sorted { $0.0 < $1.0 })
        case let .array(a): return .array(a.map(canonical))
        default: return v
        }
    }
}
