import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// Seeded mutation fuzzing of `SafeTensorsHeader.parse(file:)` over in-memory file images: every
/// input must either parse, and then satisfy the format's invariants, or throw a
/// `SafeTensorsError`; never crash, hang or throw anything else.
///
/// `DSCONVERT_FUZZ_ITERATIONS` (default 100,000) and `DSCONVERT_FUZZ_SEED` control the loop;
/// Scripts/fuzz.sh runs it for longer in a release build.
final class HeaderFuzzTests: XCTestCase {
    /// Problems with an accepted header, or an empty list.
    static func invariantViolations(_ h: SafeTensorsHeader, image: [UInt8]) -> [String] {
        var problems: [String] = []
        let n = Int(image.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        if h.dataStart != 8 + n { problems.append("dataStart \(h.dataStart) != 8 + \(n)") }
        if h.fileSize != image.count { problems.append("fileSize \(h.fileSize) != \(image.count)") }
        if image[8..<8 + n].first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }) != UInt8(ascii: "{") {
            problems.append("header does not start with '{'")
        }
        let dataSize = image.count - h.dataStart
        var expected = 0
        var names = Set<String>()
        for t in h.tensors {
            if t.dataOffsets.lowerBound != expected { problems.append("\(t.name): starts at \(t.dataOffsets.lowerBound), expected \(expected)") }
            expected = t.dataOffsets.upperBound
            var elements = 1
            for d in t.shape {
                if d < 0 { problems.append("\(t.name): negative dimension") }
                let (m, o) = elements.multipliedReportingOverflow(by: d)
                if o { problems.append("\(t.name): element count overflows") }
                elements = m
            }
            if t.dtype.byteCount(elements: elements) != t.byteCount {
                problems.append("\(t.name): \(t.byteCount) bytes for \(t.dtype) \(t.shape)")
            }
            if t.name == "__metadata__" { problems.append("a tensor named __metadata__") }
            if !names.insert(t.name).inserted { problems.append("\(t.name): listed twice") }
            if h.info(t.name) != t { problems.append("\(t.name): info(name) disagrees") }
        }
        if expected != dataSize { problems.append("tensors cover \(expected) of \(dataSize) data bytes") }
        // What was accepted can be written back: the writer's header for the same tensors, in
        // data order, describes the same layout.
        let specs = h.tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        do {
            let rewritten = try SafeTensorsWriter.header(for: specs, metadata: h.metadata) + image[h.dataStart...]
            let again = try rewritten.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0) }
            if again.tensors != h.tensors { problems.append("rewritten header differs") }
            if again.metadata.map({ $0.map { "\($0.0)=\($0.1)" } }) != h.metadata.map({ $0.map { "\($0.0)=\($0.1)" } }) {
                problems.append("rewritten metadata differs")
            }
        } catch {
            problems.append("cannot rewrite an accepted header: \(error)")
        }
        return problems
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func testMutatedHeadersParseOrThrowSafeTensorsError() throws {
        let iterations = STFixtures.environmentInt("DSCONVERT_FUZZ_ITERATIONS", default: 100_000)
        let seed = UInt64(STFixtures.environmentInt("DSCONVERT_FUZZ_SEED", default: 0x5EED_F00D))
        var fuzzer = try HeaderFuzzer(seed: seed)

        // The seeds themselves are valid.
        for s in fuzzer.seeds {
            let h = try s.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0) }
            XCTAssertEqual(HeaderFuzzTests.invariantViolations(h, image: s), [])
        }

        var accepted = 0
        var codes: [SafeTensorsError.Code: Int] = [:]
        var failures = 0
        var slowest: (UInt64, [UInt8]) = (0, [])
        let start = HeaderFuzzTests.now()
        for i in 0..<iterations {
            let image = fuzzer.next()
            let t0 = HeaderFuzzTests.now()
            do {
                let h = try image.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0, file: "fuzz-\(i)") }
                accepted += 1
                let problems = HeaderFuzzTests.invariantViolations(h, image: image)
                if !problems.isEmpty {
                    failures += 1
                    if failures <= 10 { XCTFail("input \(i) (seed \(seed)) accepted with \(problems): \(Self.show(image))") }
                }
            } catch let e as SafeTensorsError {
                codes[e.kind, default: 0] += 1
                if e.file != "fuzz-\(i)" || e.message.isEmpty {
                    failures += 1
                    if failures <= 10 { XCTFail("input \(i): error does not name the file: \(e)") }
                }
            } catch {
                failures += 1
                if failures <= 10 { XCTFail("input \(i) (seed \(seed)) threw a non-SafeTensorsError \(error): \(Self.show(image))") }
            }
            let dt = HeaderFuzzTests.now() - t0
            if dt > slowest.0 { slowest = (dt, image) }
        }
        let seconds = Double(HeaderFuzzTests.now() - start) / 1e9
        let summary = codes.sorted { $0.value > $1.value }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
        print("fuzz: tried \(iterations) inputs (seed \(seed)) in \(String(format: "%.1f", seconds)) s: \(accepted) accepted, \(iterations - accepted) rejected [\(summary)]; slowest \(slowest.0 / 1000) µs")
        XCTAssertEqual(failures, 0)
        // Hang guard: no single header of a few hundred bytes may take long.
        XCTAssertLessThan(slowest.0, 2_000_000_000, "slowest input: \(Self.show(slowest.1))")
        // The mutator must reach every stage of validation, not just the framing checks.
        if iterations >= 50_000 {
            XCTAssertGreaterThan(accepted, 0)
            for code in [SafeTensorsError.Code.truncated, .headerTooLarge, .headerOutOfBounds, .invalidJSON, .invalidHeader,
                         .unknownDType, .invalidShape, .sizeMismatch, .overlap, .hole, .offsetOutOfBounds, .notFullyCovered, .invalidMetadata] {
                XCTAssertGreaterThan(codes[code, default: 0], 0, "the fuzzer never produced \(code)")
            }
        }
    }

    /// Differential check: a sample of mutated files judged by dsconvert and by Python's
    /// safetensors (one Python call) must get the same verdict, except where dsconvert is
    /// deliberately stricter (see `knownStricter`); for files both accept, the tensors (names,
    /// dtypes, shapes, bytes) and metadata must be the same.
    func testMutatedFilesAgreeWithTheReference() throws {
        let count = STFixtures.environmentInt("DSCONVERT_FUZZ_REFERENCE_FILES", default: 3000)
        let seed = UInt64(STFixtures.environmentInt("DSCONVERT_FUZZ_SEED", default: 0xD1FF)) ^ 0xD1FF_0000
        let tmp = try STTemporaryDirectory("st-fuzz-ref")
        var fuzzer = try HeaderFuzzer(seed: seed)
        var verdicts: [String: Result<SafeTensorsHeader, SafeTensorsError>] = [:]
        var images: [String: [UInt8]] = [:]
        var written = 0
        while written < count {
            let image = fuzzer.next()
            guard image.count < 1 << 16 else { continue }
            let name = String(format: "f%06d.safetensors", written)
            try STImage.write(image, to: tmp.file(name))
            do {
                verdicts[name] = .success(try image.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0) })
                images[name] = image
            } catch let e as SafeTensorsError {
                verdicts[name] = .failure(e)
            }
            written += 1
        }
        let report = try STPython.runJSON("st_classify.py", [tmp.path])
        let reference = try XCTUnwrap(report["results"]?.objectMembers)
        XCTAssertEqual(reference.count, count)
        var agree = 0, stricter = 0, failures = 0
        func fail(_ message: String) {
            failures += 1
            if failures <= 10 { XCTFail(message) }
        }
        for (name, outcome) in reference {
            guard let mine = verdicts[name] else { fail("unknown file \(name)"); continue }
            let referenceError = outcome["error"]?.stringValue
            switch (mine, referenceError) {
            case (.failure, .some):
                agree += 1
            case (.success(let h), nil):
                let image = images[name]!
                let expected = (outcome["tensors"]?.arrayValue ?? []).map { JSONWriter.compact($0) }
                let actual = h.tensors.map { t -> String in
                    let bytes = image[h.dataStart + t.dataOffsets.lowerBound..<h.dataStart + t.dataOffsets.upperBound]
                    return JSONWriter.compact(.array([.string(t.name), .string(t.dtype.rawValue), .array(t.shape.map { .int($0) }),
                                                      .string(bytes.map { String(format: "%02x", $0) }.joined())]))
                }
                // Python sorts by name with Python's (code point) order; compare as sets.
                if Set(actual) != Set(expected) || actual.count != expected.count {
                    fail("\(name): both accept, but dsconvert reads \(actual), the reference \(expected)")
                }
                let referenceMetadata = outcome["metadata"]?.objectMembers.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.0, $0.1.stringValue ?? "?") }) }
                let myMetadata = h.metadata.map { Dictionary(uniqueKeysWithValues: $0) }
                if referenceMetadata != myMetadata {
                    fail("\(name): metadata \(String(describing: myMetadata)), reference \(String(describing: referenceMetadata))")
                }
                agree += 1
            case (.success, .some(let why)):
                fail("\(name): dsconvert accepts, the reference rejects (\(why)): \(Self.show(try Sys.readFile(tmp.file(name))))")
            case (.failure(let e), nil):
                if Self.knownStricter(e) {
                    stricter += 1
                } else {
                    fail("\(name): dsconvert rejects (\(e)), the reference accepts: \(Self.show(try Sys.readFile(tmp.file(name))))")
                }
            }
        }
        XCTAssertEqual(failures, 0)
        print("fuzz vs reference: \(count) files (seed \(seed)), \(agree) same verdict (\(images.count) accepted, contents compared), \(stricter) rejected only by dsconvert's deliberate strictness")
    }

    /// Where dsconvert rejects what the reference lets through: duplicate JSON keys (serde keeps
    /// the last) and dimensions above Int.max in a zero-element tensor (the reference's shapes
    /// are usize). Unknown fields in a tensor entry and a null `__metadata__` are accepted as the
    /// reference accepts them.
    static func knownStricter(_ e: SafeTensorsError) -> Bool {
        (e.kind == .invalidJSON && e.message.contains("duplicate key"))
            || (e.kind == .invalidShape && e.message.contains("larger than dsconvert supports"))
    }

    static func show(_ image: [UInt8]) -> String {
        let head = image.prefix(8).map { String(format: "%02x", $0) }.joined()
        let rest = image.dropFirst(8).prefix(600)
        return "length \(head) + \(String(decoding: rest, as: UTF8.self).debugDescription) (\(image.count) bytes)"
    }
}
