/// XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0 by default): a fast non-cryptographic
/// checksum, streaming. Used for the resume records of output shards.
public struct XXH64 {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @usableFromInline var v1, v2, v3, v4: UInt64
    @usableFromInline var total: UInt64 = 0
    @usableFromInline var buffer = [UInt8](repeating: 0, count: 32)
    @usableFromInline var buffered = 0
    let seed: UInt64

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ XXH64.p1 &+ XXH64.p2
        v2 = seed &+ XXH64.p2
        v3 = seed
        v4 = seed &- XXH64.p1
    }

    @inlinable @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inlinable @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inlinable @inline(__always) static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard var p = data.baseAddress, data.count > 0 else { return }
        var n = data.count
        total &+= UInt64(n)
        if buffered > 0 {
            let take = min(32 - buffered, n)
            buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: buffered).copyMemory(from: p, byteCount: take) }
            buffered += take
            p += take
            n -= take
            if buffered < 32 { return }
            buffer.withUnsafeBytes { consume($0.baseAddress!, 32) }
            buffered = 0
        }
        let whole = n & ~31
        if whole > 0 { consume(p, whole) }
        p += whole
        n -= whole
        if n > 0 {
            buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            buffered = n
        }
    }

    @inlinable mutating func consume(_ p: UnsafeRawPointer, _ n: Int) {
        var a = v1, b = v2, c = v3, d = v4
        var i = 0
        while i < n {
            a = XXH64.round(a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            b = XXH64.round(b, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
            c = XXH64.round(c, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
            d = XXH64.round(d, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
            i += 32
        }
        v1 = a; v2 = b; v3 = c; v4 = d
    }

    public func finalize() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = XXH64.rotl(v1, 1) &+ XXH64.rotl(v2, 7) &+ XXH64.rotl(v3, 12) &+ XXH64.rotl(v4, 18)
            h = XXH64.merge(h, v1); h = XXH64.merge(h, v2); h = XXH64.merge(h, v3); h = XXH64.merge(h, v4)
        } else {
            h = seed &+ XXH64.p5
        }
        h &+= total
        buffer.withUnsafeBytes { b in
            var i = 0
            while i + 8 <= buffered {
                h ^= XXH64.round(0, UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h = XXH64.rotl(h, 27) &* XXH64.p1 &+ XXH64.p4
                i += 8
            }
            if i + 4 <= buffered {
                h ^= UInt64(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* XXH64.p1
                h = XXH64.rotl(h, 23) &* XXH64.p2 &+ XXH64.p3
                i += 4
            }
            while i < buffered {
                h ^= UInt64(b[i]) &* XXH64.p5
                h = XXH64.rotl(h, 11) &* XXH64.p1
                i += 1
            }
        }
        h ^= h >> 33; h = h &* XXH64.p2
        h ^= h >> 29; h = h &* XXH64.p3
        h ^= h >> 32
        return h
    }

    /// One-shot hash of a buffer.
    public static func hash(_ data: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var x = XXH64(seed: seed)
        x.update(data)
        return x.finalize()
    }

    /// Lowercase 16-digit hex, as `xxhsum` prints it.
    public static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
