import Foundation
import XCTest
import Checkpoint
import Conversion
import SystemIO
import TestSupport

/// A real `dsconvert quantize` process stopped by SIGTERM or SIGINT in the middle of writing a
/// shard: it exits 143 / 130 with the `interrupted.*` error, leaves no temporary and no partial
/// file under a final name, and the same command afterwards completes the folder byte for byte
/// like an uninterrupted run.
final class SignalTests: XCTestCase {
    /// A 62 MB two-shard llama-shaped checkpoint (quantizing it takes long enough to be caught
    /// in the middle of a shard, yet well under a second).
    nonisolated(unsafe) static var inputDirectory: STTemporaryDirectory?

    override class func tearDown() {
        inputDirectory = nil
        super.tearDown()
    }

    func input() throws -> String {
        if let d = Self.inputDirectory { return d.file("in") }
        let dir = try STTemporaryDirectory("dsconvert-signal")
        var o = SyntheticCheckpoint.Options()
        o.shards = 2
        _ = try SyntheticCheckpoint.write(ModelBlueprint(kind: .llama, scale: 8, layers: 2), to: dir.file("in"), options: o)
        Self.inputDirectory = dir
        return dir.file("in")
    }

    func interrupt(with sig: Int32, status: Int32, code: String) throws {
        let input = try input()
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CLI.expect(["quantize", "--fp8", input, clean, "-q"], status: 0)

        let out = tmp.sub("out")
        let child = try ChildProcess(try CLI.executable(), ["quantize", "--fp8", input, out, "-q", "--json", "--threads", "1"])
        // Wait until a shard's temporary exists, i.e. the run is writing output.
        let deadline = Date().addingTimeInterval(30)
        var writing = false
        while Date() < deadline && child.process.isRunning {
            if CV.temporaries(out).contains(where: { $0.hasSuffix(".safetensors") }) { writing = true; break }
            usleep(500)
        }
        XCTAssertTrue(writing, "no shard temporary appeared while the run was going")
        child.signal(sig)
        let result = child.readAll()
        XCTAssertEqual(child.wait(), status, result)
        XCTAssertEqual(child.process.terminationReason, .exit, "exited through dsconvert's own path, not killed")
        XCTAssertTrue(result.contains("\"\(code)\""), result)

        XCTAssertEqual(CV.temporaries(out), [], "no temporary left")
        XCTAssertFalse(CV.exists(out + "/config.json"))
        for s in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] where CV.exists(out + "/" + s) {
            XCTAssertEqual(try CV.bytes(out + "/" + s), try CV.bytes(clean + "/" + s), "\(s) is under its final name but not complete")
        }
        // Resuming completes the directory with the bytes of a clean run.
        try CLI.expect(["quantize", "--fp8", input, out, "-q"], status: 0)
        try CV.assertSameDirectory(out, clean)
    }

    func testSIGTERMMidConversionExits143AndLeavesNoTemporary() throws {
        try interrupt(with: SIGTERM, status: 143, code: "interrupted.sigterm")
    }

    func testSIGINTMidConversionExits130AndLeavesNoTemporary() throws {
        try interrupt(with: SIGINT, status: 130, code: "interrupted.sigint")
    }
}
