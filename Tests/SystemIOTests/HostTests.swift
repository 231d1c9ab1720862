import Foundation
import XCTest
import SystemIO
import TestSupport

/// The clock, terminal, core-count and path queries SystemIO answers for the rest of dsconvert,
/// each checked against an independent source (Foundation, a pseudo-terminal, the file system).
final class HostTests: XCTestCase {
    func testMonotonicClockMeasuresASleep() {
        let t0 = MonotonicClock.seconds(), n0 = MonotonicClock.nanoseconds()
        usleep(30_000)
        let dt = MonotonicClock.seconds() - t0, dn = MonotonicClock.nanoseconds() - n0
        XCTAssertGreaterThanOrEqual(dt, 0.030)
        XCTAssertLessThan(dt, 5)
        XCTAssertGreaterThanOrEqual(dn, 30_000_000)
        // Both read the same clock: nanoseconds / 1e9 agrees with seconds.
        XCTAssertEqual(Double(MonotonicClock.nanoseconds()) / 1e9, MonotonicClock.seconds(), accuracy: 0.5)
    }

    func testOnlineProcessorsMatchesFoundation() {
        XCTAssertEqual(Sys.onlineProcessors, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(Sys.pageSize, Int(getpagesize()))
        let mem = Sys.physicalMemory
        XCTAssertNotNil(mem)
        XCTAssertEqual(Double(mem ?? 0), Double(ProcessInfo.processInfo.physicalMemory), accuracy: Double(Sys.pageSize))
    }

    func testIsTerminal() throws {
        let dir = try STTemporaryDirectory("dsconvert-host")
        let fd = open(dir.file("plain"), O_CREAT | O_WRONLY, 0o644)
        defer { close(fd) }
        XCTAssertFalse(Sys.isTerminal(fd))
        XCTAssertFalse(Sys.isTerminal(-1))
        // A pseudo-terminal's master side is a terminal.
        let pty = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard pty >= 0 else { throw XCTSkip("no pseudo-terminals here") }
        defer { close(pty) }
        XCTAssertTrue(Sys.isTerminal(pty))
    }

    func testRealPathResolvesSymlinksAndDots() throws {
        let dir = try STTemporaryDirectory("dsconvert-host")
        try Sys.makeDirectory(dir.file("a/b"))
        XCTAssertEqual(symlink("a", dir.file("link")), 0)
        // The temporary directory itself may sit behind a symlink (/tmp on some systems), so the
        // expected value is built from the canonical form Foundation computes for it.
        let base = URL(fileURLWithPath: dir.path).resolvingSymlinksInPath().path
        XCTAssertEqual(try Sys.realPath(dir.file("link/b/../b/.")), base + "/a/b")
        XCTAssertEqual(try Sys.realPath(dir.path + "//a/"), base + "/a")
        XCTAssertThrowsError(try Sys.realPath(dir.file("missing"))) { e in
            XCTAssertEqual((e as? IOError)?.code, "io.not_found")
            XCTAssertEqual((e as? IOError)?.path, dir.file("missing"))
        }
    }

    /// `Sys.stat` follows symbolic links, names a loop, and does not open (or block on) a FIFO.
    func testStatFollowsLinksWithoutOpening() throws {
        let dir = try STTemporaryDirectory("dsconvert-host")
        try AtomicFile.write(Array(repeating: 7, count: 1234), to: dir.file("target"))
        XCTAssertEqual(symlink("target", dir.file("link")), 0)
        let st = try Sys.stat(dir.file("link"))
        XCTAssertEqual(st.size, 1234)
        XCTAssertTrue(st.isRegular)
        XCTAssertEqual(symlink("loop-b", dir.file("loop-a")), 0)
        XCTAssertEqual(symlink("loop-a", dir.file("loop-b")), 0)
        XCTAssertThrowsError(try Sys.stat(dir.file("loop-a"))) { XCTAssertEqual(($0 as? IOError)?.code, "io.symlink_loop") }
        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o644), 0)
        let fifo = try Sys.stat(dir.file("fifo"))
        XCTAssertFalse(fifo.isRegular || fifo.isDirectory)
        chmod(dir.file("target"), 0)
        XCTAssertEqual(try Sys.stat(dir.file("target")).size, 1234, "no read permission needed")
    }
}
