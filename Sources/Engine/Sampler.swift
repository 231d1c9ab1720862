import Numerics
import Glibc

/// Picks the next token from a row of logits: greedy (argmax, lowest id on ties) by default, or
/// sampling with a temperature and nucleus (top-p) cut from a seeded generator, so a run with
/// the same seed gives the same tokens.
public struct Sampler: Sendable {
    /// 0 is greedy.
    public var temperature: Float
    /// Keep the most likely tokens whose probabilities sum to at least `topP` (1 keeps all).
    public var topP: Float
    private var rng: SplitMix64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        rng = SplitMix64(seed: seed)
    }

    public var isGreedy: Bool { temperature == 0 }

    /// The next token for `logits` (`count` values).
    public mutating func next(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        if isGreedy { return Sampler.argmax(logits, count: count) }
        // Softmax of logits / T in f64, then the nucleus, then one draw.
        var best: Float = -.infinity
        for i in 0..<count where logits[i] > best { best = logits[i] }
        var p = [(Int, Double)]()
        p.reserveCapacity(count)
        var sum = 0.0
        for i in 0..<count {
            let e = exp(Double((logits[i] - best) / temperature))
            p.append((i, e))
            sum += e
        }
        p.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        var kept = 0, mass = 0.0
        for (_, e) in p {
            kept += 1
            mass += e / sum
            if mass >= Double(topP) { break }
        }
        let u = rng.nextUnit() * mass
        var acc = 0.0
        for k in 0..<kept {
            acc += p[k].1 / sum
            if u < acc { return p[k].0 }
        }
        return p[kept - 1].0
    }

    /// Index of the largest value, the lowest index on ties (as torch.argmax); NaN never wins.
    public static func argmax(_ v: UnsafePointer<Float>, count: Int) -> Int {
        var bi = 0
        var bv = -Float.infinity
        for i in 0..<count where v[i] > bv {
            bv = v[i]
            bi = i
        }
        return bi
    }
}
