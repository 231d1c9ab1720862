#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Unmapped on deinit.
///
/// Pages are shared with the page cache (no copy); `release(_:)` drops pages the caller is done
/// with from this process's resident set (`MADV_DONTNEED` on a shared file mapping does not
/// discard data), which is how a conversion keeps its RSS bounded by the tensors in flight.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        let (fd, status) = try Sys.openForReading(path)
        defer { Sys.close(fd) }
        size = status.size
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED { throw IOError("mmap", path: path, errno: errno) }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The bytes `range` of the file (zero-copy).
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= size)
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    public enum Advice { case sequential, willNeed, dontNeed }

    /// Passes an access hint for `range` to the kernel (page-aligned outward; errors ignored).
    public func advise(_ advice: Advice, _ range: Range<Int>? = nil) {
        guard let base else { return }
        let r = range ?? 0..<size
        let page = Sys.pageSize
        let start = r.lowerBound / page * page
        let end = min(size, (r.upperBound + page - 1) / page * page)
        guard end > start else { return }
        let a: Int32
        switch advice {
        case .sequential: a = MADV_SEQUENTIAL
        case .willNeed: a = MADV_WILLNEED
        case .dontNeed: a = MADV_DONTNEED
        }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, a)
    }

    /// Enters the pages holding `bytes` (which lie in a file mapping, e.g. a view's) into the page
    /// tables in one call (`MADV_POPULATE_READ`, Linux 5.14+) instead of a fault every few pages
    /// when they are read; pages not in the page cache are read first. A hint: nothing happens
    /// where it is unsupported.
    public static func populate(_ bytes: UnsafeRawBufferPointer) {
        #if os(Linux)
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Sys.pageSize
        let start = Int(bitPattern: p) / page * page
        let end = (Int(bitPattern: p) + bytes.count + page - 1) / page * page
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, 22 /* MADV_POPULATE_READ */)
        #endif
    }

    /// True when `bytes` lies within the mapping.
    public func contains(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base, let p = bytes.baseAddress else { return false }
        return p >= base && p + bytes.count <= base + size
    }

    /// `advise` for bytes of the mapping given by address (nothing when they are not in it).
    public func advise(_ advice: Advice, mapped bytes: UnsafeRawBufferPointer) {
        guard let base, contains(bytes), let p = bytes.baseAddress else { return }
        let start = p - base
        advise(advice, start..<(start + bytes.count))
    }

    /// Drops the pages wholly inside `range` from the resident set (data stays in the page cache).
    public func release(_ range: Range<Int>) {
        guard let base else { return }
        let page = Sys.pageSize
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}
