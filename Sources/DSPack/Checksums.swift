import CCrypto
import CXXHash

/// The two checksums of a pack, from the system libraries: XXH3-64 (libxxhash, seed 0, default
/// secret) per entry and SHA-256 (OpenSSL libcrypto) over the header.
public enum Checksums {
    /// XXH3-64 of `bytes` in one call.
    public static func xxh3(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    /// XXH3-64 over bytes fed in pieces (a tensor written in chunks).
    public final class XXH3Stream {
        private let state: OpaquePointer
        public init() {
            state = XXH3_createState()!
            XXH3_64bits_reset(state)
        }
        deinit { XXH3_freeState(state) }
        public func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            XXH3_64bits_update(state, bytes.baseAddress, bytes.count)
        }
        public var digest: UInt64 { XXH3_64bits_digest(state) }
    }

    /// SHA-256 of `bytes`.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in
            _ = SHA256(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1), bytes.count, o.baseAddress)
        }
        return out
    }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { sha256($0) } }
}
