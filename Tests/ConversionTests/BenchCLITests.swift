import Foundation
import XCTest
import JSON
import SystemIO
import TestSupport

/// `dsconvert-bench` (the benchmarks, out of the dsconvert product): its options are validated
/// before anything is allocated, and a tiny run reports what it measured.
final class BenchCLITests: XCTestCase {
    func bench(_ args: [String]) throws -> CLI.Result { try CLI.run(args, executable: "dsconvert-bench") }

    func assertUsage(_ args: [String], mentions words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try bench(args)
        XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)", file: file, line: line)
        for w in words { XCTAssertTrue(r.stderr.contains(w), "\(args): stderr \(r.stderr) lacks \(w)", file: file, line: line) }
        XCTAssertEqual(r.stdout, "", "\(args): nothing measured", file: file, line: line)
    }

    func testKernelOptionsAreValidated() throws {
        try assertUsage(["kernel", "--mib", "0"], mentions: ["--mib 0", "out of range"])
        try assertUsage(["kernel", "--mib", "-1"], mentions: ["--mib -1", "out of range"])
        try assertUsage(["kernel", "--repeats", "0", "--mib", "8"], mentions: ["--repeats 0", "1 to 1000"])
        try assertUsage(["kernel", "--repeats", "-3", "--mib", "8"], mentions: ["--repeats -3"])
        // Overflows: the largest Int (its << 20 would wrap) and a value past it.
        try assertUsage(["kernel", "--mib", "9223372036854775807"], mentions: ["--mib 9223372036854775807", "more bytes than a 64-bit size holds"])
        try assertUsage(["kernel", "--mib", "9223372036854775808"], mentions: ["--mib"])
        try assertUsage(["kernel", "--threads", "0", "--mib", "8"], mentions: ["--threads 0"])
    }

    /// More than memory allows is refused with the arithmetic, not an allocation abort.
    func testKernelRefusesMoreThanMemoryAllows() throws {
        let memory = try XCTUnwrap(Sys.physicalMemory)
        // A tensor as large as physical memory needs 2.5 times that in buffers.
        let mib = memory >> 20
        try assertUsage(["kernel", "--mib", String(mib)], mentions: ["--mib \(mib)", "of memory", "GiB"])
        if memory < (100_000 << 20) / 3 * 10 {
            try assertUsage(["kernel", "--mib", "100000"], mentions: ["--mib 100000", "244.1 GiB", "more than three quarters"])
        }
    }

    func testTinyKernelRun() throws {
        let r = try bench(["kernel", "--mib", "8", "--repeats", "1", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let v = try JSONParser.parse(r.stdout)
        // 8 MiB of BF16 over 7168 columns is 585 rows, rounded down to 512 (whole 128-row blocks).
        XCTAssertEqual(v["bytes"]?.intValue, 512 * 7168 * 2)
        XCTAssertEqual(v["threads"]?.intValue, 1)
        for k in ["quantize_gb_s", "memcpy_gb_s", "memcpy_1thread_gb_s", "ratio_to_memcpy"] {
            let x = try XCTUnwrap(v[k]?.doubleValue, k)
            XCTAssertTrue(x.isFinite && x > 0, "\(k) = \(x)")
        }
    }

    /// `read` touches every tensor byte: the total is the data sections of the sample's shards
    /// (file size − 8 − header length, read from the files here).
    func testReadCountsEveryTensorByte() throws {
        let dir = CV.deepseek
        var expected = 0
        for name in try Sys.listDirectory(dir) where name.hasSuffix(".safetensors") {
            let bytes = try CV.bytes(dir + "/" + name)
            let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            expected += bytes.count - 8 - headerLength
        }
        let r = try bench(["read", dir, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try JSONParser.parse(r.stdout)["bytes"]?.intValue, expected)
    }

    /// The product no longer carries the benchmarks.
    func testDsconvertHasNoBenchCommand() throws {
        let r = try CLI.run(["bench", "kernel", "--mib", "8"])
        XCTAssertEqual(r.status, 64, r.stderr)
    }
}
