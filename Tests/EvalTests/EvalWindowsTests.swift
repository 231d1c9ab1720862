import Eval
import Foundation
import TestSupport
import XCTest

/// The two windowing schemes on hand-worked id lists, and the dsconvert scheme's counts on
/// Samples/eval_ids.bin (the 552 windows / 141,312 tokens of Samples/README.md).
final class EvalWindowsTests: XCTestCase {
    let ten: [Int32] = Array(100..<110)

    func testDSConvertScheme() throws {
        let w = try EvalWindows(ids: ten, context: 4, scheme: .dsconvert)
        // (10 − 1) / 4 = 2 windows; the third would need ids[12].
        XCTAssertEqual(w.count, 2)
        XCTAssertEqual(w.scoredTokens, 8)
        XCTAssertEqual(w.window(0).inputs, [100, 101, 102, 103])
        XCTAssertEqual(w.window(0).targets, [101, 102, 103, 104])
        XCTAssertEqual(w.window(1).inputs, [104, 105, 106, 107])
        XCTAssertEqual(w.window(1).targets, [105, 106, 107, 108])
        // 9 ids still give 2 windows (the last target is ids[8]); 8 ids give one.
        XCTAssertEqual(try EvalWindows(ids: Array(ten[..<9]), context: 4, scheme: .dsconvert).count, 2)
        XCTAssertEqual(try EvalWindows(ids: Array(ten[..<8]), context: 4, scheme: .dsconvert).count, 1)
        XCTAssertEqual(try EvalWindows(ids: Array(ten[..<5]), context: 4, scheme: .dsconvert).count, 1)
        XCTAssertThrowsError(try EvalWindows(ids: Array(ten[..<4]), context: 4, scheme: .dsconvert)) { e in
            XCTAssertEqual(e as? EvalError, .textTooShort(tokens: 4, needed: 5, context: 4, scheme: .dsconvert))
            XCTAssertEqual((e as? EvalError)?.code, "eval.text_too_short")
        }
    }

    func testLlamaCppScheme() throws {
        // C = 4: ⌊10 / 4⌋ = 2 chunks, first = 2, 4 − 1 − 2 = 1 scored (logit 2 predicts id 3).
        let w = try EvalWindows(ids: ten, context: 4, scheme: .llamaCpp, bos: 1)
        XCTAssertEqual(w.count, 2)
        XCTAssertEqual(w.firstScored, 2)
        XCTAssertEqual(w.scoredPerWindow, 1)
        XCTAssertEqual(w.window(0).inputs, [1, 101, 102, 103])
        XCTAssertEqual(w.window(0).targets, [103])
        XCTAssertEqual(w.window(1).inputs, [1, 105, 106, 107])
        XCTAssertEqual(w.window(1).targets, [107])
        // C = 5: first 2, 5 − 1 − 2 = 2 scored (positions 2, 3 predict ids 3, 4); no BOS: ids as they are.
        let v = try EvalWindows(ids: ten, context: 5, scheme: .llamaCpp)
        XCTAssertEqual(v.count, 2)
        XCTAssertEqual(v.window(1).inputs, [105, 106, 107, 108, 109])
        XCTAssertEqual(v.window(1).targets, [108, 109])
        // C = 3 needs 6 ids: ⌊10 / 3⌋ = 3 chunks, first 1, one scored each.
        let u = try EvalWindows(ids: ten, context: 3, scheme: .llamaCpp)
        XCTAssertEqual(u.count, 3)
        XCTAssertEqual(u.window(2).targets, [108])
        XCTAssertThrowsError(try EvalWindows(ids: Array(ten[..<9]), context: 5, scheme: .llamaCpp)) { e in
            XCTAssertEqual(e as? EvalError, .textTooShort(tokens: 9, needed: 10, context: 5, scheme: .llamaCpp))
        }
    }

    func testSampleCounts() throws {
        let ids = try PythonReference.load(URL(fileURLWithPath: STFixtures.samplesDirectory), "eval_ids.bin", as: UInt16.self, count: 141_482).map { Int32($0) }
        let w = try EvalWindows(ids: ids, context: 256, scheme: .dsconvert)
        XCTAssertEqual(w.count, 552)
        XCTAssertEqual(w.scoredTokens, 141_312)
        XCTAssertEqual(w.window(551).targets.last, Int(ids[141_312]))
        // llama.cpp: ⌊141,482 / 256⌋ = 552 chunks of 127 scored tokens.
        let l = try EvalWindows(ids: ids, context: 256, scheme: .llamaCpp)
        XCTAssertEqual(l.count, 552)
        XCTAssertEqual(l.scoredTokens, 552 * 127)
        XCTAssertEqual(l.window(0).targets.first, Int(ids[129]))
    }
}
