import SystemIO

/// Autoregressive generation with a KV cache: the prompt in one forward pass (prefill), then
/// one token per step (decode), each step's logits from the last position only.
public final class Generator {
    public let model: Model
    public let pool: WorkerPool

    public init(model: Model, pool: WorkerPool) {
        self.model = model
        self.pool = pool
    }

    /// What a run produced and how long each phase took.
    public struct Result: Sendable {
        public var tokens: [Int]
        /// Why it stopped: an end-of-sequence token, the token budget, or the model's context.
        public enum Stop: String, Sendable { case endOfSequence = "eos", maxTokens = "max_tokens", context }
        public var stop: Stop
        public var promptTokens: Int
        public var prefillSeconds: Double
        public var decodeSeconds: Double
        public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
        /// Decode steps (tokens after the first, which prefill's logits give) per second.
        public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(0, tokens.count - 1)) / decodeSeconds : 0 }
    }

    /// Generates up to `maxTokens` after `prompt`, stopping at any of `stop` (which is included
    /// in the result). `onToken` sees each token as soon as it is chosen.
    public func generate(prompt: [Int], maxTokens: Int, sampler: Sampler = Sampler(), stop: Set<Int> = [],
                         onToken: (Int) -> Void = { _ in }) throws -> Result {
        guard !prompt.isEmpty else { throw EngineError.input("the prompt has no tokens") }
        guard maxTokens >= 0 else { throw EngineError.input("the token budget must not be negative") }
        let limit = model.config.maxPositions
        guard prompt.count <= limit else {
            throw EngineError.input("the prompt has \(prompt.count) tokens, more than the model's max_position_embeddings \(limit)")
        }
        let capacity = min(limit, prompt.count + maxTokens)
        let cache = KVCache(config: model.config, batch: 1, capacity: max(capacity, prompt.count))
        var sampler = sampler
        var out: [Int] = []
        let t0 = MonotonicClock.seconds()
        var logits = try model.forward([prompt], cache: cache, logits: .last, pool: pool)
        let t1 = MonotonicClock.seconds()
        var reason = Result.Stop.maxTokens
        while out.count < maxTokens {
            let next = sampler.next(logits.data, count: logits.cols)
            out.append(next)
            onToken(next)
            if stop.contains(next) { reason = .endOfSequence; break }
            if out.count == maxTokens { break }
            if cache.length >= capacity { reason = .context; break }
            logits = try model.forward([[next]], cache: cache, logits: .last, pool: pool)
        }
        let t2 = MonotonicClock.seconds()
        return Result(tokens: out, stop: reason, promptTokens: prompt.count, prefillSeconds: t1 - t0, decodeSeconds: t2 - t1)
    }
}
