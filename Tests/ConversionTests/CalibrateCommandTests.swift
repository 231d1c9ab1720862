import Calibration
import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// `dsconvert calibrate` on the samples: ranges.json with one entry per observed input (the
/// inputs transformers' hooks name, Tests/Fixtures/observed_inputs.json), tokens per expert that
/// add up to the router's top-k, the same bytes on every run, `--from-histograms` giving the same
/// ranges as the direct run for every method and target, and one input's histogram equal to the
/// one numpy builds (Tests/Reference/calib_histogram_check.py) from the activations the engine
/// observed; and the refusals: a text shorter than one window, fewer windows than --samples
/// asked for (a warning), a NaN in an activation (the input named), bad options.
final class CalibrateCommandTests: XCTestCase {
    static let samples = STFixtures.samplesDirectory
    static let deepseek = samples + "/deepseek-v3-tiny"
    static let llama = samples + "/llama-tiny"
    static let calib = samples + "/calib.txt"
    /// A short run: 4 windows of 64 tokens.
    static let short = ["--text", calib, "--samples", "4", "--ctx", "64"]

    func calibrate(_ args: [String], status: Int32 = 0, line: UInt = #line) throws -> CLI.Result {
        let r = try CLI.run(["calibrate"] + args, timeout: 600)
        XCTAssertEqual(r.status, status, "calibrate \(args): \(r.stderr)", line: line)
        return r
    }

    static func fixtureNames(_ sample: String, _ mode: String) throws -> [String] {
        let path = STFixtures.packageRoot + "/Tests/Fixtures/observed_inputs.json"
        let v = try JSONParser.parse(try Sys.readFile(path, limit: 1 << 24))
        return try XCTUnwrap(v["samples"]?[sample]?[mode]?["inputs"]?.arrayValue).map { $0["name"]!.stringValue! }
    }

    func testRangesForEveryObservedInputAndTokensPerExpert() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "calib")
        for mode in ["all", "routed"] {
            let out = tmp.path + "/ranges-\(mode).json"
            // percentile: the searches over bins are slow in a debug build; they are the same code
            // for every method here (KL and MSE: testFromHistogramsReproducesTheDirectRun).
            let r = try calibrate([Self.deepseek] + Self.short + ["--method", "percentile", "-o", out, "--json"] + (mode == "routed" ? ["--routed-only"] : []))
            let report = try JSONParser.parse(Array(r.stdout.utf8))
            XCTAssertEqual(report["windows"]?.intValue, 4)
            XCTAssertEqual(report["tokens"]?.intValue, 256)
            let ranges = try RangesFile.read(out)
            XCTAssertEqual(ranges.method, "percentile")
            XCTAssertEqual(ranges.target, .int8)
            XCTAssertEqual(ranges.expertMode, mode)
            XCTAssertEqual(ranges.ctx, 64)
            XCTAssertEqual(ranges.windows, 4)
            // One entry per input transformers' hooks report (in routed mode an expert no token
            // reached has no range and is reported).
            let skipped = Set(report["skipped"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
            let expected = try Self.fixtureNames("deepseek-v3-tiny", mode).filter { !skipped.contains($0) }
            XCTAssertEqual(ranges.inputs.map(\.name), expected)
            if mode == "all" { XCTAssertTrue(skipped.isEmpty, "\(skipped)") }
            XCTAssertTrue(skipped.allSatisfy { $0.contains(".mlp.experts.") }, "\(skipped)")
            for i in ranges.inputs {
                XCTAssertTrue(i.amax.isFinite && i.amax > 0, i.name)
                XCTAssertNotNil(i.bin, i.name)
            }
            // Tokens the router sent: num_experts_per_tok (4) per token, 256 tokens per MoE layer.
            for layer in [1, 2] {
                let downs = ranges.inputs.filter { $0.name.hasPrefix("model.layers.\(layer).mlp.experts.") && $0.name.hasSuffix(".down_proj") }
                let routed = downs.compactMap(\.routedTokens)
                XCTAssertEqual(routed.count, downs.count)
                if mode == "all" {
                    XCTAssertEqual(downs.count, 16)
                    XCTAssertEqual(routed.reduce(0, +), 4 * 256, "layer \(layer)")
                    XCTAssertTrue(downs.allSatisfy { $0.tokens == 256 }, "every token reaches every expert for statistics")
                } else {
                    XCTAssertTrue(downs.allSatisfy { $0.tokens == $0.routedTokens }, "routed mode observes the routed tokens")
                }
                XCTAssertEqual(ranges.inputs.first { $0.name == "model.layers.\(layer).input_layernorm" }?.tokens, 256)
            }
        }
        // The tokens per expert are the router's either way.
        let all = try RangesFile.read(tmp.path + "/ranges-all.json"), routed = try RangesFile.read(tmp.path + "/ranges-routed.json")
        let routedCounts = Dictionary(uniqueKeysWithValues: routed.inputs.compactMap { i in i.routedTokens.map { (i.name, $0) } })
        for i in all.inputs where i.routedTokens != nil {
            if let r = routedCounts[i.name] { XCTAssertEqual(i.routedTokens, r, i.name) } else { XCTAssertEqual(i.routedTokens, 0, i.name) }
        }
    }

    func testDeterministicHistograms() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "calib")
        let hist = tmp.path + "/h.dshist"
        _ = try calibrate([Self.deepseek] + Self.short + ["--method", "minmax", "-o", tmp.path + "/a.json", "--histograms-out", hist, "--threads", "2"])
        // Another run, on one thread: the same bytes.
        _ = try calibrate([Self.deepseek] + Self.short + ["--method", "minmax", "-o", tmp.path + "/b.json", "--histograms-out", tmp.path + "/h1.dshist", "--threads", "1"])
        XCTAssertEqual(try Sys.readFile(tmp.path + "/a.json"), try Sys.readFile(tmp.path + "/b.json"))
        XCTAssertEqual(try Sys.readFile(hist), try Sys.readFile(tmp.path + "/h1.dshist"))
        // The file keeps the tokens per expert: the ranges from it are the direct run's.
        _ = try calibrate(["--from-histograms", hist, "--method", "minmax", "-o", tmp.path + "/c.json"])
        XCTAssertEqual(try Sys.readFile(tmp.path + "/a.json"), try Sys.readFile(tmp.path + "/c.json"))
        let file = try HistogramFile.read(hist)
        XCTAssertEqual(file.windows, 4)
        XCTAssertEqual(file.ctx, 64)
        XCTAssertEqual(file.expertMode, "all")
        XCTAssertEqual(file.inputs.map(\.name), try Self.fixtureNames("deepseek-v3-tiny", "all"))
        for i in file.inputs {
            // Every value of every row is counted once: tokens × the input's width.
            let total = i.histogram.counts.reduce(0, +)
            XCTAssertGreaterThan(total, 0, i.name)
            XCTAssertEqual(total.truncatingRemainder(dividingBy: Double(i.tokens)), 0, i.name)
            XCTAssertEqual(i.tokens, 256, i.name)
        }
    }

    func testFromHistogramsReproducesTheDirectRun() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "calib")
        let hist = tmp.path + "/h.dshist"
        _ = try calibrate([Self.llama] + Self.short + ["--method", "kl", "-o", tmp.path + "/kl-int8.json", "--histograms-out", hist])
        let file = try HistogramFile.read(hist)
        XCTAssertEqual(file.inputs.map(\.name), try Self.fixtureNames("llama-tiny", "all"))
        for (method, target, extra) in [("kl", "int8", [String]()), ("kl", "fp8", []), ("mse", "int8", []), ("mse", "fp8", []),
                                        ("percentile", "int8", ["--percentile", "99.9"]), ("minmax", "fp8", [])] {
            let a = tmp.path + "/\(method)-\(target).json", b = tmp.path + "/\(method)-\(target)-h.json"
            if method != "kl" || target != "int8" {
                _ = try calibrate([Self.llama] + Self.short + ["--method", method, "--target", target, "-o", a] + extra)
            }
            _ = try calibrate(["--from-histograms", hist, "--method", method, "--target", target, "-o", b] + extra)
            XCTAssertEqual(try Sys.readFile(a), try Sys.readFile(b), "\(method) \(target)")
            let r = try RangesFile.read(b)
            XCTAssertEqual(r.method, method)
            XCTAssertEqual(r.target.rawValue, target)
            XCTAssertEqual(r.inputs.map(\.name), file.inputs.map(\.name), "\(method) \(target): a range for every input")
            for i in r.inputs {
                let h = file.inputs.first { $0.name == i.name }!.histogram
                switch method {
                case "minmax": XCTAssertEqual(i.amax, h.maxSeen, i.name)       // the largest |x| seen
                case "kl", "percentile": XCTAssertEqual(i.amax, Double(i.bin!) * h.binWidth, i.name)   // amax = bin × width
                default: XCTAssertLessThanOrEqual(i.amax, h.maxSeen + h.binWidth, i.name)
                }
            }
        }
    }

    /// One input's histogram rebuilt by numpy (dshist) from the rows the engine observed; in
    /// "all" mode an expert's down_proj (every token, through an expert the router mostly skips),
    /// in "routed" mode an expert's gate/up input (only its tokens).
    func testHistogramEqualsNumpyOnTheObservedActivations() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "calib")
        for (name, extra) in [("model.layers.1.mlp.experts.3.down_proj", [String]()),
                              ("model.layers.2.self_attn.kv_a_layernorm", []),
                              ("model.layers.2.mlp.experts.5.gate_proj", ["--routed-only"])] {
            let hist = tmp.path + "/h.dshist", dump = tmp.path + "/dump.safetensors"
            _ = try calibrate([Self.deepseek] + Self.short + ["--method", "minmax", "-o", tmp.path + "/r.json", "--histograms-out", hist,
                                                            "--dump-input", name, "--dump-to", dump] + extra)
            let out = try PythonReference.run("calib_histogram_check.py", [dump, hist, name, tmp.path + "/ref.dshist"])
            let v = try JSONParser.parse(Array(out.utf8))
            XCTAssertEqual(v["counts_equal"]?.boolValue, true, "\(name): \(out)")
            XCTAssertEqual(v["bins"]?.intValue, v["ref_bins"]?.intValue, name)
            XCTAssertEqual(v["width"]?.stringValue, v["ref_width"]?.stringValue, name)
            XCTAssertEqual(v["max"]?.stringValue, v["ref_max"]?.stringValue, name)
            XCTAssertEqual(v["rows"]?.intValue, v["tokens"]?.intValue, name)
            if extra.isEmpty {
                XCTAssertEqual(v["windows"]?.intValue, 4, name)
                XCTAssertEqual(v["rows"]?.intValue, 256, name)
            }
            XCTAssertGreaterThanOrEqual(v["bins"]?.intValue ?? 0, 2048, name)
        }
    }

    func testShortTextAndBadOptions() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "calib")
        let text = try Sys.readFile(Self.calib)
        let small = tmp.path + "/small.txt"
        try Array(text.prefix(2000)).withUnsafeBytes { try AtomicFile.write(Array($0), to: small) }
        let out = tmp.path + "/r.json"
        // Fewer windows than asked for: a warning, and the windows the text holds are used.
        let r = try calibrate([Self.deepseek, "--text", small, "--samples", "50", "--ctx", "64", "--method", "percentile", "-o", out, "--json"])
        let report = try JSONParser.parse(Array(r.stdout.utf8))
        let available = try XCTUnwrap(report["windows_available"]?.intValue)
        XCTAssertGreaterThan(available, 0)
        XCTAssertLessThan(available, 50)
        XCTAssertEqual(report["windows"]?.intValue, available)
        XCTAssertEqual(report["samples_requested"]?.intValue, 50)
        XCTAssertTrue(r.stderr.contains("warning: \(small) holds \(available) full window(s) of 64 tokens"), r.stderr)
        XCTAssertEqual(try RangesFile.read(out).percentile, 99.99)
        // Shorter than one window: refused, the file named.
        let e = try calibrate([Self.deepseek, "--text", small, "--ctx", "1000", "--method", "minmax", "-o", out, "--json"], status: 1)
        XCTAssertEqual(e.code, "calibrate.text_too_short")
        XCTAssertEqual(e.error?["file"]?.stringValue, small)
        // Usage errors.
        for (args, code) in [(["--method", "entropy"], "usage.invalid_value"), (["--method", "kl", "--target", "fp4"], "usage.invalid_value"),
                             (["--method", "kl", "--percentile", "99"], "usage.conflicting_options"),
                             (["--method", "percentile", "--percentile", "0"], "usage.invalid_value")] {
            let u = try calibrate([Self.deepseek, "--text", small, "-o", out, "--json"] + args, status: 64)
            XCTAssertEqual(u.code, code, "\(args)")
        }
        let c = try calibrate(["--from-histograms", out, Self.deepseek, "--method", "minmax", "-o", out, "--json"], status: 64)
        XCTAssertEqual(c.code, "usage.conflicting_options")
        let d = try calibrate([Self.deepseek, "--text", small, "--ctx", "64", "--method", "minmax", "-o", out, "--dump-input", "model.layers.9.mlp", "--dump-to", tmp.path + "/d", "--json"], status: 1)
        XCTAssertEqual(d.code, "calibrate.unknown_input")
    }

    /// An infinity in layer 1's input norm weight: refused, naming the input and its consumers.
    func testNonFiniteActivationNamesTheInput() throws {
        let tmp = try CVTempDir("calib-nan")
        let dir = tmp.sub("llama-inf")
        try CV.copyDirectory(Self.llama, to: dir)
        let path = dir + "/model.safetensors"
        let f = try SafeTensorsFile(path: path)
        var items: [(TensorSpec, [UInt8])] = []
        for t in f.tensors {
            var bytes = Array(f.view(t).bytes)
            if t.name == "model.layers.1.input_layernorm.weight" {
                XCTAssertTrue(t.dtype == .bf16)
                bytes[0] = 0x80; bytes[1] = 0x7F          // BF16 +infinity
            }
            items.append((TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape), bytes))
        }
        try FileManager.default.removeItem(atPath: path)
        try CV.writeSafetensors(path, items)
        let out = tmp.sub("r.json")
        let r = try calibrate([dir] + Self.short + ["--method", "minmax", "-o", out, "--json"], status: 1)
        XCTAssertEqual(r.code, "calibrate.non_finite")
        XCTAssertEqual(r.error?["tensor"]?.stringValue, "model.layers.1.input_layernorm")
        XCTAssertTrue(r.error?["message"]?.stringValue?.contains("model.layers.1.self_attn.q_proj") == true, r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no ranges written")
        let plain = try calibrate([dir] + Self.short + ["--method", "minmax", "-o", out], status: 1)
        XCTAssertTrue(plain.stderr.contains("model.layers.1.input_layernorm"), plain.stderr)
    }
}
