#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import Diagnostics

/// Ctrl-C and SIGTERM handling for long runs: the first signal sets `requested`, which the
/// conversion loops check between chunks so they stop cleanly and remove their temporaries;
/// a second signal removes every registered temporary file at once and exits with 128 + the
/// signal's number (130 for SIGINT, 143 for SIGTERM).
public enum Interrupt {
    private static let flag = Atomic<Int>(0)
    private static let lastSignal = Atomic<Int32>(0)
    private static let lock = Mutex<Set<String>>([])

    /// True once SIGINT or SIGTERM has arrived.
    public static var requested: Bool { flag.load(ordering: .relaxed) != 0 }

    public static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                Interrupt.lastSignal.store(s, ordering: .relaxed)
                if Interrupt.flag.add(1, ordering: .relaxed).newValue > 1 {
                    Interrupt.removeTemporariesAndExit()
                }
            }
        }
    }

    /// Marks the interruption as requested (tests use this to simulate Ctrl-C).
    public static func request(signal: Int32 = SIGINT) {
        lastSignal.store(signal, ordering: .relaxed)
        flag.store(1, ordering: .relaxed)
    }
    public static func reset() { flag.store(0, ordering: .relaxed); lastSignal.store(0, ordering: .relaxed) }

    /// The signal that requested the interruption (SIGINT when none was recorded).
    public static var signalNumber: Int32 {
        let s = lastSignal.load(ordering: .relaxed)
        return s == 0 ? SIGINT : s
    }

    static func register(_ path: String) { lock.withLock { _ = $0.insert(path) } }
    static func unregister(_ path: String) { lock.withLock { _ = $0.remove(path) } }

    private static func removeTemporariesAndExit() -> Never {
        // Best effort: the lock may be held by the interrupted thread; try without waiting forever.
        let paths = lock.withLockIfAvailable { Array($0) } ?? []
        for p in paths { Glibc.unlink(p) }
        _exit(128 + signalNumber)
    }
}

/// Thrown by long loops when `Interrupt.requested` is set.
public struct Interrupted: DiagnosticError {
    /// The signal that arrived (SIGINT or SIGTERM); the exit status is 128 + it.
    public var signal: Int32
    public init(signal: Int32 = Interrupt.signalNumber) { self.signal = signal }
    public var category: ErrorCategory { .interrupted }
    public var code: String { signal == SIGTERM ? "interrupted.sigterm" : "interrupted.sigint" }
    public var message: String { "interrupted; no partial output was left under a final name (run the same command again to resume)" }
}
