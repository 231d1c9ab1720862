#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What dsconvert asks the operating system about the machine and the process's surroundings:
/// the core count, the page size, whether a stream is a terminal, canonical paths.
extension Sys {
    /// Processors currently online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
    public static var onlineProcessors: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The virtual-memory page size in bytes.
    public static let pageSize: Int = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))

    /// Physical memory in bytes (`_SC_PHYS_PAGES` × page size), or nil when unknown.
    public static var physicalMemory: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        guard pages > 0 else { return nil }
        let (bytes, overflow) = Int(pages).multipliedReportingOverflow(by: pageSize)
        return overflow ? Int.max : bytes
    }

    /// True when file descriptor `fd` is a terminal (`isatty`); 2 is standard error.
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) != 0 }

    /// The canonical absolute path of `path` (symlinks, `.` and `..` resolved); the file must exist.
    public static func realPath(_ path: String) throws -> String {
        guard let r = realpath(path, nil) else { throw IOError("realpath", path: path, errno: errno) }
        defer { free(r) }
        return String(cString: r)
    }
}
