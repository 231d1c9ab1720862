import Dispatch
import SystemIO

/// `verify` (Formats/dspack.md §7.2) beyond what opening checks: every entry's XXH3-64 and that
/// every gap and the tail of the data region are zero, spread over all cores, reporting every
/// failing entry and range rather than the first.
public enum DSPackVerifier {
    /// The failures, in file order (empty when the pack is intact). `progress` gets bytes checked.
    public static func verify(_ pack: DSPackFile, progress: ((Int) -> Void)? = nil) -> [DSPackError] {
        let all = pack.mapping.bytes(0..<pack.mapping.size)
        let entries = pack.entries
        // Work items: whole entries, the gap after each, and the data region's tail; large entries
        // are hashed in one stream (XXH3 is sequential) but different entries run in parallel.
        var found = [DSPackError?](repeating: nil, count: entries.count * 2 + 1)
        let dataEnd = pack.dataOffset + pack.dataSize
        let lock = PThreadLock()
        var done = 0
        found.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: entries.count + 1) { i in
                if i < entries.count {
                    let e = entries[i]
                    let b = UnsafeRawBufferPointer(rebasing: all[e.dataOffset..<(e.dataOffset + e.dataSize)])
                    pack.mapping.advise(.sequential, e.dataOffset..<(e.dataOffset + e.dataSize))
                    let h = Checksums.xxh3(b)
                    if h != e.xxh3 {
                        out[2 * i] = DSPackError(.checksumMismatch, file: pack.location, tensor: e.name, offset: e.dataOffset,
                            "checksum_mismatch: \(e.kind == .file ? "embedded file" : "tensor") data [\(e.dataOffset), \(e.dataOffset + e.dataSize)) has XXH3-64 \(hex(h)), the table says \(hex(e.xxh3))")
                    }
                    pack.mapping.release(e.dataOffset..<(e.dataOffset + e.dataSize))
                    let gapEnd = i + 1 < entries.count ? entries[i + 1].dataOffset : dataEnd
                    out[2 * i + 1] = zeroCheck(all, (e.dataOffset + e.dataSize)..<gapEnd, pack: pack, after: e.name)
                    lock.withLock { done += gapEnd - e.dataOffset; progress?(done) }
                } else {
                    let start = entries.first?.dataOffset ?? dataEnd
                    out[2 * entries.count] = zeroCheck(all, pack.dataOffset..<start, pack: pack, after: nil)
                }
            }
        }
        return found.compactMap { $0 }
    }

    /// `--verify` on load: verifies `pack` as `verify` does and throws when anything fails, with
    /// the first failure's code, entry and offset, and the names of up to eight failing entries.
    public static func requireIntact(_ pack: DSPackFile) throws {
        let errors = verify(pack)
        guard let first = errors.first(where: { $0.kind == .checksumMismatch }) ?? errors.first else { return }
        let named = errors.compactMap(\.tensor)
        var e = first
        if errors.count > 1 {
            e.message += " (\(errors.count) failures in all\(named.isEmpty ? "" : ": " + named.prefix(8).map { "'\($0)'" }.joined(separator: ", ") + (named.count > 8 ? ", …" : "")))"
        }
        throw e
    }

    private static func zeroCheck(_ all: UnsafeRawBufferPointer, _ r: Range<Int>, pack: DSPackFile, after: String?) -> DSPackError? {
        guard !r.isEmpty, let first = all.firstNonZero(in: r) else { return nil }
        let last = r.last(where: { all[$0] != 0 })!
        return DSPackError(.paddingNonzero, file: pack.location, tensor: after, offset: first,
            "padding_nonzero: bytes [\(first), \(last + 1)) in the zero gap [\(r.lowerBound), \(r.upperBound)) \(after == nil ? "before the first entry" : "after this entry") are not zero")
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - s.count) + s
    }
}
