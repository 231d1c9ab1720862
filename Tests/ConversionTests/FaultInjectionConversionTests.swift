import Foundation
import XCTest
import Conversion
import Sharding
import Checkpoint
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

    /// Rank files written two at a time: a full disk in one rank's file stops the other worker
    /// too; the error names the failing file, no temporary is left, and once space is back the
    /// same run completes a folder whose ranks gather back bit for bit (Tests/Reference).
    func testConcurrentRankFilesStopTogetherOnAFullDisk() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        let ckpt = try Checkpoint(path: CV.deepseek)
        let (plan, _) = try ShardPlanner.plan(ckpt, ShardOptions(parallel: ParallelPlan(tp: 2, pp: 1, ep: 2)))
        func run() throws {
            _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out, concurrentFiles: 2)).run()
        }
        let victim = try XCTUnwrap(plan.shards.first { $0.name.hasPrefix(ShardPlanner.folder(rank: 1, of: 2)) }).name
        FaultInjection.install([.init(.write, .error(ENOSPC), pathContains: out + "/" + (victim as NSString).deletingLastPathComponent + "/", skip: 2)])
        XCTAssertThrowsError(try run()) { e in
            let d = e as? any DiagnosticError
            XCTAssertEqual(d?.code, "io.disk_full", "\(e)")
            XCTAssertTrue(d?.file?.hasPrefix(out + "/" + ShardPlanner.folder(rank: 1, of: 2) + "/") ?? false, "\(e)")
        }
        XCTAssertEqual(FaultInjection.firedCounts, [1])
        FaultInjection.clear()
        XCTAssertEqual(CV.temporaries(out), [])
        XCTAssertFalse(CV.exists(out + "/" + victim), "no partial rank file under its final name")
        try run()
        try CV.gatherShards(CV.deepseek, out, tp: 2, ep: 2, layers: [[0, 1, 2]])
    }

    /// A disk too small for a shard is found at its reservation, before its first byte: the
    /// error names the shard, nothing is written under its name and no temporary is left.
    func testDiskFullAtTheReservationStopsBeforeTheFirstByte() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        FaultInjection.install([.init(.allocate, .error(ENOSPC), pathContains: out + "/" + shard2),
                                .init(.write, .error(EIO), pathContains: out + "/" + shard2)])
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, out)) { e in
            let d = e as? any DiagnosticError
            XCTAssertEqual(d?.code, "io.disk_full", "\(e)")
            XCTAssertEqual(d?.file, out + "/" + shard2)
        }
        XCTAssertEqual(FaultInjection.firedCounts, [1, 0], "no byte of the shard was written")
        FaultInjection.clear()
        XCTAssertEqual(CV.temporaries(out), [])
        XCTAssertFalse(CV.exists(out + "/" + shard2))
    }
}
