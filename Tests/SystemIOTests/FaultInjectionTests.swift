import Foundation
import XCTest
import SystemIO
import TestSupport

/// SystemIO's wrappers under injected faults: EINTR is retried and a short transfer continued
/// (the bytes on disk are what was asked for, compared with Foundation's independent read);
/// ENOSPC and EIO become `IOError`s naming the file; nothing fires unless armed.
final class FaultInjectionTests: XCTestCase {
    override func tearDown() {
        FaultInjection.clear()
        super.tearDown()
    }

    func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testEINTRIsRetriedTransparently() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        FaultInjection.install([.init(.write, .error(EINTR), times: 3), .init(.fsync, .error(EINTR), times: 2),
                                .init(.rename, .error(EINTR), times: 1), .init(.read, .error(EINTR), times: 2)])
        let f = try AtomicFile(dir.file("a.bin"))
        try f.write(pattern(1000))
        try f.write(pattern(10))
        try f.commit(durable: true)
        XCTAssertEqual(try Sys.readFile(dir.file("a.bin")), pattern(1000) + pattern(10))
        XCTAssertEqual(FaultInjection.firedCounts, [3, 2, 1, 2])
        XCTAssertEqual(try contents(dir.file("a.bin")), pattern(1000) + pattern(10))
    }

    func testShortTransfersAreContinued() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        FaultInjection.install([.init(.write, .shortTransfer(7), times: nil), .init(.read, .shortTransfer(5), times: nil)])
        let f = try AtomicFile(dir.file("b.bin"))
        try f.write(pattern(10_000))
        try f.commit()
        XCTAssertEqual(FaultInjection.firedCounts, [(10_000 + 6) / 7, 0])
        XCTAssertEqual(try contents(dir.file("b.bin")), pattern(10_000))
        XCTAssertEqual(try Sys.readFile(dir.file("b.bin")), pattern(10_000))
        XCTAssertEqual(FaultInjection.firedCounts[1], 2_000)
    }

    func testENOSPCOnTheNthWriteNamesTheFileAndLeavesNothing() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        let path = dir.file("out.bin")
        FaultInjection.install([.init(.write, .error(ENOSPC), pathContains: "out.bin", skip: 2)])
        let f = try AtomicFile(path)
        try f.write(pattern(100))
        try f.write(pattern(100))
        XCTAssertThrowsError(try f.write(pattern(100))) { e in
            let io = e as? IOError
            XCTAssertEqual(io?.code, "io.disk_full")
            XCTAssertEqual(io?.path, path)
            XCTAssertEqual(io?.isDiskFull, true)
            XCTAssertTrue("\(e)".contains("No space left on device"), "\(e)")
        }
        f.abort()
        XCTAssertEqual(try dir.contents(), [], "no temporary and no partial file")
        XCTAssertEqual(FaultInjection.firedCounts, [1])
    }

    func testEIOIsReportedWithTheFile() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        FaultInjection.install([.init(.fsync, .error(EIO))])
        let f = try AtomicFile(dir.file("c.bin"))
        try f.write(pattern(10))
        XCTAssertThrowsError(try f.commit(durable: true)) { e in
            XCTAssertEqual((e as? IOError)?.operation, "fsync")
            XCTAssertEqual((e as? IOError)?.path, dir.file("c.bin"))
            XCTAssertTrue("\(e)".contains("Input/output error"), "\(e)")
        }
        f.abort()

        FaultInjection.install([.init(.rename, .error(EIO), pathContains: "d.bin")])
        let g = try AtomicFile(dir.file("d.bin"))
        XCTAssertThrowsError(try g.commit()) { e in
            XCTAssertEqual((e as? IOError)?.operation, "rename")
            XCTAssertTrue((e as? IOError)?.path.hasSuffix(" -> " + dir.file("d.bin")) ?? false, "\(e)")
        }
        g.abort()

        try AtomicFile.write(pattern(64), to: dir.file("e.bin"))
        FaultInjection.install([.init(.read, .error(EIO), pathContains: "e.bin")])
        XCTAssertThrowsError(try Sys.readFile(dir.file("e.bin"))) { e in
            XCTAssertEqual((e as? IOError)?.operation, "read")
            XCTAssertEqual((e as? IOError)?.path, dir.file("e.bin"))
            XCTAssertEqual((e as? IOError)?.code, "io.failed")
        }
        XCTAssertEqual(try dir.contents(), ["e.bin"])
    }

    func testInertUnlessArmedAndMatching() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        // A rule for another path never fires; after clear() nothing does.
        FaultInjection.install([.init(.write, .error(ENOSPC), pathContains: "other", times: nil)])
        try AtomicFile.write(pattern(50), to: dir.file("f.bin"))
        XCTAssertEqual(FaultInjection.firedCounts, [0])
        FaultInjection.install([.init(.write, .error(ENOSPC), times: nil)])
        XCTAssertThrowsError(try AtomicFile.write(pattern(50), to: dir.file("g.bin")))
        FaultInjection.clear()
        XCTAssertEqual(FaultInjection.firedCounts, [])
        try AtomicFile.write(pattern(50), to: dir.file("g.bin"))
        XCTAssertEqual(try contents(dir.file("g.bin")), pattern(50))
    }

    /// `Sys.reserve` gives the file its blocks (st_blocks from the kernel's own stat) without
    /// changing its size; a disk too small, injected or real (a reservation of 1 EiB, beyond any
    /// file system here), is an `IOError` naming the file before anything is written.
    func testReserveAllocatesWithoutChangingTheSizeAndReportsAFullDisk() throws {
        let dir = try STTemporaryDirectory("dsconvert-fault")
        let f = try AtomicFile(dir.file("r.bin"))
        func blocks() -> (size: Int, allocated: Int) {
            var st = stat()
            XCTAssertEqual(fstat(f.fd, &st), 0)
            return (Int(st.st_size), Int(st.st_blocks) * 512)
        }
        if try f.reserve(4 << 20) {
            XCTAssertEqual(blocks().size, 0, "the size is unchanged")
            XCTAssertGreaterThanOrEqual(blocks().allocated, 4 << 20, "the blocks are allocated")
        }
        try f.write(pattern(5000))
        XCTAssertEqual(blocks().size, 5000)
        XCTAssertThrowsError(try f.reserve(1 << 60)) { e in
            XCTAssertEqual((e as? IOError)?.path, dir.file("r.bin"), "\(e)")
            XCTAssertTrue([ENOSPC, EFBIG, EDQUOT].contains((e as? IOError)?.errno ?? 0), "\(e)")
        }
        FaultInjection.install([.init(.allocate, .error(ENOSPC))])
        XCTAssertThrowsError(try f.reserve(1 << 20)) { e in
            XCTAssertTrue((e as? IOError)?.isDiskFull ?? false, "\(e)")
            XCTAssertTrue("\(e)".contains("No space left on device"), "\(e)")
        }
        XCTAssertEqual(FaultInjection.firedCounts, [1])
        FaultInjection.install([.init(.allocate, .error(EOPNOTSUPP))])
        XCTAssertFalse(try f.reserve(1 << 20), "a file system that cannot reserve is not an error")
        f.abort()
    }
}
