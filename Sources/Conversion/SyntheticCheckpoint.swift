import Foundation
import JSON
import Checkpoint
import Numerics
import SafeTensors
import SystemIO

/// Writes a random checkpoint of a `ModelBlueprint`: BF16 values ~ N(0, std) (F32 for the router
/// bias, as in the release), norms 1.0, from a seed, streamed in bounded chunks.
public enum SyntheticCheckpoint {
    public struct Options: Sendable {
        public var seed: UInt64 = 0
        public var std: Float = 0.02
        /// Number of files; when nil, `shardSize` decides, and when both are nil the release's
        /// count (163 for deepseek-v3) or 5 GB files.
        public var shards: Int?
        public var shardSize: Int?
        /// Headers only: every file is its real header followed by a hole of its data's size
        /// (ftruncate), so the real 671B layout can be planned and inspected without its bytes.
        public var sparse = false
        public init() {}
    }

    /// Writes `blueprint` into `directory` (config.json, shards, index). Returns the file names.
    @discardableResult
    public static func write(_ blueprint: ModelBlueprint, to directory: String, options: Options = Options(),
                             progress: ((Int, Int) -> Void)? = nil) throws -> [String] {
        try Sys.makeDirectory(directory)
        let total = blueprint.totalBytes
        func bySize(_ s: Int) -> Int { Int((Double(total) / Double(max(1, s))).rounded(.up)) }
        let wanted = options.shards ?? options.shardSize.map(bySize) ?? blueprint.releaseShardCount ?? bySize(5_000_000_000)
        let count = max(1, min(blueprint.tensors.count, wanted))
        // Greedy assignment in order, aiming at total / count bytes per file.
        var groups: [[Int]] = [[]]
        var size = 0
        let target = Double(total) / Double(count)
        for (i, t) in blueprint.tensors.enumerated() {
            let remainingTensors = blueprint.tensors.count - i
            let remainingGroups = count - groups.count
            if !groups[groups.count - 1].isEmpty && remainingGroups > 0 &&
                (Double(size + t.byteCount / 2) > target || remainingTensors <= remainingGroups) {
                groups.append([])
                size = 0
            }
            groups[groups.count - 1].append(i)
            size += t.byteCount
        }
        let n = groups.count
        let digitsTotal = blueprint.kind == .deepseekV3 && n == blueprint.releaseShardCount ? 6 : 5
        var names: [String] = []
        var weightMap: [(String, String)] = []
        var done = 0
        let chunk = 1 << 22  // elements generated per step
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk * 4, alignment: 64)
        defer { buffer.deallocate() }
        for (g, members) in groups.enumerated() {
            let name = n == 1 ? "model.safetensors" : String(format: "model-%05d-of-%0\(digitsTotal)d.safetensors", g + 1, n)
            names.append(name)
            let specs = members.map { blueprint.tensors[$0] }
            if options.sparse {
                for spec in specs { weightMap.append((spec.name, name)) }
                try writeSparse(specs, to: directory + "/" + name)
                done += specs.reduce(0) { $0 + $1.byteCount }
                progress?(done, total)
                continue
            }
            let writer = try SafeTensorsWriter(path: directory + "/" + name, tensors: specs)
            for (i, spec) in zip(members, specs) {
                weightMap.append((spec.name, name))
                let isNorm = spec.name.hasSuffix("norm.weight")
                let isScale = spec.name.hasSuffix(".weight_scale_inv")
                var offset = 0
                while offset < spec.elementCount {
                    let m = min(chunk, spec.elementCount - offset)
                    fill(buffer, count: m, dtype: spec.dtype, tensorSeed: mix(options.seed, UInt64(i)), first: offset, std: options.std, constant: isNorm ? 1 : isScale ? 1.0 / 800 : nil)
                    try writer.write(spec.name, UnsafeRawBufferPointer(start: buffer, count: m * spec.dtype.byteSize!))
                    offset += m
                    done += m * spec.dtype.byteSize!
                    progress?(done, total)
                }
            }
            try writer.finish()
        }
        if n > 1 {
            let idx = SafeTensorsIndex(metadata: [], weightMap: weightMap)
            try AtomicFile.write(idx.serialized(totalSize: total), to: directory + "/" + SafeTensorsIndex.fileName)
        }
        try AtomicFile.write(Array(JSONWriter.pretty(blueprint.config).utf8), to: directory + "/config.json")
        return names
    }

    /// A safetensors file of `specs` whose data is a hole: the header, then the file extended
    /// to its full size without writing (a sparse file on every Linux file system).
    static func writeSparse(_ specs: [TensorSpec], to path: String) throws {
        let header = try SafeTensorsWriter.header(for: specs, metadata: [("format", "pt")], file: path)
        let size = header.count + specs.reduce(0) { $0 + $1.byteCount }
        guard FileManager.default.createFile(atPath: path, contents: Data(header)), let h = FileHandle(forWritingAtPath: path) else {
            throw IOError("create", path: path, errno: errno)
        }
        defer { try? h.close() }
        try h.truncate(atOffset: UInt64(size))
    }

    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var z = a &+ 0x9E37_79B9_7F4A_7C15 &* (b &+ 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fills `count` values starting at element `first` of a tensor; each 64 Ki-element block has
    /// its own generator, so the values do not depend on the thread count or chunking.
    static func fill(_ p: UnsafeMutableRawPointer, count: Int, dtype: DType, tensorSeed: UInt64, first: Int, std: Float, constant: Float?) {
        let block = 1 << 16
        precondition(first % block == 0)
        let blocks = (count + block - 1) / block
        Parallel.forEach(blocks) { b in
            let lo = b * block, hi = min(count, lo + block)
            var state = mix(tensorSeed, UInt64((first + lo) / block))
            var i = lo
            while i < hi {
                let v0: Float, v1: Float
                if let c = constant {
                    v0 = c; v1 = c
                } else {
                    // Box–Muller from two 24-bit uniforms in (0, 1].
                    state = state &+ 0x9E37_79B9_7F4A_7C15
                    let r = mix(state, 0)
                    let u1 = (Float(r >> 40) + 1) * 0x1p-24
                    let u2 = Float((r >> 16) & 0xFF_FFFF) * 0x1p-24
                    let rad = (-2 * logf(u1)).squareRoot() * std
                    v0 = rad * cosf(2 * .pi * u2)
                    v1 = rad * sinf(2 * .pi * u2)
                }
                store(v0, dtype, p, i)
                if i + 1 < hi { store(v1, dtype, p, i + 1) }
                i += 2
            }
        }
    }

    @inline(__always) static func store(_ v: Float, _ dtype: DType, _ p: UnsafeMutableRawPointer, _ i: Int) {
        switch dtype {
        case .f32: p.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
        case .f16: p.storeBytes(of: FloatBits.f32ToF16(v), toByteOffset: i * 2, as: UInt16.self)
        // Block-FP8 weights: w · 800 in E4M3 (saturating), with every weight_scale_inv 1/800.
        case .f8e4m3: p.storeBytes(of: FloatBits.f32ToE4M3Saturating(v * 800), toByteOffset: i, as: UInt8.self)
        default: p.storeBytes(of: FloatBits.f32ToBF16(v), toByteOffset: i * 2, as: UInt16.self)
        }
    }
}
