import Checkpoint
import Engine
import Eval
import Foundation
import TestSupport
import Tokenizer
import XCTest

/// Multiple choice: the JSONL reader's errors (with line numbers), the longest-common-prefix rule
/// on ids the Python `tokenizers` package gives for the sample tokenizer, both accuracies on
/// hand-made scores, and the evaluator's shared-prefix scoring against plain whole-sequence passes.
final class MultipleChoiceTests: XCTestCase {
    var dir: STTemporaryDirectory!
    var written = 0

    func write(_ text: String) throws -> String {
        if dir == nil { dir = try STTemporaryDirectory("eval-mc") }
        written += 1
        let path = dir.file("items\(written).jsonl")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testReaderNamesTheBadLine() throws {
        let good = #"{"context": "a", "choices": ["b", "c"], "label": 1}"#
        let ok = try MultipleChoiceItem.read(path: write(good + "\n\n  \n" + good + "\r\n"))
        XCTAssertEqual(ok.map(\.line), [1, 4])
        XCTAssertEqual(ok[1], MultipleChoiceItem(context: "a", choices: ["b", "c"], label: 1, line: 4))
        let cases: [(String, String)] = [
            (#"{"context": "a", "choices": ["b", "c"], "label": 1"#, "line 3: not valid JSON"),
            (#"{"context": "a", "choices": ["b", "c"], "label": 2}"#, "line 3: label 2 is out of range for 2 choices (0 to 1)"),
            (#"{"context": "a", "choices": ["b", "c"], "label": -1}"#, "line 3: label -1 is out of range"),
            (#"{"context": "a", "choices": ["b", ""], "label": 0}"#, "line 3: choice 1 is empty"),
            (#"{"context": "a", "choices": ["b"], "label": 0}"#, "line 3: \"choices\" holds 1 choice(s); at least 2 are needed"),
            (#"{"context": 5, "choices": ["b", "c"], "label": 0}"#, "line 3: \"context\" must be a string"),
            (#"{"context": "a", "choices": ["b", 7], "label": 0}"#, "line 3: choice 1 is not a string"),
            (#"{"context": "a", "choices": ["b", "c"], "label": 0.5}"#, "line 3: \"label\" must be an integer"),
            (#"["a"]"#, "line 3: expected an object"),
        ]
        for (line, message) in cases {
            let path = try write(good + "\n" + good + "\n" + line + "\n")
            XCTAssertThrowsError(try MultipleChoiceItem.read(path: path), line) { e in
                guard let d = e as? EvalError else { return XCTFail("\(e)") }
                XCTAssertEqual(d.code, "eval.invalid_item")
                XCTAssertEqual(d.file, path)
                XCTAssert(d.message.hasPrefix(message), "\(d.message) / \(message)")
            }
        }
        XCTAssertThrowsError(try MultipleChoiceItem.read(path: write("\n\n"))) { e in
            XCTAssertEqual((e as? EvalError)?.code, "eval.input")
        }
    }

    func testLongestCommonPrefixRule() throws {
        let tok = try Tokenizer.load(path: STFixtures.samplesDirectory + "/tokenizer.json")
        // Ids from the Python tokenizers package: "the fun" → [817, 280, 303], "the function" →
        // [817, 404] (the merge crosses the boundary: the choice's token is 404); "value " →
        // [1032, 221], "value is" → [1032, 309]; "x " → [88, 221], "x  y" → [88, 221, 454].
        let item = MultipleChoiceItem(context: "the fun", choices: ["ction", "ny"], label: 0, line: 7)
        let t = try MultipleChoiceTask(item, tokenizer: tok, file: "f")
        XCTAssertEqual(t.sequences[0], [817, 404])
        XCTAssertEqual(t.choiceStart[0], 1)
        XCTAssertEqual(t.byteLengths, [5, 2])
        let v = try MultipleChoiceTask(MultipleChoiceItem(context: "value ", choices: ["is", "was"], label: 1, line: 1), tokenizer: tok, file: "f")
        XCTAssertEqual(v.sequences[0], [1032, 309])
        XCTAssertEqual(v.choiceStart[0], 1)
        let x = try MultipleChoiceTask(MultipleChoiceItem(context: "x ", choices: [" y", "z"], label: 0, line: 1), tokenizer: tok, file: "f")
        XCTAssertEqual(x.sequences[0], [88, 221, 454])
        XCTAssertEqual(x.choiceStart[0], 2)
        // An empty context leaves nothing to condition the first choice token on.
        XCTAssertThrowsError(try MultipleChoiceTask(MultipleChoiceItem(context: "", choices: ["a", "b"], label: 0, line: 9), tokenizer: tok, file: "f")) { e in
            XCTAssertEqual((e as? EvalError)?.message.hasPrefix("line 9: choice 0 shares no token"), true, "\(e)")
        }
    }

    func testAccuracies() {
        // Item 0: raw sums pick choice 1 (−8 > −10, wrong); per byte −10/20 = −0.5 beats −8/4 = −2 (right).
        // Item 1: both pick choice 0 (right). Item 2: a tie picks the first (choice 0; label 1: wrong).
        let r = MultipleChoiceResult(scores: [[-10, -8], [-1, -3], [-2, -2]], byteLengths: [[20, 4], [1, 1], [3, 3]], labels: [0, 0, 1])
        XCTAssertEqual(r.correct, [false, true, false])
        XCTAssertEqual(r.correctNormalized, [true, true, false])
        XCTAssertEqual(r.accuracy.fraction, 1.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(r.accuracyNormalized.fraction, 2.0 / 3, accuracy: 1e-15)
    }

    /// The evaluator runs the shared prefix once and the choices after it as one padded batch;
    /// each score must equal the sum over a plain forward pass of the whole sequence (GQA and
    /// MLA caches; the items' choices have different lengths, so the padding is exercised).
    func testSharedPrefixScoresEqualWholePasses() throws {
        for name in ["qwen2-tiny", "deepseek-v3-tiny"] {
            let dir = STFixtures.samplesDirectory + "/" + name
            let model = try Model(checkpoint: Checkpoint(path: dir))
            let tok = try Tokenizer.load(path: dir + "/tokenizer.json")
            let items = try MultipleChoiceItem.read(path: STFixtures.samplesDirectory + "/eval_mc.jsonl").prefix(3)
            let tasks = try items.map { try MultipleChoiceTask($0, tokenizer: tok, file: "eval_mc.jsonl") }
            XCTAssert(tasks.contains { Set($0.sequences.map(\.count)).count > 1 }, "\(name): no item with choices of different lengths")
            let pool = WorkerPool(threads: 2)
            let got = try MultipleChoiceEvaluator(model: model, pool: pool).run(tasks)
            for (i, task) in tasks.enumerated() {
                for (c, (seq, start)) in zip(task.sequences, task.choiceStart).enumerated() {
                    let cache = KVCache(config: model.config, batch: 1, capacity: seq.count)
                    let logits = try model.forward([Array(seq.dropLast())], cache: cache, pool: pool)
                    var sum = 0.0
                    for t in start ..< seq.count {
                        sum += LogSoftmax.logProbability(UnsafeBufferPointer(start: logits.row(t - 1), count: model.config.vocab), target: seq[t])
                    }
                    XCTAssertEqual(got.scores[i][c], sum, accuracy: 1e-4 * max(1, abs(sum)), "\(name) item \(i) choice \(c)")
                }
            }
        }
    }
}
