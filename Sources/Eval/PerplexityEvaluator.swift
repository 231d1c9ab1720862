import Foundation
import Engine
import SystemIO

/// What a perplexity run measured: per scored token the log-likelihood under each model, and
/// with a reference the per-token KL(P_ref ‖ P_cand), Δp (p_cand − p_ref of the true token) and
/// top-1 agreement. One Double per token is kept (1.1 MB for 141,312 tokens), never the logits.
public struct PerplexityResult: Sendable {
    public let windows: Int
    public let context: Int
    public let scheme: EvalWindows.Scheme
    public var candidateLogP: [Double] = []
    public var referenceLogP: [Double]? = nil
    public var kl = ScalarSample()
    public var deltaP = ScalarSample()
    public var top1 = Agreement()
    public var seconds = 0.0

    public var tokens: Int { candidateLogP.count }

    public init(windows: Int, context: Int, scheme: EvalWindows.Scheme) {
        self.windows = windows
        self.context = context
        self.scheme = scheme
    }

    /// exp(mean negative log-likelihood) and its uncertainty (llama.cpp's `PPL = x +/- u`).
    public static func perplexity(_ logP: [Double]) -> (value: Double, error: Double) {
        var s = ScalarSample()
        for v in logP { s.append(-v) }
        let p = exp(s.mean)
        return (p, p * s.meanError)
    }

    public var comparison: PerplexityComparison? {
        referenceLogP.map { PerplexityComparison(ref: $0, cand: candidateLogP) }
    }
}

/// Runs the windows through the candidate (and the reference, which sees exactly the same
/// windows), `batch` windows per forward call, and scores each window's positions on the workers
/// as soon as its logits exist: memory is the two models' mappings plus one batch of logits.
public struct PerplexityEvaluator {
    public let candidate: Model
    public let reference: Model?
    public let windows: EvalWindows
    public let pool: WorkerPool
    public let batch: Int

    public init(candidate: Model, reference: Model?, windows: EvalWindows, pool: WorkerPool, batch: Int = 1) {
        precondition(batch >= 1)
        if let reference { precondition(reference.config.vocab == candidate.config.vocab) }
        self.candidate = candidate
        self.reference = reference
        self.windows = windows
        self.pool = pool
        self.batch = batch
    }

    /// `progress(windowsDone, scoredTokensDone)` after every batch.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        let t0 = MonotonicClock.seconds()
        var r = PerplexityResult(windows: windows.count, context: windows.context, scheme: windows.scheme)
        r.candidateLogP.reserveCapacity(windows.scoredTokens)
        if reference != nil { r.referenceLogP = []; r.referenceLogP!.reserveCapacity(windows.scoredTokens) }
        let vocab = candidate.config.vocab, c = windows.context
        let first = windows.firstScored, per = windows.scoredPerWindow
        var caches: [Int: (KVCache, KVCache?)] = [:]
        var k = 0
        while k < windows.count {
            let b = min(batch, windows.count - k)
            let group = (k ..< k + b).map { windows.window($0) }
            let inputs = group.map(\.inputs)
            let targets = group.flatMap(\.targets)
            if caches[b] == nil {
                caches[b] = (KVCache(config: candidate.config, batch: b, capacity: c),
                             reference.map { KVCache(config: $0.config, batch: b, capacity: c) })
            }
            let (cc, rc) = caches[b]!
            cc.reset()
            let candLogits = try candidate.forward(inputs, cache: cc, pool: pool)
            var refLogits: Matrix?
            if let reference, let rc {
                rc.reset()
                refLogits = try reference.forward(inputs, cache: rc, pool: pool)
            }
            // Scored position j of window w is logits row w·C + first + j.
            let n = b * per
            var scores = [TokenScore](repeating: TokenScore(refLogP: 0, candLogP: 0, kl: 0, sameTop1: false), count: n)
            scores.withUnsafeMutableBufferPointer { out in
                pool.run(n) { i, _ in
                    let row = (i / per) * c + first + i % per
                    let cand = UnsafeBufferPointer(start: candLogits.row(row), count: vocab)
                    if let refLogits {
                        out[i] = TokenScore.compare(ref: UnsafeBufferPointer(start: refLogits.row(row), count: vocab), cand: cand, target: targets[i])
                    } else {
                        out[i].candLogP = LogSoftmax.logProbability(cand, target: targets[i])
                    }
                }
            }
            for s in scores {
                r.candidateLogP.append(s.candLogP)
                if reference != nil {
                    r.referenceLogP!.append(s.refLogP)
                    r.kl.append(s.kl)
                    r.deltaP.append(exp(s.candLogP) - exp(s.refLogP))
                    r.top1.record(s.sameTop1)
                }
            }
            k += b
            progress(k, k * per)
        }
        r.seconds = MonotonicClock.seconds() - t0
        return r
    }
}
