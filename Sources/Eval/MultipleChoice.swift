import Foundation
import JSON
import SystemIO
import Tokenizer

/// One multiple-choice item of a JSONL file: `{"context": "...", "choices": ["...", ...],
/// "label": i}` (the shape of HellaSwag / ARC / MMLU exports), with its 1-based line number.
public struct MultipleChoiceItem: Equatable, Sendable {
    public let context: String
    public let choices: [String]
    public let label: Int
    public let line: Int

    public init(context: String, choices: [String], label: Int, line: Int) {
        self.context = context
        self.choices = choices
        self.label = label
        self.line = line
    }

    /// Reads every non-blank line of `path`; a line that is not such an object, a label out of
    /// range, fewer than two choices or an empty choice is an `EvalError.invalidItem` naming the line.
    public static func read(path: String) throws -> [MultipleChoiceItem] {
        let bytes = try Sys.readFile(path)
        var items: [MultipleChoiceItem] = []
        var lineNo = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            let line = Array(raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw[...])
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            items.append(try parse(line, file: path, line: lineNo))
        }
        guard !items.isEmpty else { throw EvalError.input(file: path, "holds no multiple-choice item") }
        return items
    }

    static func parse(_ line: [UInt8], file: String, line n: Int) throws -> MultipleChoiceItem {
        func bad(_ m: String) -> EvalError { .invalidItem(file: file, line: n, m) }
        let v: JSONValue
        do { v = try JSONParser.parse(line) } catch { throw bad("not valid JSON: \(error.message)") }
        guard v.objectMembers != nil else { throw bad("expected an object {\"context\", \"choices\", \"label\"}") }
        guard let context = v["context"]?.stringValue else { throw bad("\"context\" must be a string") }
        guard let list = v["choices"]?.arrayValue else { throw bad("\"choices\" must be an array of strings") }
        var choices: [String] = []
        for (i, c) in list.enumerated() {
            guard let s = c.stringValue else { throw bad("choice \(i) is not a string") }
            guard !s.isEmpty else { throw bad("choice \(i) is empty: an empty choice has no tokens to score") }
            choices.append(s)
        }
        guard choices.count >= 2 else { throw bad("\"choices\" holds \(choices.count) choice(s); at least 2 are needed") }
        guard let labelValue = v["label"], let label = labelValue.intValue else { throw bad("\"label\" must be an integer") }
        guard (0..<choices.count).contains(label) else { throw bad("label \(label) is out of range for \(choices.count) choices (0 to \(choices.count - 1))") }
        return MultipleChoiceItem(context: context, choices: choices, label: label, line: n)
    }
}

/// An item in token ids. A choice's tokens are those of encode(context + choice) after its
/// longest common prefix with encode(context) (so a merge across the boundary counts the merged
/// token as the choice's); its score is the sum of their log-probabilities given what precedes.
public struct MultipleChoiceTask: Equatable, Sendable {
    /// encode(context + choice_i) for every choice.
    public let sequences: [[Int]]
    /// Where each choice's own tokens start in its sequence (the common prefix's length, ≥ 1).
    public let choiceStart: [Int]
    /// UTF-8 bytes of every choice (the normalisation of `accuracy_norm`).
    public let byteLengths: [Int]
    public let label: Int

    public init(_ item: MultipleChoiceItem, tokenizer: Tokenizer, file: String) throws {
        let ctx = tokenizer.encode(item.context, addSpecialTokens: false)
        var seqs: [[Int]] = [], starts: [Int] = []
        for (i, choice) in item.choices.enumerated() {
            let full = tokenizer.encode(item.context + choice, addSpecialTokens: false)
            var lcp = 0
            while lcp < min(full.count, ctx.count) && full[lcp] == ctx[lcp] { lcp += 1 }
            guard lcp < full.count else {
                throw EvalError.invalidItem(file: file, line: item.line, "choice \(i) adds no token to the context")
            }
            guard lcp >= 1 else {
                throw EvalError.invalidItem(file: file, line: item.line, "choice \(i) shares no token with the context (an empty context?): nothing to condition its first token on")
            }
            seqs.append(full.map(Int.init))
            starts.append(lcp)
        }
        sequences = seqs
        choiceStart = starts
        byteLengths = item.choices.map { $0.utf8.count }
        label = item.label
    }

    /// Tokens the evaluator runs: the shared prefix once, then each choice's remainder.
    public var forwardTokens: Int {
        let shared = (choiceStart.min() ?? 1) - 1
        return shared + sequences.reduce(0) { $0 + $1.count - 1 - shared }
    }
}

/// Per item, the score of every choice under one model, and the two accuracies.
public struct MultipleChoiceResult: Sendable {
    /// Sum of log p of each choice's tokens, per item.
    public let scores: [[Double]]
    public let byteLengths: [[Int]]
    public let labels: [Int]

    public init(scores: [[Double]], tasks: [MultipleChoiceTask]) {
        self.init(scores: scores, byteLengths: tasks.map(\.byteLengths), labels: tasks.map(\.label))
    }

    public init(scores: [[Double]], byteLengths: [[Int]], labels: [Int]) {
        self.scores = scores
        self.byteLengths = byteLengths
        self.labels = labels
    }

    /// The index of the first largest value.
    static func argmax(_ v: [Double]) -> Int {
        var best = 0
        for i in 1..<v.count where v[i] > v[best] { best = i }
        return best
    }

    /// Which items the raw sum picks right.
    public var correct: [Bool] { zip(scores, labels).map { Self.argmax($0) == $1 } }
    /// Which items the sum per UTF-8 byte of the choice picks right.
    public var correctNormalized: [Bool] {
        (0..<scores.count).map { i in Self.argmax(zip(scores[i], byteLengths[i]).map { $0 / Double($1) }) == labels[i] }
    }
    public var accuracy: Agreement { var a = Agreement(); for c in correct { a.record(c) }; return a }
    public var accuracyNormalized: Agreement { var a = Agreement(); for c in correctNormalized { a.record(c) }; return a }
}
