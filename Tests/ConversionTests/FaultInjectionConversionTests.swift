import Foundation
import XCTest
import Conversion
import Diagnostics
import SystemIO
import TestSupport

/// Whole conversions under injected I/O faults (SystemIO.FaultInjection): a full disk on the
/// Nth write of a shard is reported as a full disk naming that shard and leaves no partial
/// output; EIO is reported with the file; EINTR and short writes are invisible in the bytes.
final class FaultInjectionConversionTests: XCTestCase {
    let shard2 = "model-00002-of-00005.safetensors"

    override func tearDown() {
        FaultInjection.clear()
        super.tearDown()
    }

    func testDiskFullOnTheNthWriteNamesTheShardAndLeavesNoPartialOutput() throws {
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        let out = tmp.sub("out")
        FaultInjection.install([.init(.write, .error(ENOSPC), pathContains: out + "/" + shard2, skip: 3)])
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, out)) { e in
            let d = e as? any DiagnosticError
            XCTAssertEqual(d?.code, "io.disk_full", "\(e)")
            XCTAssertEqual(d?.category, .io)
            XCTAssertEqual(d?.file, out + "/" + shard2)
            XCTAssertTrue("\(e)".contains("No space left on device"), "\(e)")
        }
        XCTAssertEqual(FaultInjection.firedCounts, [1], "the 4th write of the shard failed")
        FaultInjection.clear()
        XCTAssertEqual(CV.temporaries(out), [])
        XCTAssertFalse(CV.exists(out + "/" + shard2), "no partial shard under its final name")
        XCTAssertFalse(CV.exists(out + "/config.json"))
        XCTAssertFalse(CV.exists(out + "/model.safetensors.index.json"))
        // Space freed: the same command completes the folder like a clean run.
        try CV.quantize(CV.deepseek, out)
        try CV.assertSameDirectory(out, clean)
    }

    func testEIOIsReportedWithTheFile() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        FaultInjection.install([.init(.write, .error(EIO), pathContains: out + "/" + shard2)])
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, out)) { e in
            let d = e as? any DiagnosticError
            XCTAssertEqual(d?.code, "io.failed", "\(e)")
            XCTAssertEqual(d?.file, out + "/" + shard2)
            XCTAssertEqual(d?.category, .io)
            XCTAssertTrue("\(e)".contains("write failed: Input/output error"), "\(e)")
        }
        FaultInjection.clear()
        XCTAssertEqual(CV.temporaries(out), [])
        XCTAssertFalse(CV.exists(out + "/" + shard2))
    }

    func testEINTRAndShortWritesLeaveTheBytesUnchanged() throws {
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        let out = tmp.sub("out")
        FaultInjection.install([
            .init(.write, .error(EINTR), skip: 1, times: 40),
            .init(.write, .shortTransfer(4093), times: nil),
            .init(.read, .error(EINTR), times: 5),
            .init(.read, .shortTransfer(3), times: 200),
            .init(.rename, .error(EINTR), times: 3),
        ])
        try CV.quantize(CV.deepseek, out)
        let fired = FaultInjection.firedCounts
        FaultInjection.clear()
        XCTAssertEqual(fired[0], 40)
        XCTAssertGreaterThan(fired[1], 100, "short writes happened")
        XCTAssertEqual(fired[4], 3)
        try CV.assertSameDirectory(out, clean)
    }
}
