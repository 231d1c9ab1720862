#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Diagnostics

/// A failed system call: which operation, on which path, and the OS's reason.
///
/// Printed as `/out/model-00001-of-00005.safetensors: write failed: No space left on device`.
public struct IOError: DiagnosticError {
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

    public var category: ErrorCategory { .io }
    public var file: String? { path }

    /// Stable codes for the reasons users act on differently; `io.failed` for the rest.
    public var code: String {
        switch errno {
        case 0: return detail == nil ? "io.failed" : "io.short_read"
        case ENOENT: return "io.not_found"
        case EACCES, EPERM: return "io.permission_denied"
        case ELOOP: return "io.symlink_loop"
        case ENOSPC, EDQUOT: return "io.disk_full"
        case EISDIR: return "io.is_directory"
        case ENOTDIR: return "io.not_directory"
        case EFBIG: return "io.too_large"
        default: return "io.failed"
        }
    }

    /// The message without the path: `write failed: No space left on device — …`.
    public var reason: String {
        let why: String
        switch errno {
        case 0: why = ""
        case ELOOP: why = ": too many levels of symbolic links (a symlink loop?)"
        default: why = ": " + String(cString: strerror(errno))
        }
        let extra = detail.map { " (\($0))" } ?? ""
        let hint = isDiskFull ? " — free some space or choose another output directory, then run the same command again to resume" : ""
        return "\(operation) failed\(why)\(extra)\(hint)"
    }

    public var message: String { reason }
}

/// A path that exists but is not a regular file (a FIFO, socket or device) where dsconvert reads
/// a file: refused at once instead of blocking on it.
public struct NotRegularFile: DiagnosticError {
    public var path: String
    /// `fifo`, `socket`, `character device`, `block device`, `directory` or `special file`.
    public var kind: String

    public init(path: String, kind: String) {
        self.path = path
        self.kind = kind
    }

    public var category: ErrorCategory { .input }
    public var code: String { kind == "directory" ? "io.is_directory" : "io.not_regular_file" }
    public var file: String? { path }
    public var message: String { "is a \(kind), not a regular file; dsconvert reads only regular files" }
}
