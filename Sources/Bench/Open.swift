import ArgumentParser
import Checkpoint
import Foundation
import JSON
import SystemIO

/// Open a .dspack (the mapping, the header digest and every open check of spec §4) and take a
/// pointer to its first tensor's data, `--repeats` times in one process; reports the median,
/// best and worst. Each round opens the file anew (new mapping, digest recomputed); the page
/// cache is what the caller left it (Scripts/bench_pack.py reads the file once first: warm).
struct Open: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time open (header digest checked) to a pointer to the first tensor of a .dspack, median of --repeats.")

    @Argument var path: String
    @Option(name: .long, help: "Rounds, 1 to 100000 (default 10).") var repeats = 10
    @OptionGroup var options: BenchOptions

    func validate() throws {
        guard (1...100_000).contains(repeats) else { throw ValidationError("--repeats \(repeats) is out of range: expected 1 to 100000") }
    }

    func run() throws {
        options.apply()
        var times: [Double] = []
        var first = ""
        var fold: UInt8 = 0
        for _ in 0..<repeats {
            let t0 = MonotonicClock.seconds()
            let store = try Checkpoint.openStore(path: path)
            guard store.formatName == "dspack" else { throw ValidationError("\(path) is not a .dspack (read as \(store.formatName))") }
            guard let name = store.files.lazy.compactMap({ $0.tensorNames.first }).first else { throw ValidationError("\(path) holds no tensor") }
            let v = try store.view(name)
            // The pointer, and its first byte (so the page it names is really there).
            if let p = v.bytes.baseAddress, v.bytes.count > 0 { fold ^= p.load(as: UInt8.self) }
            times.append(MonotonicClock.seconds() - t0)
            first = name
        }
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let r = JSONValue.object([
            ("file", .string(path)), ("repeats", .int(repeats)), ("first_tensor", .string(first)),
            ("median_ms", .double(median * 1e3)), ("best_ms", .double(sorted[0] * 1e3)), ("worst_ms", .double(sorted[sorted.count - 1] * 1e3)),
            ("fold", .int(Int(fold))),
        ])
        if options.json { print(JSONWriter.pretty(r), terminator: "") } else {
            print(String(format: "open → first tensor (%@): median %.3f ms, best %.3f, worst %.3f (%d rounds)", first, median * 1e3, sorted[0] * 1e3, sorted[sorted.count - 1] * 1e3, repeats))
        }
    }
}
