/// Per layer and sequence, what attention needs of past positions. GQA layers keep keys and
/// values ([capacity, kvHeads × headDim] each, keys already rotated). MLA layers keep what
/// DeepSeek's own inference keeps: the normalised compressed latent [capacity, kv_lora_rank] and
/// the rotated shared rope key [capacity, qk_rope_head_dim].
public final class KVCache: @unchecked Sendable {
    public let batch: Int
    public let capacity: Int
    public let layers: Int
    /// Width of the first and second cached rows.
    public let keyWidth: Int
    public let valueWidth: Int
    /// Positions filled (the same for every sequence of the batch).
    public internal(set) var length = 0
    private let storage: UnsafeMutablePointer<Float>

    public init(config: TransformerConfig, batch: Int, capacity: Int) {
        self.batch = batch
        self.capacity = capacity
        layers = config.layers
        if let l = config.latent {
            keyWidth = l.kvLoraRank
            valueWidth = l.ropeDim
        } else {
            keyWidth = config.kvHeads * config.headDim
            valueWidth = keyWidth
        }
        let n = layers * batch * capacity * (keyWidth + valueWidth)
        storage = .allocate(capacity: max(1, n))
        storage.initialize(repeating: 0, count: max(1, n))
    }

    deinit { storage.deallocate() }

    /// Bytes held.
    public var byteCount: Int { layers * batch * capacity * (keyWidth + valueWidth) * 4 }

    /// Key rows of layer `l`, sequence `b` (row stride keyWidth).
    @inline(__always) public func keys(_ l: Int, _ b: Int) -> UnsafeMutablePointer<Float> {
        storage + ((l * batch + b) * capacity) * (keyWidth + valueWidth)
    }

    /// Value rows of layer `l`, sequence `b` (row stride valueWidth).
    @inline(__always) public func values(_ l: Int, _ b: Int) -> UnsafeMutablePointer<Float> {
        keys(l, b) + capacity * keyWidth
    }

    /// Forgets every position.
    public func reset() { length = 0 }

    /// Makes every sequence of this cache the first `n` positions of sequence `b` of `source`
    /// (a cache of the same model): several continuations of one prefix then run as one batch,
    /// the prefix computed once.
    public func fill(prefixOf source: KVCache, sequence b: Int = 0, count n: Int) {
        precondition(source.layers == layers && source.keyWidth == keyWidth && source.valueWidth == valueWidth)
        precondition(b >= 0 && b < source.batch && n >= 0 && n <= source.length && n <= capacity)
        for l in 0..<layers {
            for d in 0..<batch {
                keys(l, d).update(from: source.keys(l, b), count: n * keyWidth)
                values(l, d).update(from: source.values(l, b), count: n * valueWidth)
            }
        }
        length = n
    }

    /// Forgets the positions from `n` on: the next forward continues at position n (eval scores
    /// several continuations of one cached prefix).
    public func truncate(to n: Int) {
        precondition(n >= 0 && n <= length)
        length = n
    }
}
