import Engine

/// Scores every choice of every task under one model: the prefix all choices share runs once
/// into the cache, then each choice's remaining tokens run after it (the cache cut back to the
/// prefix between choices), so a 4-choice item with a 190-token context costs about 250 tokens,
/// not 800.
public struct MultipleChoiceEvaluator {
    public let model: Model
    public let pool: WorkerPool

    public init(model: Model, pool: WorkerPool) {
        self.model = model
        self.pool = pool
    }

    /// `progress(tokensRun)` after each item.
    public func run(_ tasks: [MultipleChoiceTask], progress: (Int) -> Void = { _ in }) throws -> MultipleChoiceResult {
        let capacity = tasks.flatMap(\.sequences).map(\.count).max() ?? 1
        let cache = KVCache(config: model.config, batch: 1, capacity: capacity)
        let vocab = model.config.vocab
        var all: [[Double]] = []
        for task in tasks {
            cache.reset()
            // Positions 0 ..< shared need no logits: the first scored logit is at choiceStart − 1.
            let shared = task.choiceStart.min()! - 1
            if shared > 0 {
                _ = try model.forward([Array(task.sequences[0][0 ..< shared])], cache: cache, logits: .last, pool: pool)
            }
            var scores: [Double] = []
            for (seq, start) in zip(task.sequences, task.choiceStart) {
                cache.truncate(to: shared)
                // Row j predicts seq[shared + j + 1]; the choice's tokens are seq[start...].
                let logits = try model.forward([Array(seq[shared ..< seq.count - 1])], cache: cache, pool: pool)
                var sum = 0.0
                for t in start ..< seq.count {
                    sum += LogSoftmax.logProbability(UnsafeBufferPointer(start: logits.row(t - 1 - shared), count: vocab), target: seq[t])
                }
                scores.append(sum)
            }
            all.append(scores)
            progress(task.forwardTokens)
        }
        return MultipleChoiceResult(scores: all, tasks: tasks)
    }
}
