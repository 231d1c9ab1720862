#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// An output file that only appears under its final name when it is complete.
///
/// Bytes go to `DIR/.NAME.tmp-HOST-PID-N-RANDOM` beside the destination; `commit()` renames it into place
/// (atomic on POSIX file systems). If the object is dropped without `commit()`, or the process
/// is interrupted (see `Interrupt`), the temporary is removed. A crash that kills the process
/// outright can leave a `.tmp-` file but never a partial file under the final name; the next
/// run removes such leftovers (`AtomicFile.removeStaleTemporaries`).
public final class AtomicFile {
    public let path: String
    public let temporaryPath: String
    public private(set) var fd: Int32
    public private(set) var bytesWritten = 0
    private var done = false

    public init(_ path: String) throws {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        // A name no other writer can hold: PID and a per-process sequence number (two AtomicFiles
        // for one destination in a process), plus the host name and random bits, because the jobs
        // of a job array (Kubernetes pods have PID namespaces: every dsconvert may be PID 1) write
        // into one shared directory at once. O_EXCL makes a collision an error, never a shared file.
        let sequence = AtomicFile.sequence.add(1, ordering: .relaxed).oldValue
        temporaryPath = "\(dir)/.\(name)\(AtomicFile.marker)\(AtomicFile.hostTag)-\(getpid())-\(sequence)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        fd = try Sys.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        Interrupt.register(temporaryPath)
    }

    /// The infix that marks dsconvert's temporary files.
    public static let marker = ".tmp-"
    private static let sequence = Atomic<Int>(0)
    /// The host name, reduced to characters safe in a file name.
    static let hostTag: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        let name = String(cString: buf).filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return name.isEmpty ? "host" : String(name.prefix(32))
    }()

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.isEmpty { return }
        try Sys.writeAll(fd, path: path, bytes)
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (b) throws in try write(b) }
    }

    /// Closes and renames into place. `durable` adds an fsync first.
    public func commit(durable: Bool = false) throws {
        precondition(!done, "AtomicFile committed twice")
        if durable { try Sys.fsync(fd, path: path) }
        Sys.close(fd)
        fd = -1
        try Sys.rename(temporaryPath, path)
        done = true
        Interrupt.unregister(temporaryPath)
    }

    /// Removes the temporary; the destination is left untouched.
    public func abort() {
        guard !done else { return }
        if fd >= 0 { Sys.close(fd); fd = -1 }
        Sys.unlink(temporaryPath)
        done = true
        Interrupt.unregister(temporaryPath)
    }

    deinit { abort() }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let f = try AtomicFile(path)
        try f.write(bytes)
        try f.commit()
    }

    /// Deletes `.NAME.tmp-PID-N` files left in `directory` by runs that were killed.
    public static func removeStaleTemporaries(in directory: String) {
        guard let names = try? Sys.listDirectory(directory) else { return }
        for n in names where n.hasPrefix(".") && n.contains(marker) {
            Sys.unlink("\(directory)/\(n)")
        }
    }
}
