#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory lock on a file (`flock`), held while the object lives. The kernel releases it
/// when the process exits or crashes, so a killed run never leaves a folder locked.
///
/// `flock` locks belong to an open file description: two `FileLock`s on one path conflict even
/// inside one process. They hold on one host (and on NFS v4 across hosts, where Linux maps them
/// to byte-range locks); a file system that does not support them at all makes `acquire`
/// return `.unsupported` instead of failing, so the caller can warn and rely on other checks.
public final class FileLock {
    public enum Mode: Sendable {
        /// Many holders at once (`LOCK_SH`); excludes `.exclusive` holders.
        case shared
        /// One holder (`LOCK_EX`).
        case exclusive
    }

    public enum Outcome {
        case acquired(FileLock)
        /// Another holder has a conflicting lock (never waits).
        case busy
        /// The file system refused `flock` itself (EOPNOTSUPP, ENOLCK, ...); `errno` says why.
        case unsupported(errno: Int32)
    }

    public let path: String
    public let mode: Mode
    private var fd: Int32

    private init(path: String, mode: Mode, fd: Int32) {
        self.path = path
        self.mode = mode
        self.fd = fd
    }

    /// Opens (creating it if needed, never truncating) and locks `path` without waiting. Throws
    /// only when the file cannot be opened or created.
    public static func acquire(_ path: String, _ mode: Mode) throws -> Outcome {
        let fd = try Sys.open(path, O_RDWR | O_CREAT, 0o644)
        let op = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        func lock() -> Int32 {
            if case .error(let e)? = FaultInjection.fault(.lock, path: path) { errno = e; return -1 }
            return flock(fd, op)
        }
        while lock() != 0 {
            let e = errno
            if e == EINTR { continue }
            Sys.close(fd)
            if e == EWOULDBLOCK || e == EAGAIN { return .busy }
            return .unsupported(errno: e)
        }
        return .acquired(FileLock(path: path, mode: mode, fd: fd))
    }

    /// Releases the lock now (otherwise on deinit or exit).
    public func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        Sys.close(fd)
        fd = -1
    }

    deinit { release() }
}
