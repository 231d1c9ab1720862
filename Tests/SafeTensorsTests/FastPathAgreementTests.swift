import Foundation
@testable import SafeTensors
import TestSupport
import XCTest

/// The fast header/index scanner must agree with the strict path (JSONParser + checks) on every
/// input it accepts: same tensors, same metadata. Inputs it declines go to the strict path, so
/// only acceptance matters here. Uses the same seeded mutator as the header fuzzer.
final class FastPathAgreementTests: XCTestCase {
    func testFastHeaderScannerAgreesWithTheStrictParser() throws {
        var fuzzer = try HeaderFuzzer(seed: 0xFA57)
        var fastAccepted = 0
        var disagreements = 0
        let inputs = fuzzer.seeds + (0..<60_000).map { _ in fuzzer.next() }
        for image in inputs {
            guard image.count >= 8 else { continue }
            let n64 = UInt64(littleEndian: image.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            guard n64 <= UInt64(image.count - 8) else { continue }
            let n = Int(n64)
            let json = Array(image[8..<8 + n])
            let fast = json.withUnsafeBytes { FastHeaderScanner.header($0) }
            guard let fast else { continue }
            let strict = try? json.withUnsafeBytes { try SafeTensorsHeader.strictEntries(json: $0, file: "x") }
            if Set(fast.tensors.map(\.name)).count != fast.tensors.count {
                // Duplicate names: `validateLayout` declines these, so the strict path decides (and rejects).
                XCTAssertNil(strict)
                continue
            }
            fastAccepted += 1
            let same = strict.map { s in
                s.0 == fast.tensors && (s.1?.map { [$0.0, $0.1] } ?? []) == (fast.metadata?.map { [$0.0, $0.1] } ?? [])
                    && (s.1 == nil) == (fast.metadata == nil)
            } ?? false
            if !same {
                disagreements += 1
                if disagreements <= 5 { XCTFail("fast path accepted what the strict path judges differently: \(String(decoding: json, as: UTF8.self))") }
            }
        }
        print("fast path: accepted \(fastAccepted) of \(inputs.count) inputs, all equal to the strict parse")
        XCTAssertGreaterThan(fastAccepted, 1000)
        XCTAssertEqual(disagreements, 0)
    }

    func testFastIndexScannerAgreesWithTheStrictParser() throws {
        let text = """
        {"metadata": {"total_size": 123, "format": "pt"}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}
        """
        let fast = try XCTUnwrap(Array(text.utf8).withUnsafeBytes { FastHeaderScanner.index($0) })
        XCTAssertEqual(fast.weightMap.map { [$0.0, $0.1] }, [["a.weight", "model-00001-of-00002.safetensors"], ["b.weight", "model-00002-of-00002.safetensors"], ["c", "model-00002-of-00002.safetensors"]])
        XCTAssertEqual(fast.metadata.map(\.0), ["total_size", "format"])
        XCTAssertEqual(fast.metadata[0].1, .int(123))
        // Declined (left to the strict path): escapes, floats, other keys, non-ASCII, nested values.
        for declined in [
            #"{"weight_map": {"a\u0041": "f"}}"#, #"{"metadata": {"x": 1.5}, "weight_map": {}}"#,
            #"{"other": 1, "weight_map": {}}"#, "{\"weight_map\": {\"é\": \"f\"}}", #"{"metadata": {"x": [1]}, "weight_map": {}}"#,
            #"{"weight_map": {"a": "f"}} x"#, #"{"weight_map": {"a": 1}}"#,
        ] {
            XCTAssertNil(Array(declined.utf8).withUnsafeBytes { FastHeaderScanner.index($0) }, declined)
        }
    }
}

/// Typed, zero-copy access to a mapped tensor, checked against the sample's known values.
final class TypedAccessTests: XCTestCase {
    func testElementsOfTheDeepSeekRouterBias() throws {
        let ckpt = try SafeTensorsCheckpoint(path: STFixtures.samplesDirectory + "/deepseek-v3-tiny")
        let name = "model.layers.1.mlp.gate.e_score_correction_bias"
        let loc = try XCTUnwrap(ckpt.location(name))
        let file = try ckpt.open(shard: loc.shard)
        let view = file.view(loc.info)
        let floats = try view.elements(as: Float.self)
        XCTAssertEqual(floats.count, 16)
        // Same values read byte by byte.
        for i in 0..<16 {
            XCTAssertEqual(floats[i].bitPattern, view.bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
        }
        XCTAssertThrowsError(try view.elements(as: UInt16.self)) { error in
            let e = error as? TensorAccessError
            XCTAssertNotNil(e, "\(error)")
            XCTAssertEqual(e?.tensorName, name)
            XCTAssertTrue("\(error)".contains("F32 elements are 32 bits"), "\(error)")
        }
    }
}
