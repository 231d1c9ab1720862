import XCTest
import Numerics

/// Expected strings are Python's `'%.2f'/'%.1f'/'%.0f' % (n / 1000**k)` written out by hand.
final class ByteCountTests: XCTestCase {
    func testDecimalUnitsWithThreeSignificantDigits() {
        let cases: [(Int, String)] = [
            (0, "0 B"), (999, "999 B"), (1000, "1.00 kB"), (1234, "1.23 kB"), (9_999, "10.00 kB"),
            (12_345, "12.3 kB"), (99_960, "100.0 kB"), (123_456, "123 kB"), (5_000_000, "5.00 MB"),
            (41_943_040, "41.9 MB"), (688_574_839_360, "689 GB"), (1_369_000_000_000, "1.37 TB"),
            (2_000_000_000_000_000, "2.00 PB"), (3_000_000_000_000_000_000, "3000 PB"),
        ]
        for (n, s) in cases { XCTAssertEqual(formatBytes(n), s, "\(n)") }
    }

    func testSplitMix64MatchesThePublishedStream() {
        // The first outputs for seed 0 of the reference C implementation (prng.di.unimi.it/splitmix64.c).
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(g.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(g.next(), 0x06C4_5D18_8009_454F)
    }
}
