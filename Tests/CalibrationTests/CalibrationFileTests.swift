import Foundation
import XCTest
import Calibration
import Numerics
import TestSupport

/// The histogram file and ranges.json: a file written by Tests/Reference/histfile_reference.py
/// from Formats/calibration.md alone reads back with the same content, a file dsconvert writes
/// passes that script's checks with the same content, and damaged files give typed errors.
final class CalibrationFileTests: XCTestCase {
    private func content(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    private func assertMatches(_ f: HistogramFile, _ ref: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(f.model, ref["model"] as? String, file: file, line: line)
        XCTAssertEqual(f.ctx, (ref["ctx"] as! NSNumber).intValue, file: file, line: line)
        XCTAssertEqual(f.windows, (ref["windows"] as! NSNumber).intValue, file: file, line: line)
        XCTAssertEqual(f.expertMode, ref["expert_mode"] as? String, file: file, line: line)
        let inputs = ref["inputs"] as! [[String: Any]]
        XCTAssertEqual(f.inputs.count, inputs.count, file: file, line: line)
        for (i, r) in zip(f.inputs, inputs) {
            XCTAssertEqual(i.name, r["name"] as? String, file: file, line: line)
            XCTAssertEqual(i.consumers, r["consumers"] as? [String], file: file, line: line)
            XCTAssertEqual(i.tokens, (r["tokens"] as! NSNumber).intValue, file: file, line: line)
            XCTAssertEqual(i.histogram.counts.count, (r["bins"] as! NSNumber).intValue, file: file, line: line)
            XCTAssertEqual(i.histogram.initialBins, (r["initial_bins"] as! NSNumber).intValue, file: file, line: line)
            XCTAssertEqual(i.histogram.binWidth, Double(r["bin_width"] as! String), file: file, line: line)
            XCTAssertEqual(i.histogram.maxSeen, Double(r["max"] as! String), file: file, line: line)
            let sum = (r["counts_sum"] as! NSNumber).doubleValue
            XCTAssertEqual(i.histogram.counts.reduce(0, +), sum, accuracy: 1e-9 * max(1, sum), file: file, line: line)
            XCTAssertEqual(Array(i.histogram.counts.prefix(8)), (r["counts_first8"] as! [NSNumber]).map(\.doubleValue), file: file, line: line)
        }
    }

    func testPythonWrittenFileReads() throws {
        let dir = try STTemporaryDirectory("calib-hist")
        let path = dir.file("h.dshist")
        let ref = try content(try PythonReference.run("histfile_reference.py", ["write", path]))
        let f = try HistogramFile.read(path)
        assertMatches(f, ref)
        // And back: what dsconvert writes is the same content to the Python reader.
        let out = dir.file("again.dshist")
        try f.write(to: out)
        assertMatches(f, try content(try PythonReference.run("histfile_reference.py", ["read", out])))
    }

    func testEngineStyleHistogramRoundTrips() throws {
        var h = AbsHistogram()
        h.add(batch: (0..<5000).map { Float(sin(Double($0)) * 3) })
        h.add(batch: [-7.25, 0.5])  // grows past 2048 bins
        let f = HistogramFile(model: "m", ctx: 64, windows: 2, expertMode: "routed",
                              inputs: [ObservedInput(name: "a", consumers: ["a.q", "a.k"], tokens: 128, histogram: h)])
        let back = try HistogramFile.decode(f.encoded())
        XCTAssertEqual(back, f)
        XCTAssertGreaterThan(back.inputs[0].histogram.counts.count, 2048)
    }

    private func expectError(_ bytes: [UInt8], _ code: String, offset: Int? = nil, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try HistogramFile.decode(bytes, file: "x.dshist")
            XCTFail("decoded a damaged file (\(code) expected)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, code, error.description, file: file, line: line)
            XCTAssertEqual(error.file, "x.dshist", file: file, line: line)
            if let offset { XCTAssertEqual(error.offset, offset, file: file, line: line) }
        }
    }

    /// Re-seals bytes with a valid XXH64, so the checks behind the checksum can be reached.
    private func sealed(_ body: [UInt8]) -> [UInt8] {
        var b = body
        let d = b.withUnsafeBytes { XXH64.hash($0) }
        for s in stride(from: 0, to: 64, by: 8) { b.append(UInt8(truncatingIfNeeded: d >> UInt64(s))) }
        return b
    }

    private func withHeader(_ bytes: [UInt8], _ edit: (String) -> String) -> [UInt8] {
        let hl = Int(bytes[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) })
        let header = edit(String(decoding: bytes[16..<(16 + hl)], as: UTF8.self))
        let hb = Array(header.utf8)
        var body = Array(bytes[0..<8])
        for s in stride(from: 0, to: 64, by: 8) { body.append(UInt8(truncatingIfNeeded: UInt64(hb.count) >> UInt64(s))) }
        body += hb
        body += bytes[(16 + hl)..<(bytes.count - 8)]
        return sealed(body)
    }

    func testDamagedFilesGiveTypedErrors() throws {
        var h = AbsHistogram(initialBins: 256)
        h.add(batch: (0..<1000).map { Float($0) / 100 })
        let good = HistogramFile(model: "m", ctx: 8, windows: 1, expertMode: "all",
                                 inputs: [ObservedInput(name: "in", consumers: ["in.q"], tokens: 8, histogram: h)]).encoded()
        XCTAssertNoThrow(try HistogramFile.decode(good))
        var magic = good; magic[0] = 0x58
        expectError(magic, "histograms.bad_magic", offset: 0)
        expectError(Array(good.prefix(20)), "histograms.truncated")
        var flipped = good; flipped[good.count - 100] ^= 1
        expectError(flipped, "histograms.checksum", offset: good.count - 8)
        expectError(Array(good.dropLast(16)), "histograms.checksum")
        expectError(withHeader(good) { $0.replacingOccurrences(of: "\"version\":1", with: "\"version\":2") }, "histograms.unsupported_version")
        expectError(withHeader(good) { $0.replacingOccurrences(of: "\"bins\":256", with: "\"bins\":255") }, "histograms.bad_value")  // max above bins × width
        expectError(withHeader(good) { $0.replacingOccurrences(of: "\"offset\":0", with: "\"offset\":8") }, "histograms.size_mismatch")
        expectError(withHeader(good) { $0.replacingOccurrences(of: "\"bins\":256", with: "\"bins\":257") }, "histograms.size_mismatch")
        expectError(withHeader(good) { $0.replacingOccurrences(of: "\"ctx\":8", with: "\"ctx\":0") }, "histograms.header")
        expectError(withHeader(good) { $0.replacingOccurrences(of: "{\"format\"", with: "{\"format\"\"") }, "histograms.header")
        // A negative count at bin 3: named with its byte offset.
        var body = Array(good.dropLast(8))
        let hl = Int(good[8]) | Int(good[9]) << 8
        let at = 16 + hl + 3 * 8
        for (k, byte) in withUnsafeBytes(of: (-1.0).bitPattern.littleEndian, Array.init).enumerated() { body[at + k] = byte }
        expectError(sealed(body), "histograms.bad_value", offset: at)
    }

    func testRangesFileRoundTripAndErrors() throws {
        var h = AbsHistogram()
        h.add(batch: (0..<20000).map { Float(sin(Double($0) * 0.37)) * Float($0 % 97) / 10 })
        let file = HistogramFile(model: "m", ctx: 16, windows: 3, expertMode: "all",
                                 inputs: [ObservedInput(name: "in", consumers: ["in.q", "in.k"], tokens: 48, histogram: h),
                                          ObservedInput(name: "dead", consumers: ["d.o"], tokens: 48, histogram: AbsHistogram())])
        let (r, skipped) = RangeSelection.ranges(file, method: .kl, target: .fp8)
        XCTAssertEqual(skipped.map(\.name), ["dead"])
        XCTAssertEqual(r.inputs.first?.amax, AmaxSearch.entropy(h, target: .fp8)?.amax)
        let bytes = r.encoded()
        XCTAssertEqual(try RangesFile.decode(bytes), r)
        for (edit, code) in [("\"kl\"", "\"kx\""), ("\"fp8\"", "\"fp4\"")] {
            let bad = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: edit, with: code)
            XCTAssertThrowsError(try RangesFile.decode(Array(bad.utf8))) { XCTAssertEqual(($0 as? CalibrationFileError)?.code, "ranges.header") }
        }
        let badAmax = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\"amax\": ", with: "\"amax\": -")
        XCTAssertThrowsError(try RangesFile.decode(Array(badAmax.utf8))) { XCTAssertEqual(($0 as? CalibrationFileError)?.code, "ranges.bad_value") }
    }
}
