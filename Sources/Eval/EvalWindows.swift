/// How a text's token ids are cut into the windows the models run, and which positions of each
/// window are scored (the logits at a position predict the token after it).
///
/// - `dsconvert` (the default): window k runs `ids[k·C ..< (k+1)·C]` and scores every one of its
///   C positions against the next id, so it needs `ids[(k+1)·C]` too; windows that would run past
///   the end are dropped: ⌊(N − 1) / C⌋ windows, C scored tokens each. On Samples/eval.txt
///   (141,482 ids) at C = 256: 552 windows, 141,312 tokens — the figure transformers gives in
///   Samples/README.md.
/// - `llamaCpp`: llama.cpp's `llama-perplexity` (tools/perplexity/perplexity.cpp,
///   `perplexity()` and `kl_divergence()`): the ids are those of the text with the tokenizer's
///   special tokens (a BOS in front where it adds one), ⌊N / C⌋ chunks of C ids, the first id of
///   each chunk replaced by the BOS when there is one, positions C/2 … C − 2 scored (C − 1 − C/2
///   tokens per chunk; the first C/2 are context only), and at least 2·C ids needed.
public struct EvalWindows: Sendable {
    public enum Scheme: String, Sendable {
        case dsconvert
        case llamaCpp = "llama.cpp"
    }

    public let scheme: Scheme
    /// Tokens per window (C).
    public let context: Int
    /// Windows.
    public let count: Int
    /// The first scored position of every window, and how many follow it.
    public let firstScored: Int
    public let scoredPerWindow: Int
    /// The id that replaces the first one of each window (llama.cpp's BOS), if any.
    public let bos: Int32?
    public let ids: [Int32]

    /// Tokens scored over all windows.
    public var scoredTokens: Int { count * scoredPerWindow }

    /// Cuts `ids` (the whole text, tokenized once) into windows of `context` ids. Throws
    /// `EvalError.textTooShort` when not even one window (two chunks for llama.cpp's scheme) fits.
    public init(ids: [Int32], context: Int, scheme: Scheme, bos: Int32? = nil) throws {
        precondition(context >= 2)
        self.scheme = scheme
        self.context = context
        self.ids = ids
        switch scheme {
        case .dsconvert:
            guard ids.count >= context + 1 else {
                throw EvalError.textTooShort(tokens: ids.count, needed: context + 1, context: context, scheme: scheme)
            }
            count = (ids.count - 1) / context
            firstScored = 0
            scoredPerWindow = context
            self.bos = nil
        case .llamaCpp:
            guard ids.count >= 2 * context else {
                throw EvalError.textTooShort(tokens: ids.count, needed: 2 * context, context: context, scheme: scheme)
            }
            count = ids.count / context
            firstScored = context / 2
            scoredPerWindow = context - 1 - context / 2
            self.bos = bos
        }
    }

    /// Window k: the `context` ids the model runs, and the true next id of each scored position
    /// (`targets[j]` follows position `firstScored + j`).
    public func window(_ k: Int) -> (inputs: [Int], targets: [Int]) {
        precondition(k >= 0 && k < count)
        let start = k * context
        var inputs = ids[start ..< start + context].map { Int($0) }
        if let bos { inputs[0] = Int(bos) }
        let t0 = start + firstScored + 1
        let targets = ids[t0 ..< t0 + scoredPerWindow].map { Int($0) }
        return (inputs, targets)
    }
}
