#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which operation, on which path, and the OS's reason.
///
/// Printed as `write /out/model-00001-of-00005.safetensors: No space left on device`.
public struct IOError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var errno: Int32
    public var detail: String?

    public init(_ operation: String, path: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    /// True when the disk (or quota) is full.
    public var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }

    /// The message without the path: `write failed: No space left on device — …`.
    public var reason: String {
        let why = errno == 0 ? "" : ": " + String(cString: strerror(errno))
        let extra = detail.map { " (\($0))" } ?? ""
        let hint = isDiskFull ? " — free some space or choose another output directory, then run the same command again to resume" : ""
        return "\(operation) failed\(why)\(extra)\(hint)"
    }

    public var description: String {
        let reason = errno == 0 ? "" : ": " + String(cString: strerror(errno))
        let extra = detail.map { " (\($0))" } ?? ""
        let hint = isDiskFull ? " — free some space or choose another output directory, then run the same command again to resume" : ""
        return "\(operation) \(path)\(reason)\(extra)\(hint)"
    }
}
