import Foundation
import XCTest
@testable import dsconvert

/// Numeric options: every value parses exactly or is a usage error naming the option and the
/// range (exit 64); none traps. Expected byte counts are hand-computed.
final class OptionValueTests: XCTestCase {
    func testByteSizesAreExact() throws {
        let cases: [(String, Int)] = [
            ("4294967296", 4_294_967_296), ("5GB", 5_000_000_000), ("5gb", 5_000_000_000), ("5G", 5_000_000_000),
            ("500MiB", 524_288_000), ("1.5GiB", 1_610_612_736), ("1.5KB", 1500), ("0.5KiB", 512),
            ("2 TB", 2_000_000_000_000), ("1TiB", 1_099_511_627_776), ("1B", 1), ("007K", 7000),
            ("1.000KB", 1000), ("1.1GB", 1_100_000_000), ("1024TiB", 1 << 50),
        ]
        for (text, bytes) in cases {
            XCTAssertEqual(try OptionValue.byteSize(text, option: "--shard-size"), bytes, text)
        }
    }

    func testBadByteSizesAreUsageErrorsNamingTheOption() {
        let cases: [(String, String)] = [
            ("10000000000GB", "out of range"), ("infGB", "not a size"), ("1e30B", "not a size"),
            ("9223372036854775807GB", "out of range"), ("99999999999999999999999999", "out of range"),
            ("0.1B", "not a whole number of bytes"), ("1.0001KB", "not a whole number of bytes"),
            ("0", "too small"), ("0GB", "too small"), ("-5GB", "out of range"), ("", "not a size"),
            ("GB", "not a size"), (".", "not a size"), ("nan", "not a size"), ("1.2.3GB", "not a size"),
            ("1025TiB", "out of range"), ("0x10", "not a size"),
        ]
        for (text, why) in cases {
            XCTAssertThrowsError(try OptionValue.byteSize(text, option: "--shard-size"), text) { e in
                guard let u = e as? UsageError else { return XCTFail("\(text): \(e)") }
                XCTAssertEqual(u.code, "usage.invalid_value")
                XCTAssertTrue(u.message.hasPrefix("--shard-size '\(text)' "), u.message)
                XCTAssertTrue(u.message.contains(why), "\(text): \(u.message)")
                XCTAssertTrue(u.message.contains("1 B to 1 PiB"), u.message)
            }
        }
    }

    func testIntegers() throws {
        XCTAssertEqual(try OptionValue.integer("1", option: "--threads", in: 1...8), 1)
        XCTAssertEqual(try OptionValue.integer("+8", option: "--threads", in: 1...8), 8)
        for bad in ["0", "9", "-1", "1.5", "", "1e3", "abc", "9223372036854775808", "-9223372036854775809", "0x1"] {
            XCTAssertThrowsError(try OptionValue.integer(bad, option: "--threads", in: 1...8), bad) { e in
                XCTAssertEqual((e as? UsageError)?.code, "usage.invalid_value")
                XCTAssertTrue((e as? UsageError)?.message.contains("--threads '\(bad)'") == true, "\(e)")
                XCTAssertTrue((e as? UsageError)?.message.contains("from 1 to 8") == true, "\(e)")
            }
        }
        XCTAssertEqual(try OptionValue.uint64("18446744073709551615", option: "--seed"), UInt64.max)
        XCTAssertThrowsError(try OptionValue.uint64("18446744073709551616", option: "--seed"))
        XCTAssertThrowsError(try OptionValue.uint64("-1", option: "--seed"))
    }

    /// Through the executable: status 64, the `usage.invalid_value` code, the option named.
    func testCLIRefusesOutOfRangeNumbers() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        let model = CV.llama
        let cases: [([String], String)] = [
            (["inspect", model, "--summary", "--threads", "0"], "--threads '0'"),
            (["inspect", model, "--summary", "--threads", "-1"], "--threads '-1'"),
            (["inspect", model, "--summary", "--threads", "99999999999999999999"], "--threads"),
            (["quantize", "--fp8", model, out, "--shard-size", "10000000000GB"], "--shard-size"),
            (["quantize", "--fp8", model, out, "--shard-size", "infGB"], "--shard-size"),
            (["quantize", "--fp8", model, out, "--shard-size", "1e30B"], "--shard-size"),
            (["quantize", "--fp8", model, out, "--shard-size", "9223372036854775807GB"], "--shard-size"),
            (["quantize", "--fp8", model, out, "--shard-size", "0.1B"], "whole number of bytes"),
            (["dequantize", model, out, "--shard-size", "-1"], "--shard-size '-1'"),
            (["quantize", "--fp8", model, out, "--block-size", "0"], "--block-size '0'"),
            (["quantize", "--fp8", model, out, "--block-size", "-128"], "--block-size '-128'"),
            (["quantize", "--fp8", model, out, "--jobs", "0"], "--jobs '0'"),
            (["quantize", "--fp8", model, out, "--jobs", "2", "--job-index", "2"], "from 0 to 1"),
            (["quantize", "--fp8", model, out, "--job-index", "-1"], "--job-index '-1'"),
            (["synth", "--arch", "llama", "--shards", "0", out], "--shards '0'"),
            (["synth", "--arch", "llama", "--layers", "-2", out], "--layers '-2'"),
            (["synth", "--arch", "llama", "--scale", "1/0", out], "--scale '1/0'"),
            (["synth", "--arch", "llama", "--align", "0", out], "--align '0'"),
            (["synth", "--arch", "llama", "--shard-size", "1e30B", out], "--shard-size"),
            (["merge-index", out, "--threads", "0"], "--threads"),
        ]
        for (args, text) in cases {
            let r = try CLI.expect(args + ["--json"], status: 64, code: "usage.invalid_value")
            XCTAssertTrue(r.stderr.contains(text), "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("expected"), "the allowed range is given: \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
        }
        XCTAssertFalse(CV.exists(out), "nothing written")
    }

    /// `--granularity channel|tensor --block-size N` (and --int8 with a block size) is refused
    /// instead of ignoring the block size.
    func testBlockSizeOutsideBlockGranularityIsRefused() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        for args in [["--fp8", "--granularity", "channel"], ["--fp8", "--granularity", "tensor"], ["--int8"]] {
            let r = try CLI.expect(["quantize"] + args + [CV.llama, out, "--block-size", "64", "--json"], status: 64, code: "usage.conflicting_options")
            XCTAssertTrue(r.stderr.contains("--block-size applies to --granularity block only"), r.stderr)
        }
        XCTAssertFalse(CV.exists(out))
    }
}
