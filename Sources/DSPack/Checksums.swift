import CCrypto
import Numerics

/// The two checksums of a pack, from the system libraries: XXH3-64 (libxxhash, seed 0, default
/// secret) per entry and SHA-256 (OpenSSL libcrypto) over the header.
public enum Checksums {
    /// XXH3-64 of `bytes` in one call.
    public static func xxh3(_ bytes: UnsafeRawBufferPointer) -> UInt64 { XXH3.hash(bytes) }

    /// XXH3-64 over bytes fed in pieces (a tensor written in chunks).
    public typealias XXH3Stream = XXH3.Stream

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
