import ArgumentParser
import Checkpoint
import Foundation
import JSON
import Numerics
import SystemIO

/// Touch every byte of every tensor of a checkpoint through the store's zero-copy views.
struct Read: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Touch every byte of every tensor of a checkpoint through the mmap reader (XOR-fold), reporting GB/s.")

    @Argument var path: String
    @OptionGroup var options: BenchOptions

    func run() throws {
        options.apply()
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
        if options.json { print(JSONWriter.pretty(r), terminator: "") } else {
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
