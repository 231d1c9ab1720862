import ArgumentParser
import Calibration
import Foundation
import JSON
import Numerics
import SystemIO

/// The KL threshold search over every histogram of a histogram file (`calibrate --histograms-out`):
/// calibrate's search (`AmaxSearch.entropy`, as RangeSelection runs it on --threads) against the
/// reference's O(bins²) loop (`entropyExhaustive`) on the same histograms, rounds alternating,
/// INT8 and FP8; the chosen bins must agree on every input.
struct KLSearchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kl",
        abstract: "Time of the KL threshold search over every input of a histogram file (INT8 and FP8), against the reference's exhaustive loop in the same run.")

    @Argument(help: "A histogram file (dsconvert calibrate --histograms-out).")
    var histograms: String

    @Option(name: .long, help: "Rounds, 1 to 100 (median reported).")
    var rounds = 3

    @Flag(name: .long, help: "Time the search only (skip the exhaustive loop).")
    var skipReference = false

    @OptionGroup var options: BenchOptions

    func run() throws {
        options.apply()
        let file = try HistogramFile.read(histograms)
        let inputs = file.inputs.map(\.histogram)
        let bins = inputs.reduce(0) { $0 + $1.counts.count }
        /// Wall and CPU seconds to search every histogram on Parallel.threads, and the chosen bins.
        func time(_ search: @escaping (AbsHistogram) -> Int?) -> (wall: Double, cpu: Double, bins: [Int?]) {
            let out = UnsafeMutableBufferPointer<Int?>.allocate(capacity: inputs.count)
            out.initialize(repeating: nil)
            defer { out.deallocate() }
            let t0 = MonotonicClock.seconds(), c0 = Prefill.processCPUSeconds()
            Parallel.forEach(inputs.count) { k in out[k] = search(inputs[k]) }
            return (MonotonicClock.seconds() - t0, Prefill.processCPUSeconds() - c0, Array(out))
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        var rows: [(target: String, wall: Double, cpu: Double, loopWall: Double?, loopCPU: Double?)] = []
        for t in CalibrationTarget.allCases {
            var fast: [(Double, Double)] = [], loop: [(Double, Double)] = []
            for _ in 0..<max(1, min(rounds, 100)) {
                let a = time { AmaxSearch.entropy($0, target: t)?.bin }
                fast.append((a.wall, a.cpu))
                if !skipReference {
                    let b = time { AmaxSearch.entropyExhaustive($0, target: t)?.bin }
                    loop.append((b.wall, b.cpu))
                    guard a.bins == b.bins else { throw ValidationError("\(t.rawValue): the search and the exhaustive loop chose different bins") }
                }
            }
            rows.append((t.rawValue, median(fast.map(\.0)), median(fast.map(\.1)),
                         loop.isEmpty ? nil : median(loop.map(\.0)), loop.isEmpty ? nil : median(loop.map(\.1))))
        }
        if options.json {
            print(JSONWriter.pretty(.object([
                ("inputs", .int(inputs.count)), ("bins", .int(bins)), ("threads", .int(Parallel.threads)), ("rounds", .int(rounds)),
                ("targets", .array(rows.map { r in
                    .object([("target", .string(r.target)), ("seconds", .double(r.wall)), ("cpu_seconds", .double(r.cpu)),
                             ("exhaustive_seconds", r.loopWall.map { .double($0) } ?? .null),
                             ("exhaustive_cpu_seconds", r.loopCPU.map { .double($0) } ?? .null),
                             ("cpu_speedup", r.loopCPU.map { .double($0 / r.cpu) } ?? .null)])
                })),
            ])), terminator: "")
        } else {
            print("KL search over \(inputs.count) histograms (\(bins) bins), \(Parallel.threads) threads, median of \(rounds) rounds:")
            for r in rows {
                print(String(format: "  %@ %7.3f s (%.3f s CPU)", r.target, r.wall, r.cpu)
                      + (r.loopCPU.map { String(format: "   exhaustive loop %7.3f s (%.3f s CPU): %.1fx less CPU, same bins", r.loopWall!, $0, $0 / r.cpu) } ?? ""))
            }
        }
    }
}
