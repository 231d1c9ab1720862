#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// An output file that only appears under its final name when it is complete.
///
/// Bytes go to `DIR/.dsconvert-tmp-HOST-PID-N-RANDOM-NAME` beside the destination; `commit()`
/// renames it into place (atomic on POSIX file systems). If the object is dropped without
/// `commit()`, or the process is interrupted (see `Interrupt`), the temporary is removed. A crash
/// that kills the process outright can leave a temporary but never a partial file under the final
/// name; the next run removes such leftovers (`AtomicFile.removeTemporaries`), recognising them by
/// the strict name format (`TemporaryName`) and nothing else, so a user's own dotfiles are never touched.
public final class AtomicFile {
    public let path: String
    public let temporaryPath: String
    public fileprivate(set) var fd: Int32
    public private(set) var bytesWritten = 0
    private var done = false
    /// The slot in `Interrupt`'s table of temporaries (nil when the table was full).
    private var interruptSlot: Int32?

    public init(_ path: String) throws {
        self.path = path
        temporaryPath = AtomicFile.temporarySibling(of: path)
        // Registered before the file exists, so there is no moment when a second signal would
        // leave it behind (unlinking a name not yet created is harmless).
        interruptSlot = Interrupt.register(temporaryPath)
        do {
            fd = try Sys.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        } catch {
            Interrupt.unregister(interruptSlot)
            throw error
        }
    }

    private static let sequence = Atomic<Int>(0)
    /// A per-process sequence number (shared with `AtomicDirectory`'s names).
    /// A fresh temporary name beside `path`, in the folder `path` will be renamed into. No other
    /// writer can hold it: PID and a per-process sequence number (two writers for one destination
    /// in a process), plus the host name and random bits, because the jobs of a job array
    /// (Kubernetes pods have PID namespaces: every dsconvert may be PID 1) write into one shared
    /// directory at once. Creating it with O_EXCL / mkdir makes a collision an error, never a share.
    static func temporarySibling(of path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let t = TemporaryName(host: hostTag, pid: Int(getpid()), sequence: nextSequence(), random: UInt32.random(in: 0...UInt32.max), target: name)
        return "\(dir)/\(t.fileName)"
    }

    static func nextSequence() -> Int { sequence.add(1, ordering: .relaxed).oldValue }
    /// The host name, reduced to ASCII letters and digits (the fields of a temporary name are
    /// separated by `-`), at most 32 of them.
    static let hostTag: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        var name = ""
        for u in String(cString: buf).unicodeScalars where name.count < 32 {
            if ("a"..."z").contains(u) || ("A"..."Z").contains(u) || ("0"..."9").contains(u) { name.unicodeScalars.append(u) }
        }
        return name.isEmpty ? "host" : name
    }()

    /// Allocates the disk blocks of a file of `bytes` before it is written (`Sys.reserve`): a
    /// disk too small fails here, before the first byte. False where it cannot be reserved.
    @discardableResult
    public func reserve(_ bytes: Int) throws -> Bool { try Sys.reserve(fd, path: path, bytes: bytes) }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.isEmpty { return }
        try Sys.writeAll(fd, path: path, bytes)
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (b) throws in try write(b) }
    }

    /// Overwrites bytes already written at `offset` (e.g. a header that follows from the data).
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        precondition(offset + bytes.count <= bytesWritten, "AtomicFile.write(at:) past the end")
        if bytes.isEmpty { return }
        try Sys.pwriteAll(fd, path: path, bytes, offset: offset)
    }

    /// Closes and renames into place. `durable` adds an fsync first.
    public func commit(durable: Bool = false) throws {
        precondition(!done, "AtomicFile committed twice")
        if durable { try Sys.fsync(fd, path: path) }
        Sys.close(fd)
        fd = -1
        try Sys.rename(temporaryPath, path)
        done = true
        Interrupt.unregister(interruptSlot)
    }

    /// Removes the temporary; the destination is left untouched.
    public func abort() {
        guard !done else { return }
        if fd >= 0 { Sys.close(fd); fd = -1 }
        Sys.unlink(temporaryPath)
        done = true
        Interrupt.unregister(interruptSlot)
    }

    deinit { abort() }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let f = try AtomicFile(path)
        try f.write(bytes)
        try f.commit()
    }

    /// Writes `bytes` to `path` only if nothing is there yet: the temporary is hard-linked to
    /// `path` (atomic, and exclusive also on NFS) and returns false, leaving `path` as it was,
    /// when `path` already exists.
    public static func writeIfAbsent(_ bytes: [UInt8], to path: String) throws -> Bool {
        let f = try AtomicFile(path)
        defer { f.abort() }
        try f.write(bytes)
        Sys.close(f.fd)
        f.fd = -1
        return try Sys.linkIfAbsent(f.temporaryPath, path)
    }

    /// Deletes the temporaries that killed runs left in `directory` — only names in dsconvert's
    /// own format (`TemporaryName`), and with `target` only those of that destination name.
    /// Returns the names removed.
    @discardableResult
    public static func removeTemporaries(in directory: String, of target: String? = nil) -> [String] {
        guard let names = try? Sys.listDirectory(directory) else { return [] }
        var removed: [String] = []
        for n in names {
            guard let t = TemporaryName(parsing: n), target == nil || t.target == target else { continue }
            Sys.unlink("\(directory)/\(n)")
            removed.append(n)
        }
        return removed
    }

    /// True when `fileName` (a name, not a path) is one of dsconvert's temporaries.
    public static func isTemporary(_ fileName: String) -> Bool { TemporaryName(parsing: fileName) != nil }
}

/// The name of an `AtomicFile` temporary: `.dsconvert-tmp-HOST-PID-SEQ-RANDOM-NAME`, where HOST
/// is 1–32 ASCII letters and digits, PID and SEQ are decimal numbers, RANDOM is exactly 8
/// lowercase hex digits and NAME is the destination's file name. Parsing is strict: a name that
/// deviates in any field is not a dsconvert temporary, so cleanup never deletes a user's file.
public struct TemporaryName: Equatable, Sendable {
    public static let prefix = ".dsconvert-tmp-"
    public var host: String
    public var pid: Int
    public var sequence: Int
    public var random: UInt32
    /// The destination's file name.
    public var target: String

    public init(host: String, pid: Int, sequence: Int, random: UInt32, target: String) {
        self.host = host
        self.pid = pid
        self.sequence = sequence
        self.random = random
        self.target = target
    }

    public var fileName: String {
        let hex = String(random, radix: 16)
        return "\(TemporaryName.prefix)\(host)-\(pid)-\(sequence)-\(String(repeating: "0", count: 8 - hex.count))\(hex)-\(target)"
    }

    public init?(parsing name: String) {
        guard name.hasPrefix(TemporaryName.prefix) else { return nil }
        let fields = name.dropFirst(TemporaryName.prefix.count).split(separator: "-", maxSplits: 4, omittingEmptySubsequences: false)
        guard fields.count == 5 else { return nil }
        let host = fields[0], pid = fields[1], seq = fields[2], rnd = fields[3], target = fields[4]
        func isDigits(_ s: Substring, max: Int) -> Bool { !s.isEmpty && s.count <= max && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard !host.isEmpty, host.count <= 32,
              host.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }),
              isDigits(pid, max: 10), isDigits(seq, max: 18),
              rnd.utf8.count == 8, rnd.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
              !target.isEmpty, target != ".", target != "..", !target.contains("/"),
              let p = Int(pid), let s = Int(seq), let r = UInt32(rnd, radix: 16) else { return nil }
        self.init(host: String(host), pid: p, sequence: s, random: r, target: String(target))
    }
}
