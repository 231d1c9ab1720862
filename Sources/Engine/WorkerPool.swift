import Dispatch
import EngineKernels

/// The engine's threads: `threads` workers pull numbered work items from a shared counter, so
/// uneven items (experts with different token counts) balance themselves. Each worker owns a
/// scratch buffer for decoded weight tiles. Parallelism lives here, never inside a codec.
public final class WorkerPool: @unchecked Sendable {
    public let threads: Int
    /// Floats of scratch per worker.
    public let scratchFloats: Int
    private let scratch: [UnsafeMutablePointer<Float>]

    public init(threads: Int, scratchFloats: Int = Linear.scratchFloats) {
        WorkerPool.keepFreedMemory
        self.threads = max(1, threads)
        self.scratchFloats = scratchFloats
        scratch = (0..<max(1, threads)).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: scratchFloats)
            p.initialize(repeating: 0, count: scratchFloats)
            return p
        }
    }

    deinit { for p in scratch { p.deallocate() } }

    /// A forward pass allocates and frees its activation buffers layer by layer. glibc's default
    /// gives a freed heap top (and every block above its adaptive mmap threshold) back to the
    /// kernel, so each pass page-faults the same megabytes in again: ~8 % of a tiny model's
    /// prefill in kernel page-fault and page-clearing time. Once per process that runs the engine,
    /// blocks up to 32 MiB come from the heap and freed memory stays mapped (trim above 1 GiB):
    /// resident memory stays at its peak instead of falling between calls; the peak is unchanged.
    static let keepFreedMemory: Void = {
        ek_keep_freed_memory(32 << 20, 1 << 30)
    }()

    /// Worker `w`'s scratch buffer (`scratchFloats` long).
    public func scratch(_ w: Int) -> UnsafeMutablePointer<Float> { scratch[w] }

    /// Below this many elements in all, a row-wise pass runs on the calling thread: handing it
    /// to the workers costs more than it saves.
    static let splitElements = 16384

    /// Calls `body(range)` on consecutive row ranges that cover 0..<rows, spread over the workers
    /// when the rows hold at least `splitElements` elements (`width` each). Every range but the
    /// last starts and ends at a multiple of 8 rows, so an element-wise kernel's vector blocks and
    /// scalar tail fall on the same elements whatever the split: results do not depend on it.
    public func forRows(_ rows: Int, width: Int, _ body: (Range<Int>) -> Void) {
        if rows <= 0 { return }
        let parts = threads == 1 || rows * width < WorkerPool.splitElements ? 1 : min((rows + 7) / 8, 4 * threads)
        if parts <= 1 { return body(0..<rows) }
        let chunk = ((rows + parts - 1) / parts + 7) / 8 * 8
        run((rows + chunk - 1) / chunk) { i, _ in body(i * chunk..<min(rows, (i + 1) * chunk)) }
    }

    /// Calls `body(item, worker)` for every item in 0..<items, spread over the workers.
    public func run(_ items: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        if items <= 0 { return }
        let workers = min(threads, items)
        if workers == 1 {
            for i in 0..<items { body(i, 0) }
            return
        }
        var next = 0
        withUnsafeMutablePointer(to: &next) { counter in
            let c = UnsafeMutableRawPointer(counter).assumingMemoryBound(to: Int.self)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                while true {
                    let i = ek_fetch_add(c, 1)
                    if i >= items { break }
                    body(i, w)
                }
            }
        }
    }
}
