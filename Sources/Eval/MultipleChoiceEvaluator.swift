import Engine

/// Scores every choice of every task under one model: the prefix all choices share runs once
/// into the cache, then the choices' remaining tokens run after it as one batch (the prefix
/// copied to every sequence of the batch, each choice padded at its end to the longest; causal
/// attention keeps the padding from reaching any scored position, and no logits are computed for
/// it), so a 4-choice item with a 190-token context costs about 250 tokens, not 800, in two
/// forward calls, each weight tile decoded once per call rather than once per choice.
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
        let prefixCache = KVCache(config: model.config, batch: 1, capacity: capacity)
        var choiceCaches: [Int: KVCache] = [:]
        let vocab = model.config.vocab
        var all: [[Double]] = []
        for task in tasks {
            prefixCache.reset()
            // Positions 0 ..< shared need no logits: the first scored logit is at choiceStart − 1.
            let shared = task.choiceStart.min()! - 1
            if shared > 0 {
                _ = try model.forward([Array(task.sequences[0][0 ..< shared])], cache: prefixCache, logits: .last, pool: pool)
            }
            let n = task.sequences.count
            if choiceCaches[n] == nil { choiceCaches[n] = KVCache(config: model.config, batch: n, capacity: capacity) }
            let cache = choiceCaches[n]!
            cache.fill(prefixOf: prefixCache, count: shared)
            // Sequence b runs seq[shared ..< count − 1], padded with its last input token to the
            // longest; its row j predicts seq[shared + j + 1], and the choice's tokens are
            // seq[start...], so its scored rows are start − 1 − shared ..< count − 1 − shared.
            let width = task.sequences.map { $0.count - 1 - shared }.max()!
            var inputs: [[Int]] = [], rows: [Int] = [], firstRow: [Int] = []
            for (b, (seq, start)) in zip(task.sequences, task.choiceStart).enumerated() {
                let own = Array(seq[shared ..< seq.count - 1])
                inputs.append(own + Array(repeating: own.last!, count: width - own.count))
                firstRow.append(rows.count)
                rows += (start - 1 - shared ..< seq.count - 1 - shared).map { b * width + $0 }
            }
            let logits = try model.forward(inputs, cache: cache, logits: .rows(rows), pool: pool)
            var scores: [Double] = []
            for (b, (seq, start)) in zip(task.sequences, task.choiceStart).enumerated() {
                var sum = 0.0
                for (i, t) in (start ..< seq.count).enumerated() {
                    sum += LogSoftmax.logProbability(UnsafeBufferPointer(start: logits.row(firstRow[b] + i), count: vocab), target: seq[t])
                }
                scores.append(sum)
            }
            all.append(scores)
            progress(task.forwardTokens)
        }
        return MultipleChoiceResult(scores: all, tasks: tasks)
    }
}
