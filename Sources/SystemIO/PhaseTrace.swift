#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a command's time goes, for whoever tunes it: with `DSCONVERT_TRACE=1` in the
/// environment each `mark` prints the milliseconds since the first mark and the phase that just
/// ended to standard error (`[412 ms] plan file written`). Off, a mark is one load and a branch.
public enum PhaseTrace {
    private static let enabled = getenv("DSCONVERT_TRACE").map { String(cString: $0) != "0" } ?? false
    nonisolated(unsafe) private static var start: Double?

    public static func mark(_ phase: String) {
        guard enabled else { return }
        let now = MonotonicClock.seconds()
        let t0 = start ?? now
        if start == nil { start = now }
        fputs("[\(Int(((now - t0) * 1000).rounded())) ms] \(phase)\n", stderr)
    }
}
