#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSystemIO
import Diagnostics

/// Ctrl-C and SIGTERM handling for long runs: the first signal sets `requested`, which the
/// conversion loops check between chunks so they stop cleanly and remove their temporaries;
/// a second signal removes every registered temporary file at once and exits with 128 + the
/// signal's number (130 for SIGINT, 143 for SIGTERM).
///
/// The handler itself is C (Sources/CSystemIO): it does not allocate or take locks and calls
/// only unlink(2) and _exit(2). Temporaries are registered in a fixed table of preallocated path
/// buffers (`register` / `unregister`, called outside the handler).
public enum Interrupt {
    /// True once SIGINT or SIGTERM has arrived (a relaxed atomic load).
    public static var requested: Bool { dsc_interrupt_count() != 0 }

    /// Installs the handler for SIGINT and SIGTERM (idempotent).
    public static func install() {
        _ = dsc_interrupt_install()
    }

    /// Marks the interruption as requested (tests use this to simulate Ctrl-C).
    public static func request(signal: Int32 = SIGINT) { dsc_interrupt_request(signal) }
    public static func reset() { dsc_interrupt_reset() }

    /// The signal that requested the interruption (SIGINT when none was recorded).
    public static var signalNumber: Int32 {
        let s = dsc_interrupt_signal()
        return s == 0 ? SIGINT : s
    }

    /// How many temporaries can be registered at once.
    public static let capacity = Int(DSC_TEMPORARY_SLOTS)

    /// Records `path` for removal by a second signal; returns the slot to pass to `unregister`,
    /// or nil when the table is full or the path too long (the temporary is then still removed
    /// by the orderly path, and by the next run's stale-temporary cleanup).
    static func register(_ path: String) -> Int32? {
        let slot = dsc_temporary_register(path)
        return slot < 0 ? nil : slot
    }

    static func unregister(_ slot: Int32?) {
        if let slot { dsc_temporary_unregister(slot) }
    }

    /// Temporaries registered now (tests).
    public static var registeredCount: Int { Int(dsc_temporary_count()) }
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
