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

    /// One candidate merge: the pair starting at symbol `pos`, of rank `rank`, into `id`.
    private struct Candidate {
        var rank: Int32
        var pos: Int32
        var id: Int32
        @inline(__always) static func < (a: Candidate, b: Candidate) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }
    }

    /// The ids of one pre-token (its UTF-8 bytes), merged as `tokenizers`' BPE merges a word (no
    /// dropout): a priority queue of adjacent pairs by (rank, position); a popped pair whose
    /// symbols have changed since it was queued is skipped; each merge queues the new pairs with
    /// its neighbours. O(n log n) in the length of the word.
    func tokenize(_ word: [UInt8], into out: inout [Int32]) {
        if ignoreMerges, let id = bytesToken[word] {
            out.append(id)
            return
        }
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        var lastUnknown = false
        for b in word {
            let id = byteToken[Int(b)]
            if id >= 0 {
                ids.append(id)
                lastUnknown = false
            } else if let unknown {
                if !(fuseUnknown && lastUnknown) { ids.append(unknown) }
                lastUnknown = true
            }
        }
        let n = ids.count
        if n < 2 {
            out.append(contentsOf: ids)
            return
        }
        // Doubly linked symbols; `alive[i]` false once merged into its left neighbour.
        var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Int32(i) - 1 }; c = n }
        var next = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Int32(i) + 1 }; c = n }
        var alive = [Bool](repeating: true, count: n)
        var heap: [Candidate] = []
        heap.reserveCapacity(n)
        func push(_ c: Candidate) {
            heap.append(c)
            var k = heap.count - 1
            while k > 0 {
                let p = (k - 1) / 2
                if !(heap[k] < heap[p]) { break }
                heap.swapAt(k, p)
                k = p
            }
        }
        func pop() -> Candidate? {
            guard let last = heap.popLast() else { return nil }
            guard !heap.isEmpty else { return last }
            let top = heap[0]
            heap[0] = last
            var k = 0
            while true {
                let l = 2 * k + 1, r = l + 1
                var m = k
                if l < heap.count && heap[l] < heap[m] { m = l }
                if r < heap.count && heap[r] < heap[m] { m = r }
                if m == k { break }
                heap.swapAt(k, m)
                k = m
            }
            return top
        }
        for i in 0..<(n - 1) {
            if let m = merges[Self.key(ids[i], ids[i + 1])] { push(Candidate(rank: m.rank, pos: Int32(i), id: m.id)) }
        }
        while let top = pop() {
            let p = Int(top.pos)
            guard alive[p], next[p] < n else { continue }
            let q = Int(next[p])
            // Skip an entry queued for symbols that have changed since.
            guard let m = merges[Self.key(ids[p], ids[q])], m.id == top.id else { continue }
            ids[p] = top.id
            alive[q] = false
            next[p] = next[q]
            if next[q] < n { prev[Int(next[q])] = top.pos }
            if prev[p] >= 0, let l = merges[Self.key(ids[Int(prev[p])], ids[p])] {
                push(Candidate(rank: l.rank, pos: prev[p], id: l.id))
            }
            if next[p] < n, let r = merges[Self.key(ids[p], ids[Int(next[p])])] {
                push(Candidate(rank: r.rank, pos: top.pos, id: r.id))
            }
        }
        var i = 0
        while i < n {
            out.append(ids[i])
            i = Int(next[i])
        }
    }
}
