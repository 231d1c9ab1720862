import Dispatch
import SystemIO

/// Splits work over the machine's cores (or `Parallel.threads`, when set).
public enum Parallel {
    /// Worker count; defaults to the number of active processors.
    nonisolated(unsafe) public static var threads: Int = Sys.onlineProcessors

    /// Calls `body(range)` for consecutive ranges covering 0..<count, concurrently. Ranges are at
    /// least `minChunk` long, so small jobs run inline without thread hand-off.
    public static func forEachChunk(count: Int, minChunk: Int = 1 << 16, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let t = threads
        if t <= 1 || count <= minChunk {
            body(0..<count)
            return
        }
        let chunks = min(t * 4, (count + minChunk - 1) / minChunk)
        let per = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(i)` for i in 0..<count concurrently (each index is one unit of work).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if threads <= 1 || count == 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}
