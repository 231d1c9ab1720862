import Engine
import Foundation
import SystemIO
import Tokenizer

/// Reports what an evaluation is doing (the command line draws a bar or writes log lines).
public protocol EvalObserver: AnyObject {
    /// A phase begins: `tokens` is what the models will run in it.
    func begin(_ phase: String, tokens: Int)
    /// `tokens` more have run.
    func advance(tokens: Int)
    func end()
}

/// One `dsconvert eval`: the text's perplexity (and, with a reference, the comparison) and the
/// multiple-choice accuracies, for the candidate and the reference.
public struct Evaluation {
    public struct Options: Sendable {
        public var textPath: String?
        public var multipleChoicePath: String?
        public var context = 256
        public var scheme = EvalWindows.Scheme.dsconvert
        /// Windows per forward call.
        public var batch = 1
        /// Score each model with its own tokenizer and skip the per-token comparison.
        public var allowTokenizerMismatch = false
        public init() {}
    }

    public let candidate: EvalModel
    public let reference: EvalModel?
    public let options: Options
    public let pool: WorkerPool

    public init(candidate: EvalModel, reference: EvalModel?, options: Options, pool: WorkerPool) {
        self.candidate = candidate
        self.reference = reference
        self.options = options
        self.pool = pool
    }

    public func run(observer: EvalObserver? = nil) throws -> EvalReport {
        let t0 = MonotonicClock.seconds()
        var report = EvalReport(candidatePath: candidate.path, referencePath: reference?.path, options: options)
        let text = try options.textPath.map(Self.readText)
        let items = try options.multipleChoicePath.map(MultipleChoiceItem.read)
        let shared: Bool
        if let reference {
            shared = try compatible(reference, text: text, items: items)
        } else {
            shared = true
        }
        report.tokenizersCompared = reference != nil && shared
        let models = [candidate] + (reference.map { [$0] } ?? [])

        if let text {
            let windowsOf = { (m: EvalModel) throws -> EvalWindows in
                let special = options.scheme == .llamaCpp
                return try EvalWindows(ids: m.tokenizer.encode(text, addSpecialTokens: special), context: options.context,
                                       scheme: options.scheme, bos: special ? m.bos : nil)
            }
            let w = try windowsOf(candidate)
            if shared {
                let tokens = w.count * w.context * models.count
                observer?.begin("perplexity", tokens: tokens)
                let e = PerplexityEvaluator(candidate: candidate.model, reference: reference?.model, windows: w, pool: pool, batch: options.batch)
                var last = 0
                report.perplexity = try e.run { done, _ in
                    observer?.advance(tokens: (done - last) * w.context * models.count); last = done
                }
                observer?.end()
            } else {
                for (i, m) in models.enumerated() {
                    let mw = i == 0 ? w : try windowsOf(m)
                    observer?.begin(i == 0 ? "perplexity (candidate)" : "perplexity (reference)", tokens: mw.count * mw.context)
                    let e = PerplexityEvaluator(candidate: m.model, reference: nil, windows: mw, pool: pool, batch: options.batch)
                    var last = 0
                    let r = try e.run { done, _ in observer?.advance(tokens: (done - last) * mw.context); last = done }
                    if i == 0 { report.perplexity = r } else { report.referencePerplexity = r }
                    observer?.end()
                }
            }
        }
        if let items, let path = options.multipleChoicePath {
            for (i, m) in models.enumerated() {
                let tasks = try items.map { try MultipleChoiceTask($0, tokenizer: m.tokenizer, file: path) }
                report.choiceTokens += tasks.reduce(0) { $0 + $1.forwardTokens }
                observer?.begin(i == 0 ? "multiple choice (candidate)" : "multiple choice (reference)", tokens: tasks.reduce(0) { $0 + $1.forwardTokens })
                let r = try MultipleChoiceEvaluator(model: m.model, pool: pool).run(tasks) { observer?.advance(tokens: $0) }
                if i == 0 { report.candidateChoices = r } else { report.referenceChoices = r }
                observer?.end()
            }
        }
        report.seconds = MonotonicClock.seconds() - t0
        return report
    }

    /// Whether both models can be compared token by token: the same vocabulary, and the same
    /// tokenizer.json (or tokenizers that give the same ids for every text eval encodes). Throws
    /// `EvalError.tokenizerMismatch` when not, unless `allowTokenizerMismatch` (then false).
    func compatible(_ reference: EvalModel, text: String?, items: [MultipleChoiceItem]?) throws -> Bool {
        func mismatch(_ m: String) throws -> Bool {
            if options.allowTokenizerMismatch { return false }
            throw EvalError.tokenizerMismatch(m + "; --allow-tokenizer-mismatch scores each model with its own tokenizer and skips the per-token comparison")
        }
        guard candidate.vocab == reference.vocab else {
            return try mismatch("the candidate's vocab_size is \(candidate.vocab) and the reference's \(reference.vocab): KL and top-1 need one vocabulary")
        }
        if candidate.sameTokenizerFile(as: reference) { return true }
        var strings: [String] = text.map { [$0] } ?? []
        for item in items ?? [] { strings.append(item.context); strings += item.choices.map { item.context + $0 } }
        let special = options.scheme == .llamaCpp
        for s in strings {
            let a = candidate.tokenizer.encode(s, addSpecialTokens: special), b = reference.tokenizer.encode(s, addSpecialTokens: special)
            if a != b {
                let i = (0 ..< min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
                let what = i < min(a.count, b.count) ? "id \(a[i]) against \(b[i])" : "\(a.count) against \(b.count) ids"
                return try mismatch("the candidate's tokenizer (\(candidate.tokenizer.file ?? candidate.path)) and the reference's (\(reference.tokenizer.file ?? reference.path)) differ: at token \(i) of the eval input, \(what)")
            }
        }
        if special && candidate.bos != reference.bos {
            return try mismatch("the candidate's and the reference's tokenizers add different BOS tokens")
        }
        return true
    }

    public static func readText(_ path: String) throws -> String {
        let bytes = try Sys.readFile(path)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            // The first byte where decoding fails.
            var offset = 0
            var it = bytes.makeIterator()
            var decoder = UTF8()
            loop: while true {
                switch decoder.decode(&it) {
                case .scalarValue(let u): offset += UTF8.width(u)
                case .emptyInput: break loop
                case .error: break loop
                }
            }
            throw EvalError.input(file: path, "is not valid UTF-8 (from byte \(offset))")
        }
        return s
    }
}
