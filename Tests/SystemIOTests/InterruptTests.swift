import Foundation
import XCTest
import SystemIO
import TestSupport

/// The signal handler's own path (a second SIGINT / SIGTERM): it removes exactly the registered
/// temporaries and exits 128 + the signal, while the process is blocked and never polls the flag.
final class InterruptTests: XCTestCase {
    func runProbe(count: Int, signals: [Int32], expectStatus: Int32) throws {
        let dir = try STTemporaryDirectory("dsconvert-interrupt")
        let probe = try ChildProcess(try BuiltExecutable.path("InterruptProbe"), [dir.path, String(count)])
        // Files i % 3 == 2 stay open (registered); 0 are committed, 1 aborted.
        let open = (0..<count).filter { $0 % 3 == 2 }.count
        XCTAssertEqual(probe.readLine(), "ready \(open)")
        let temporaries = try dir.contents().filter { AtomicFile.isTemporary($0) }
        XCTAssertEqual(temporaries.count, open, "\(temporaries)")

        // The first signal only requests a stop: the probe reports it and the temporaries stay.
        probe.signal(signals[0])
        XCTAssertEqual(probe.readLine(), "requested \(signals[0])")
        XCTAssertEqual(try dir.contents().filter { AtomicFile.isTemporary($0) }.count, open)

        // The second one ends the process from inside the handler.
        probe.signal(signals[1])
        XCTAssertEqual(probe.wait(), expectStatus)
        XCTAssertEqual(probe.process.terminationReason, .exit)
        let committed = (0..<count).filter { $0 % 3 == 0 }.map { "file-\($0).bin" }
        XCTAssertEqual(try dir.contents(), committed.sorted(), "only the committed files remain")
        for name in committed {
            XCTAssertEqual(try Sys.readFile(dir.file(name)), Array("payload \(name.dropFirst(5).dropLast(4))\n".utf8))
        }
    }

    func testSecondSIGTERMRemovesTemporariesAndExits143() throws {
        try runProbe(count: 30, signals: [SIGTERM, SIGTERM], expectStatus: 143)
    }

    func testSecondSIGINTExits130() throws {
        try runProbe(count: 7, signals: [SIGINT, SIGINT], expectStatus: 130)
    }

    /// The exit status follows the signal that ended the process.
    func testMixedSignalsExitWithTheLastOne() throws {
        try runProbe(count: 5, signals: [SIGINT, SIGTERM], expectStatus: 143)
    }

    /// Slots are reused after commit/abort, and a full table degrades to "not tracked", never a crash.
    func testTableIsReusedAndBounded() throws {
        let dir = try STTemporaryDirectory("dsconvert-interrupt")
        let before = Interrupt.registeredCount
        for i in 0..<(Interrupt.capacity * 2) {
            let f = try AtomicFile(dir.file("reuse-\(i)"))
            XCTAssertEqual(Interrupt.registeredCount, before + 1)
            if i % 2 == 0 { try f.commit() } else { f.abort() }
            XCTAssertEqual(Interrupt.registeredCount, before)
        }
        var held: [AtomicFile] = []
        for i in 0..<(Interrupt.capacity + 10) { held.append(try AtomicFile(dir.file("held-\(i)"))) }
        XCTAssertEqual(Interrupt.registeredCount, Interrupt.capacity)
        held.removeAll()
        XCTAssertEqual(Interrupt.registeredCount, before)
        XCTAssertFalse(try dir.contents().contains { AtomicFile.isTemporary($0) })
    }
}
