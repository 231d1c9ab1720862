#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Sys {
    /// Opens `path` for reading only if it is a regular file (following symlinks), and never blocks:
    /// it is opened with `O_NONBLOCK` (a FIFO without a writer, or a device, would otherwise block
    /// `open(2)` or the first read) and checked with `fstat` on the descriptor itself, so the check
    /// and the read concern the same file. A FIFO, socket, device or directory is refused with
    /// `NotRegularFile`; a dangling symlink and a symlink loop get their own messages.
    public static func openForReading(_ path: String) throws -> (fd: Int32, status: FileStatus) {
        let fd = retrying { Glibc.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) }
        if fd < 0 {
            let e = errno
            throw IOError("open", path: path, errno: e, detail: e == ENOENT && isSymbolicLink(path) ? "a symbolic link to a file that does not exist" : nil)
        }
        var st = Glibc.stat()
        if retrying({ Glibc.fstat(fd, &st) }) != 0 {
            let e = errno
            Glibc.close(fd)
            throw IOError("stat", path: path, errno: e)
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            Glibc.close(fd)
            throw NotRegularFile(path: path, kind: kindName(type))
        }
        // Regular files ignore O_NONBLOCK; clear it anyway so the descriptor behaves as usual.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return (fd, try fstat(fd, path: path))
    }

    /// Throws unless `path` is a regular file this process can open for reading (opens and
    /// closes it; reads nothing). Used to check side files before a long conversion.
    public static func checkReadable(_ path: String) throws {
        let (fd, _) = try openForReading(path)
        close(fd)
    }

    /// Whether a directory entry named `path` exists (a symlink counts even when it dangles or
    /// loops). False only when there is no such entry; any other failure (a loop in a parent,
    /// permission denied on the folder) is thrown rather than read as "does not exist".
    public static func entryExists(_ path: String) throws -> Bool {
        var st = Glibc.stat()
        if retrying({ lstat(path, &st) }) == 0 { return true }
        let e = errno
        if e == ENOENT { return false }
        throw IOError("stat", path: path, errno: e)
    }

    /// True when `path` itself is a symbolic link (not followed).
    public static func isSymbolicLink(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    static func kindName(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "fifo"
        case S_IFSOCK: return "socket"
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        case S_IFDIR: return "directory"
        default: return "special file"
        }
    }
}
