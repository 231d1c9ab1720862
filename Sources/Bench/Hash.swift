import ArgumentParser
import Foundation
import JSON
import Numerics
import SystemIO

/// GB/s of the two libxxhash checksums on an in-memory buffer (page cache out of the picture),
/// alternating within each round so both see the same load, best of `--repeats`: XXH3-64 (packs,
/// resume records) against XXH64 (settings digests). The measurement behind the choice of XXH3.
struct Hash: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Checksum speed on an in-memory buffer: libxxhash XXH3-64 against XXH64.")
    @Option(name: .long, help: "Buffer size in MiB, 1 to 4096 (default 256).") var mib = 256
    @Option(name: .long, help: "Rounds, 1 to 1000 (default 10).") var repeats = 10
    @OptionGroup var options: BenchOptions

    func validate() throws {
        guard (1...4096).contains(mib) else { throw ValidationError("--mib \(mib) is out of range: expected 1 to 4096") }
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats \(repeats) is out of range: expected 1 to 1000") }
    }

    func run() throws {
        options.apply()
        var buf = [UInt8](repeating: 0, count: mib << 20)
        var s: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<buf.count { s = s &* 6364136223846793005 &+ 1442695040888963407; buf[i] = UInt8(truncatingIfNeeded: s >> 56) }
        let fs: [(UnsafeRawBufferPointer) -> UInt64] = [{ XXH3.hash($0) }, { XXH64.hash($0) }]
        var t = [Double](repeating: .infinity, count: fs.count)
        var fold: UInt64 = 0
        buf.withUnsafeBytes { b in
            for _ in 0..<repeats {
                for (i, f) in fs.enumerated() {
                    let t0 = MonotonicClock.seconds()
                    fold ^= f(b)
                    t[i] = min(t[i], MonotonicClock.seconds() - t0)
                }
            }
        }
        let gbs = t.map { Double(buf.count) / $0 / 1e9 }
        if options.json {
            print(JSONWriter.pretty(.object([("bytes", .int(buf.count)), ("repeats", .int(repeats)), ("xxh3_gbps", .double(gbs[0])),
                                             ("xxh64_gbps", .double(gbs[1])), ("ratio", .double(gbs[0] / gbs[1])), ("fold", .string(XXH64.hex(fold)))])), terminator: "")
        } else {
            print(String(format: "XXH3-64 %.2f GB/s  XXH64 %.2f GB/s  ratio %.2fx  (%@, best of %d)", gbs[0], gbs[1], gbs[0] / gbs[1], formatBytes(buf.count), repeats))
        }
    }
}
