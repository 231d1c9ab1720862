import Foundation
import XCTest
@testable import dsconvert

/// `pack`, `unpack`, `decompress` and `synth` progress: a log line at least every interval when
/// standard error is not a terminal (CI logs, Slurm), a redrawn bar on a terminal, nothing when quiet.
final class ByteProgressTests: XCTestCase {
    func testStatusLineIsHandComputed() {
        // 1.2 GB of 3 GB in 2 s: 0.6 GB/s, 1.8 GB left at that rate is 3 s.
        XCTAssertEqual(ByteProgressBar.status(verb: "pack", done: 1_200_000_000, total: 3_000_000_000, elapsed: 2),
                       "pack  40.0%  1.20 GB / 3.00 GB  0.60 GB/s  ETA 0m03s")
        XCTAssertEqual(ByteProgressBar.status(verb: "unpack", done: 0, total: 500, elapsed: 1),
                       "unpack   0.0%  0 B / 500 B  0.00 GB/s  ETA --")
    }

    func testLogLinesWhenNotATerminal() {
        var out: [String] = []
        let bar = ByteProgressBar(verb: "pack", quiet: false, terminal: false, logInterval: 0) { out.append($0) }
        bar.update(10, 100)
        bar.update(100, 100)
        bar.finish()
        XCTAssertEqual(out.count, 2, "one line per update once the interval has passed; finish adds none: \(out)")
        XCTAssertTrue(out.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\u{1B}") }, "plain lines, no escapes: \(out)")
        XCTAssertTrue(out[0].hasPrefix("pack  10.0%  10 B / 100 B"), out[0])
        XCTAssertTrue(out[1].hasPrefix("pack 100.0%  100 B / 100 B"), out[1])
    }

    func testLogLinesAreRateLimited() {
        var out: [String] = []
        let bar = ByteProgressBar(verb: "synth", quiet: false, terminal: false, logInterval: 3600) { out.append($0) }
        for i in 0..<1000 { bar.update(i, 1000) }
        XCTAssertEqual(out, [], "no line before the interval has passed")
    }

    func testTerminalRedrawsAndQuietIsSilent() {
        var tty: [String] = []
        let bar = ByteProgressBar(verb: "unpack", quiet: false, terminal: true) { tty.append($0) }
        bar.update(5, 10)
        bar.finish()
        XCTAssertEqual(tty.count, 2)
        XCTAssertTrue(tty[0].hasPrefix("\r\u{1B}[2Kunpack  50.0%"), tty[0])
        XCTAssertEqual(tty[1], "\r\u{1B}[2K", "finish clears the bar")
        var quiet: [String] = []
        let q = ByteProgressBar(verb: "pack", quiet: true, terminal: false, logInterval: 0) { quiet.append($0) }
        q.update(1, 2); q.finish()
        XCTAssertEqual(quiet, [])
    }
}
