/// The BPE model of a byte-level tokenizer, over bytes: every vocabulary entry written in the
/// byte-level alphabet is keyed by the bytes it stands for, and merges by the ids of their halves.
struct BPEModel: Sendable {
    /// Token id of each single byte, or -1.
    var byteToken: [Int32]
    /// Vocabulary entries by the bytes they stand for (ignore_merges looks whole words up here).
    var bytesToken: [[UInt8]: Int32]
    /// `(left << 32 | right)` → (rank, merged id).
    var merges: [UInt64: (rank: Int32, id: Int32)]
    var ignoreMerges: Bool
    var unknown: Int32?
    var fuseUnknown: Bool

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The ids of one pre-token (its UTF-8 bytes): lowest-rank merge first, leftmost among equals,
    /// exactly as `tokenizers`' BPE (no dropout).
    func tokenize(_ word: [UInt8], into out: inout [Int32]) {
        if ignoreMerges, let id = bytesToken[word] {
            out.append(id)
            return
        }
        var syms: [Int32] = []
        syms.reserveCapacity(word.count)
        var lastUnknown = false
        for b in word {
            let id = byteToken[Int(b)]
            if id >= 0 {
                syms.append(id)
                lastUnknown = false
            } else if let unknown {
                if !(fuseUnknown && lastUnknown) { syms.append(unknown) }
                lastUnknown = true
            }
        }
        while syms.count > 1 {
            var bestRank = Int32.max
            var bestAt = -1
            var bestId: Int32 = 0
            for k in 0..<(syms.count - 1) {
                if let m = merges[Self.key(syms[k], syms[k + 1])], m.rank < bestRank {
                    bestRank = m.rank
                    bestAt = k
                    bestId = m.id
                }
            }
            if bestAt < 0 { break }
            syms[bestAt] = bestId
            syms.remove(at: bestAt + 1)
        }
        out.append(contentsOf: syms)
    }
}
