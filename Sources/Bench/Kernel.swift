import ArgumentParser
import Foundation
import JSON
import Numerics
import Quantization
import SystemIO

/// BF16 → FP8 E4M3 block-128 quantization of one large tensor, against memcpy of the same bytes.
struct Kernel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "BF16 → FP8 E4M3 block-128 quantization of one large tensor, against memcpy of the same bytes.")

    @Option(name: .long, parsing: .unconditional, help: "Tensor size in MiB of BF16 input (at least 1; the buffers take 2.5× this, within three quarters of physical memory).")
    var mib: Int = 1024

    @Option(name: .long, parsing: .unconditional, help: "Repetitions, 1 to 1000 (best time is reported).")
    var repeats: Int = 5

    @OptionGroup var options: BenchOptions

    static let cols = 7168

    /// The tensor's rows for `mib` MiB of BF16 (a multiple of 128, at least 128), or nil on overflow.
    static func rows(mib: Int) -> Int? {
        guard mib >= 1, mib <= Int.max >> 20 else { return nil }
        return max(128, (mib << 20) / (cols * 2) / 128 * 128)
    }

    /// Bytes the benchmark allocates for `rows`: BF16 input, its memcpy target, FP8 output, scales.
    static func bufferBytes(rows: Int) -> Int? {
        let (n, o1) = rows.multipliedReportingOverflow(by: cols)
        let (five, o2) = n.multipliedReportingOverflow(by: 5)
        let scales = (rows / 128 + 1) * (cols / 128 + 1) * 4
        let (total, o3) = five.addingReportingOverflow(scales)
        return o1 || o2 || o3 ? nil : total
    }

    /// The largest `--mib` this machine takes (buffers within three quarters of physical memory).
    static var maxMiB: Int {
        guard let mem = Sys.physicalMemory else { return 1024 }
        return max(1, (mem / 4 * 3 / 5 * 2) >> 20)
    }

    func validate() throws {
        guard (1...1000).contains(repeats) else {
            throw ValidationError("--repeats \(repeats) is out of range: expected an integer from 1 to 1000")
        }
        let limit = Kernel.maxMiB
        guard mib >= 1 else {
            throw ValidationError("--mib \(mib) is out of range: expected an integer from 1 to \(limit)")
        }
        guard mib <= limit else {
            let need = Kernel.rows(mib: mib).flatMap { Kernel.bufferBytes(rows: $0) }
            let memory = Sys.physicalMemory.map { String(format: "%.1f GiB", Double($0) / 1073741824) } ?? "unknown"
            throw ValidationError("--mib \(mib) is out of range: the benchmark's buffers (input, a copy and the FP8 output: 2.5 times the tensor) would take "
                + (need.map { String(format: "%.1f GiB", Double($0) / 1073741824) } ?? "more bytes than a 64-bit size holds")
                + ", more than three quarters of this machine's \(memory) of memory; expected an integer from 1 to \(limit)")
        }
    }

    /// Allocates `bytes` (64-byte aligned) or throws instead of aborting.
    func allocate(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        let rounded = (bytes + 63) / 64 * 64
        guard let p = aligned_alloc(64, rounded) else {
            throw ValidationError("--mib \(mib): could not allocate \(rounded) bytes of memory")
        }
        return p
    }

    func run() throws {
        options.apply()
        let cols = Kernel.cols
        let rows = Kernel.rows(mib: mib)!
        let n = rows * cols
        let src = try allocate(n * 2)
        defer { free(src) }
        let copy = try allocate(n * 2)
        defer { free(copy) }
        let qRaw = try allocate(n)
        defer { free(qRaw) }
        let scalesRaw = try allocate((rows / 128 + 1) * (cols / 128 + 1) * 4)
        defer { free(scalesRaw) }
        let q = qRaw.bindMemory(to: UInt8.self, capacity: n)
        let scales = scalesRaw.bindMemory(to: Float.self, capacity: (rows / 128 + 1) * (cols / 128 + 1))
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
        if options.json { print(JSONWriter.pretty(result), terminator: "") } else {
            print(String(format: "BF16 -> FP8 block-128, %.2f GiB, %d threads: quantize %.2f GB/s, memcpy %.2f GB/s (1 thread %.2f): %.2fx memcpy",
                         bytes / 1073741824, Parallel.threads, bytes / bestQ / 1e9, bytes / bestM / 1e9, bytes / bestM1 / 1e9, bestM / bestQ))
        }
    }
}
