import ArgumentParser
import Checkpoint
import Conversion
import Foundation
import JSON
import Numerics
import Quantization
import SafeTensors
import SystemIO

extension DSConvert {
    /// Micro-benchmarks behind Scripts/bench.sh (which adds the cat / cp / numpy / torch references).
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmarks: `kernel` (BF16 → block FP8 vs memcpy) and `read` (iterate all tensors of a checkpoint).",
            subcommands: [Kernel.self, Read.self])

        struct Kernel: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "BF16 → FP8 E4M3 block-128 quantization of one large tensor, against memcpy of the same bytes.")

            @Option(name: .long, help: "Tensor size in MiB of BF16 input.")
            var mib: Int = 1024

            @Option(name: .long, help: "Repetitions (best time is reported).")
            var repeats: Int = 5

            @OptionGroup var common: CommonOptions

            func run() throws {
                try common.apply()
                let cols = 7168
                let rows = max(128, (mib << 20) / (cols * 2) / 128 * 128)
                let n = rows * cols
                let src = UnsafeMutableRawPointer.allocate(byteCount: n * 2, alignment: 64)
                let copy = UnsafeMutableRawPointer.allocate(byteCount: n * 2, alignment: 64)
                let q = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
                let scales = UnsafeMutablePointer<Float>.allocate(capacity: (rows / 128 + 1) * (cols / 128 + 1))
                defer { src.deallocate(); copy.deallocate(); q.deallocate(); scales.deallocate() }
                // N(0, 0.02)-like values: a cheap deterministic pattern with varied exponents.
                var state: UInt64 = 0x1234_5678
                for i in 0..<n {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let u = Float(Int32(truncatingIfNeeded: state >> 32)) * 0x1p-31 * 0.05
                    src.storeBytes(of: FloatBits.f32ToBF16(u), toByteOffset: i * 2, as: UInt16.self)
                }
                memset(copy, 1, n * 2)
                memset(q, 1, n)
                var bestQ = Double.infinity, bestM = Double.infinity, bestM1 = Double.infinity
                for _ in 0..<repeats {
                    var t = MonotonicClock.seconds()
                    try BlockFP8.quantize(name: "bench", src: src, format: .bf16, rows: rows, cols: cols, q: q, scales: scales)
                    bestQ = min(bestQ, MonotonicClock.seconds() - t)
                    // memcpy on the same thread count, split like the kernel.
                    t = MonotonicClock.seconds()
                    Parallel.forEachChunk(count: n * 2, minChunk: 1 << 20) { r in
                        memcpy(copy + r.lowerBound, src + r.lowerBound, r.count)
                    }
                    bestM = min(bestM, MonotonicClock.seconds() - t)
                    t = MonotonicClock.seconds()
                    memcpy(copy, src, n * 2)
                    bestM1 = min(bestM1, MonotonicClock.seconds() - t)
                }
                let bytes = Double(n * 2)
                let result = JSONValue.object([
                    ("bytes", .int(n * 2)), ("threads", .int(Parallel.threads)),
                    ("quantize_gb_s", .double(bytes / bestQ / 1e9)),
                    ("memcpy_gb_s", .double(bytes / bestM / 1e9)),
                    ("memcpy_1thread_gb_s", .double(bytes / bestM1 / 1e9)),
                    ("ratio_to_memcpy", .double(bestM / bestQ)),
                ])
                if common.json { print(JSONWriter.pretty(result), terminator: "") } else {
                    print(String(format: "BF16 -> FP8 block-128, %.2f GiB, %d threads: quantize %.2f GB/s, memcpy %.2f GB/s (1 thread %.2f): %.2fx memcpy",
                                 bytes / 1073741824, Parallel.threads, bytes / bestQ / 1e9, bytes / bestM / 1e9, bytes / bestM1 / 1e9, bestM / bestQ))
                }
            }
        }

        struct Read: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Touch every byte of every tensor of a checkpoint through the mmap reader (XOR-fold), reporting GB/s.")

            @Argument var path: String
            @OptionGroup var common: CommonOptions

            func run() throws {
                try common.apply()
                let t0 = MonotonicClock.seconds()
                let store = try Checkpoint.openStore(path: path)
                var total = 0
                var fold: UInt64 = 0
                for file in store.files {
                    for (k, name) in file.tensorNames.enumerated() {
                        // Read ahead one tensor, as the converter does.
                        if k + 1 < file.tensorNames.count { store.prefetch([file.tensorNames[k + 1]]) }
                        let v = try store.view(name)
                        fold ^= xorFold(v.bytes)
                        total += v.bytes.count
                        store.release([name])
                    }
                }
                let dt = MonotonicClock.seconds() - t0
                let r = JSONValue.object([("bytes", .int(total)), ("seconds", .double(dt)), ("gb_s", .double(Double(total) / dt / 1e9)), ("fold", .string(String(fold, radix: 16)))])
                if common.json { print(JSONWriter.pretty(r), terminator: "") } else {
                    print(String(format: "read %@ of tensors in %.3f s: %.2f GB/s", formatBytes(total), dt, Double(total) / dt / 1e9))
                }
            }

            /// XOR of all 64-byte lanes, split over threads (forces every page to be read).
            func xorFold(_ b: UnsafeRawBufferPointer) -> UInt64 {
                let words = b.count / 8
                guard let base = b.baseAddress, words > 0 else { return 0 }
                let chunks = max(1, min(Parallel.threads, words / (1 << 16)))
                var parts = [UInt64](repeating: 0, count: chunks)
                parts.withUnsafeMutableBufferPointer { out in
                    Parallel.forEach(chunks) { c in
                        let lo = c * words / chunks, hi = (c + 1) * words / chunks
                        var acc = SIMD8<UInt64>(repeating: 0)
                        var i = lo
                        while i + 8 <= hi {
                            acc ^= base.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<UInt64>.self)
                            i += 8
                        }
                        var x: UInt64 = 0
                        for k in 0..<8 { x ^= acc[k] }
                        while i < hi { x ^= base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self); i += 1 }
                        out[c] = x
                    }
                }
                return parts.reduce(0, ^)
            }
        }
    }
}
