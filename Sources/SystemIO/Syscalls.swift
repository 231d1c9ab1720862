#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSystemIO

/// The one seam through which dsconvert calls POSIX. Every call is retried on EINTR and turns
/// a failure into an `IOError` naming the path. Reads, writes, fsync and rename consult
/// `FaultInjection` first (one relaxed atomic load when no test has armed it).
public enum Sys {
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r == -1 && errno == EINTR { continue }
            return r
        }
    }

    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws -> Int32 {
        let fd = retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if fd < 0 { throw IOError("open", path: path, errno: errno) }
        return fd
    }

    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    public struct FileStatus: Sendable, Equatable {
        public var size: Int
        public var mtimeNanoseconds: Int64
        public var isDirectory: Bool
        public var isRegular: Bool
    }

    public static func stat(_ path: String) throws -> FileStatus {
        var st = Glibc.stat()
        // fstatat(2) without flags is stat(2) (which Swift's `stat` names the struct): it follows
        // symbolic links and never opens the file, so a FIFO cannot block it.
        if retrying({ () -> Int32 in fstatat(AT_FDCWD, path, &st, 0) }) != 0 { throw IOError("stat", path: path, errno: errno) }
        return status(st)
    }

    public static func fstat(_ fd: Int32, path: String) throws -> FileStatus {
        var st = Glibc.stat()
        if retrying({ () -> Int32 in Glibc.fstat(fd, &st) }) != 0 { throw IOError("stat", path: path, errno: errno) }
        return status(st)
    }

    private static func status(_ st: Glibc.stat) -> FileStatus {
        FileStatus(
            size: Int(st.st_size),
            mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            isDirectory: (st.st_mode & S_IFMT) == S_IFDIR,
            isRegular: (st.st_mode & S_IFMT) == S_IFREG)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool { (try? stat(path))?.isDirectory ?? false }

    /// Reads exactly `count` bytes at `offset`, or throws (a short file is reported as such).
    public static func pread(_ fd: Int32, path: String, into buffer: UnsafeMutableRawPointer, count: Int, offset: Int) throws {
        var done = 0
        while done < count {
            let n = retrying { () -> Int in
                var want = count - done
                switch FaultInjection.fault(.read, path: path) {
                case .error(let e)?: errno = e; return -1
                case .shortTransfer(let k)?: want = min(want, k)
                case nil: break
                }
                return Glibc.pread(fd, buffer + done, want, off_t(offset + done))
            }
            if n < 0 { throw IOError("read", path: path, errno: errno) }
            if n == 0 {
                throw IOError("read", path: path, errno: 0, detail: "file ended at byte \(offset + done), expected \(count - done) more bytes")
            }
            done += n
        }
    }

    /// Writes all of `buffer` at the current position.
    public static func writeAll(_ fd: Int32, path: String, _ buffer: UnsafeRawBufferPointer) throws {
        try writeLoop(fd, path: path, buffer, offset: nil)
    }

    /// Writes all of `buffer` at `offset`, leaving the file position alone (a header written
    /// after the data it describes).
    public static func pwriteAll(_ fd: Int32, path: String, _ buffer: UnsafeRawBufferPointer, offset: Int) throws {
        try writeLoop(fd, path: path, buffer, offset: offset)
    }

    /// The one write loop: retries EINTR, continues after short writes, honours injected faults;
    /// `write(2)` at the current position when `offset` is nil, else `pwrite(2)` at `offset`.
    private static func writeLoop(_ fd: Int32, path: String, _ buffer: UnsafeRawBufferPointer, offset: Int?) throws {
        var done = 0
        while done < buffer.count {
            let n = retrying { () -> Int in
                var want = buffer.count - done
                switch FaultInjection.fault(.write, path: path) {
                case .error(let e)?: errno = e; return -1
                case .shortTransfer(let k)?: want = min(want, k)
                case nil: break
                }
                if let offset { return Glibc.pwrite(fd, buffer.baseAddress! + done, want, off_t(offset + done)) }
                return Glibc.write(fd, buffer.baseAddress! + done, want)
            }
            if n < 0 { throw IOError("write", path: path, errno: errno) }
            if n == 0 { throw IOError("write", path: path, errno: ENOSPC) }
            done += n
        }
    }

    public static func rename(_ from: String, _ to: String) throws {
        let r = retrying { () -> Int32 in
            if case .error(let e)? = FaultInjection.fault(.rename, path: to) { errno = e; return -1 }
            return Glibc.rename(from, to)
        }
        if r != 0 { throw IOError("rename", path: "\(from) -> \(to)", errno: errno) }
    }

    /// Hard-links `from` to `to`; false (and no change) when `to` already exists.
    public static func linkIfAbsent(_ from: String, _ to: String) throws -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        if errno == EEXIST { return false }
        throw IOError("link", path: "\(from) -> \(to)", errno: errno)
    }

    public static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    public static func fsync(_ fd: Int32, path: String) throws {
        let r = retrying { () -> Int32 in
            if case .error(let e)? = FaultInjection.fault(.fsync, path: path) { errno = e; return -1 }
            return Glibc.fsync(fd)
        }
        if r != 0 { throw IOError("fsync", path: path, errno: errno) }
    }

    /// Allocates `bytes` of disk for the file open as `fd` before it is written, its size
    /// unchanged: a disk or quota too small for the whole file fails now, before the first byte,
    /// and the file system can lay the file out in few extents. Throws an `IOError` for a full
    /// disk or quota, an I/O error or a file too large; returns false where the file system or
    /// the platform cannot reserve (the writes then allocate as they go).
    @discardableResult
    public static func reserve(_ fd: Int32, path: String, bytes: Int) throws -> Bool {
        guard bytes > 0 else { return true }
        let r = retrying { () -> Int32 in
            if case .error(let e)? = FaultInjection.fault(.allocate, path: path) { errno = e; return -1 }
            return dsc_reserve(fd, Int64(bytes))
        }
        if r == 0 { return true }
        switch errno {
        case ENOSPC, EDQUOT, EIO, EFBIG: throw IOError("fallocate", path: path, errno: errno)
        default: return false
        }
    }

    public static func makeDirectory(_ path: String) throws {
        // Create parents as needed (like mkdir -p).
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if Glibc.mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw IOError("mkdir", path: prefix, errno: errno)
            }
            if !isDirectory(prefix) { throw IOError("mkdir", path: prefix, errno: ENOTDIR) }
            prefix += "/"
        }
    }

    public static func removeDirectory(_ path: String) { _ = Glibc.rmdir(path) }

    /// Names in a directory (not `.` and `..`), sorted.
    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw IOError("opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Reads a whole (small) file.
    public static func readFile(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        let (fd, status) = try openForReading(path)
        defer { close(fd) }
        let size = status.size
        if size > limit { throw IOError("read", path: path, errno: EFBIG, detail: "\(size) bytes, more than the \(limit) allowed") }
        var bytes = [UInt8](repeating: 0, count: size)
        if size > 0 {
            try bytes.withUnsafeMutableBytes { (b) throws in
                try pread(fd, path: path, into: b.baseAddress!, count: size, offset: 0)
            }
        }
        return bytes
    }

    /// Copies a regular file through an atomic temporary, 8 MiB at a time.
    public static func copyFile(from source: String, to destination: String) throws {
        let (input, status) = try openForReading(source)
        defer { close(input) }
        let size = status.size
        let out = try AtomicFile(destination)
        let chunkSize = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        var copied = 0
        while copied < size {
            let chunk = min(chunkSize, size - copied)
            try pread(input, path: source, into: buffer, count: chunk, offset: copied)
            try out.write(UnsafeRawBufferPointer(start: buffer, count: chunk))
            copied += chunk
        }
        try out.commit()
    }
}
