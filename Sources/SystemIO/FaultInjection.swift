#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSystemIO
import Synchronization

/// A process-wide test hook that makes SystemIO's wrappers fail as a real disk or kernel would:
/// `ENOSPC` or `EIO` from a write, read, fsync or rename, `EINTR` (which the wrappers retry), or
/// a short transfer (a write or read that moves fewer bytes than asked; the wrappers continue).
///
/// Compiled in always and inert until `install` is called: each wrapper's only cost then is one
/// relaxed atomic load. Rules match by operation and, optionally, a substring of the path the
/// wrapper reports in its errors (an output's final name, not its temporary); each rule lets
/// `skip` matching calls through and then fires `times` times (nil: on every later call).
/// Tests must `clear()` when done.
public enum FaultInjection {
    public enum Operation: String, Sendable {
        case write, read, fsync, rename
        /// `Sys.reserve` (fallocate), e.g. `ENOSPC` for a disk too small for the whole file.
        case allocate
        /// `flock` in `FileLock.acquire` (e.g. `ENOLCK` or `EOPNOTSUPP`, as a file system without
        /// lock support returns).
        case lock
    }

    public enum Fault: Sendable, Equatable {
        /// The call fails with this errno (`EINTR` is retried by the wrapper).
        case error(Int32)
        /// The call transfers at most this many bytes (at least 1) and reports it.
        case shortTransfer(Int)
    }

    public struct Rule: Sendable {
        public var operation: Operation
        public var fault: Fault
        public var pathContains: String?
        public var skip: Int
        public var times: Int?

        public init(_ operation: Operation, _ fault: Fault, pathContains: String? = nil, skip: Int = 0, times: Int? = 1) {
            precondition(skip >= 0 && (times ?? 1) >= 1)
            if case .shortTransfer(let n) = fault { precondition(n >= 1, "a short transfer moves at least one byte") }
            if case .error(EINTR) = fault { precondition(times != nil, "an endless EINTR would retry forever") }
            self.operation = operation
            self.fault = fault
            self.pathContains = pathContains
            self.skip = skip
            self.times = times
        }
    }

    private struct Armed {
        var rules: [Rule] = []
        var seen: [Int] = []
        var fired: [Int] = []
    }
    private static let state = Mutex(Armed())

    /// Replaces the installed rules with `rules` and arms the hook.
    public static func install(_ rules: [Rule]) {
        state.withLock { $0 = Armed(rules: rules, seen: rules.map { _ in 0 }, fired: rules.map { _ in 0 }) }
        dsc_fault_injection_set_armed(rules.isEmpty ? 0 : 1)
    }

    /// Removes every rule; the wrappers are back to one relaxed load.
    public static func clear() {
        dsc_fault_injection_set_armed(0)
        state.withLock { $0 = Armed() }
    }

    /// How often each installed rule has fired (in `install` order).
    public static var firedCounts: [Int] { state.withLock { $0.fired } }

    /// The fault to inject into this call, if any (the wrappers' only entry point).
    @inline(__always)
    static func fault(_ operation: Operation, path: String) -> Fault? {
        if dsc_fault_injection_is_armed() == 0 { return nil }
        return match(operation, path: path)
    }

    @inline(never)
    private static func match(_ operation: Operation, path: String) -> Fault? {
        state.withLock { s in
            for i in s.rules.indices {
                let r = s.rules[i]
                guard r.operation == operation, r.pathContains.map({ path.contains($0) }) ?? true else { continue }
                s.seen[i] += 1
                if s.seen[i] <= r.skip { continue }
                if let t = r.times, s.fired[i] >= t { continue }
                s.fired[i] += 1
                return r.fault
            }
            return nil
        }
    }
}
