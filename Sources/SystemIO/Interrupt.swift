#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Ctrl-C and SIGTERM handling for long runs: the first signal sets `requested`, which the
/// conversion loops check between chunks so they stop cleanly and remove their temporaries;
/// a second signal removes every registered temporary file at once and exits with 130.
public enum Interrupt {
    private static let flag = Atomic<Int>(0)
    private static let lock = Mutex<Set<String>>([])

    /// True once SIGINT or SIGTERM has arrived.
    public static var requested: Bool { flag.load(ordering: .relaxed) != 0 }

    public static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in
                if Interrupt.flag.add(1, ordering: .relaxed).newValue > 1 {
                    Interrupt.removeTemporariesAndExit()
                }
            }
        }
    }

    /// Marks the interruption as requested (tests use this to simulate Ctrl-C).
    public static func request() { flag.store(1, ordering: .relaxed) }
    public static func reset() { flag.store(0, ordering: .relaxed) }

    static func register(_ path: String) { lock.withLock { _ = $0.insert(path) } }
    static func unregister(_ path: String) { lock.withLock { _ = $0.remove(path) } }

    private static func removeTemporariesAndExit() -> Never {
        // Best effort: the lock may be held by the interrupted thread; try without waiting forever.
        let paths = lock.withLockIfAvailable { Array($0) } ?? []
        for p in paths { Glibc.unlink(p) }
        _exit(130)
    }
}

/// Thrown by long loops when `Interrupt.requested` is set.
public struct Interrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted; no partial output was left under a final name (run the same command again to resume)" }
}
