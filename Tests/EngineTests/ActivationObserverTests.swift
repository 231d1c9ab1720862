import Checkpoint
import Engine
import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// The engine's ActivationObserver against what transformers feeds the same linear layers
/// (Tests/Fixtures/observed_inputs.json, written by Tests/Reference/observer_fixture.py with the
/// hooks of Formats/python/dshist): the same inputs with the same names and consumers, per
/// sequence of a two-sequence batch the same rows, max |x|, Σ|x| and Σx², and the same tokens per
/// routed expert, in both expert modes; and an observed forward pass gives the same logits as a
/// plain one, bit for bit.
final class ActivationObserverTests: XCTestCase {
    /// Records what an observer is shown.
    final class Recorder: ActivationObserver {
        struct Stats { var rows = 0; var max = 0.0; var sumAbs = 0.0; var sumSq = 0.0 }
        let experts: ExpertObservation
        let lock = NSLock()
        var seen: [ObservedSite: [Int: Stats]] = [:]
        var routedCounts: [String: Int] = [:]
        var active: Set<ObservedSite> = []
        var overlapped = false

        init(_ mode: ExpertObservation) { experts = mode }

        func observe(_ site: ObservedSite, window: Int, rows: Int, width: Int, _ x: UnsafePointer<Float>, ld: Int) {
            lock.lock()
            if !active.insert(site).inserted { overlapped = true }
            lock.unlock()
            var s = Stats(rows: rows)
            for r in 0..<rows {
                for c in 0..<width {
                    let v = Double(x[r * ld + c])
                    s.max = Swift.max(s.max, abs(v))
                    s.sumAbs += abs(v)
                    s.sumSq += v * v
                }
            }
            lock.lock()
            XCTAssertNil(seen[site]?[window], "\(site) observed twice in window \(window)")
            seen[site, default: [:]][window] = s
            active.remove(site)
            lock.unlock()
        }

        func routed(layer: Int, expert: Int, window: Int, tokens: Int) {
            lock.lock()
            routedCounts["\(layer)/\(expert)/\(window)"] = tokens
            lock.unlock()
        }
    }

    static let fixture: JSONValue = {
        let path = STFixtures.packageRoot + "/Tests/Fixtures/observed_inputs.json"
        return try! JSONParser.parse(try! Sys.readFile(path, limit: 1 << 24))
    }()

    func testDeepSeekAllExperts() throws { try check("deepseek-v3-tiny", .allExperts) }
    func testDeepSeekRoutedOnly() throws { try check("deepseek-v3-tiny", .routedOnly) }
    func testLlama() throws { try check("llama-tiny", .allExperts) }

    func check(_ sample: String, _ mode: ExpertObservation) throws {
        let expected = try XCTUnwrap(Self.fixture["samples"]?[sample]?[mode.rawValue])
        let golden = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/\(sample).safetensors")
        let (tokens, shape) = try EngineFixtures.ids(golden, "input_ids")
        let engine = try Model(checkpoint: try Checkpoint(path: EngineFixtures.samples + "/" + sample))
        let pool = WorkerPool(threads: 2)
        let plain = try engine.forward(tokens, cache: KVCache(config: engine.config, batch: shape[0], capacity: shape[1]), pool: pool)
        let rec = Recorder(mode)
        let observed = try engine.forward(tokens, cache: KVCache(config: engine.config, batch: shape[0], capacity: shape[1]), pool: pool, observer: rec)
        XCTAssertEqual(plain.toArray(), observed.toArray(), "observing changed the logits")
        XCTAssertFalse(rec.overlapped, "two calls for one site overlapped")

        let inputs = engine.observedInputs(mode)
        let want = try XCTUnwrap(expected["inputs"]?.arrayValue)
        XCTAssertEqual(inputs.map(\.name), want.map { $0["name"]!.stringValue! })
        XCTAssertEqual(inputs.map(\.consumers), want.map { $0["consumers"]!.arrayValue!.map { $0.stringValue! } })
        XCTAssertEqual(Set(rec.seen.keys).subtracting(inputs.map(\.site)), [], "sites observed that the list does not name")
        var worst = (max: 0.0, sum: 0.0)
        for (input, w) in zip(inputs, want) {
            let windows = w["window_index"]!.arrayValue!.map { $0.intValue! }
            let stats = w["windows"]!.arrayValue!
            XCTAssertEqual(Set(rec.seen[input.site, default: [:]].keys), Set(windows), "\(input.name): windows observed")
            for (k, s) in zip(windows, stats) {
                guard let got = rec.seen[input.site]?[k] else { continue }
                XCTAssertEqual(got.rows, s["rows"]!.intValue!, "\(input.name) window \(k): rows")
                let rel = { (a: Double, b: Double) in abs(a - b) / Swift.max(abs(b), 1e-30) }
                let m = rel(got.max, s["max"]!.doubleValue!)
                let sums = Swift.max(rel(got.sumAbs, s["sum_abs"]!.doubleValue!), rel(got.sumSq, s["sum_sq"]!.doubleValue!))
                worst = (Swift.max(worst.max, m), Swift.max(worst.sum, sums))
                XCTAssertLessThan(m, 2e-5, "\(input.name) window \(k): max |x| \(got.max) vs transformers \(s["max"]!.doubleValue!)")
                XCTAssertLessThan(sums, 2e-5, "\(input.name) window \(k): sums \(got.sumAbs), \(got.sumSq)")
            }
        }
        print("observer \(sample) \(mode.rawValue): \(inputs.count) inputs, largest relative difference from transformers: max |x| \(worst.max), sums \(worst.sum)")
        var routed: [String: Int] = [:]
        for (k, v) in expected["routed"]?.objectMembers ?? [] { routed[k] = v.intValue! }
        XCTAssertEqual(rec.routedCounts, routed, "tokens per expert")
        if engine.config.experts != nil { XCTAssertFalse(routed.isEmpty) }
    }
}
