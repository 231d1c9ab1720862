import CXXHash

/// XXH64 (xxHash, 64-bit, seed 0 by default), streaming, from the system libxxhash: the settings
/// digests and the calibration histogram file's seal. A value type: a copy hashes on from where
/// the original was (the state is copied before either is updated again).
public struct XXH64 {
    private final class State {
        let p: OpaquePointer
        init() { p = XXH64_createState()! }
        init(copying other: State) {
            p = XXH64_createState()!
            XXH64_copyState(p, other.p)
        }
        deinit { XXH64_freeState(p) }
    }
    private var state = State()

    public init(seed: UInt64 = 0) { XXH64_reset(state.p, seed) }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        if !isKnownUniquelyReferenced(&state) { state = State(copying: state) }
        XXH64_update(state.p, base, data.count)
    }

    public func finalize() -> UInt64 { XXH64_digest(state.p) }

    /// One-shot hash of a buffer.
    public static func hash(_ data: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        CXXHash.XXH64(data.baseAddress, data.count, seed)
    }

    /// Lowercase 16-digit hex, as `xxhsum` prints it.
    public static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// XXH3-64 (seed 0, default secret) from the system libxxhash: every .dspack entry's checksum and
/// the resume records' whole-file checksum (the fastest of the three measured by
/// `dsconvert-bench hash`: about 1.5x this machine's XXH64).
public enum XXH3 {
    /// XXH3-64 of `bytes` in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    /// XXH3-64 over bytes fed in pieces (a file or tensor written in chunks).
    public final class Stream {
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
}
