import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// The malformed-file corpus (`STCorpus`, in TestSupport/Fixtures.swift): one file or sharded
/// directory per failure class, each of which dsconvert must reject with the right error code,
/// naming the file (and the tensor, where one is concerned). Every single-file case is also run
/// through the Python `safetensors` package in one call (Tests/Reference/check_corpus.py), which
/// must reject exactly the same files.
///
/// `DSCONVERT_CORPUS_DIR=/some/dir` writes the corpus there and keeps it.
final class MalformedCorpusTests: XCTestCase {
    private func corpusDirectory() throws -> (String, STTemporaryDirectory?) {
        if let dir = ProcessInfo.processInfo.environment["DSCONVERT_CORPUS_DIR"], !dir.isEmpty {
            return (dir, nil)
        }
        let tmp = try STTemporaryDirectory("st-corpus")
        return (tmp.file("corpus"), tmp)
    }

    /// Checks one error against its case.
    private func check(_ error: any Error, _ c: STCorpusCase, root: String, via: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = error as? SafeTensorsError else {
            return XCTFail("\(c.name) via \(via): not a SafeTensorsError: \(error)", file: file, line: line)
        }
        XCTAssertEqual(e.kind, c.code, "\(c.name) via \(via): \(e)", file: file, line: line)
        if let f = c.errorFile {
            let expected = root + "/" + f
            XCTAssertEqual(e.file, expected, "\(c.name) via \(via): error names the wrong file", file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix(expected), "\(c.name) via \(via): \(e)", file: file, line: line)
        }
        if let t = c.tensor {
            XCTAssertEqual(e.tensor, t, "\(c.name) via \(via): \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains("tensor '\(t)'"), "\(c.name) via \(via): \(e)", file: file, line: line)
        }
        for m in c.mentions {
            XCTAssertTrue(e.description.contains(m), "\(c.name) via \(via): '\(e)' should mention \(m)", file: file, line: line)
        }
        XCTAssertFalse(e.message.isEmpty, file: file, line: line)
    }

    func testCorpusIsRejectedByDSConvertAndByTheReference() throws {
        let (root, tmp) = try corpusDirectory()
        let cases = try STCorpus.write(to: root)
        XCTAssertGreaterThanOrEqual(cases.filter { $0.expectation == .reject && $0.reference }.count, 30)
        XCTAssertGreaterThanOrEqual(cases.filter { $0.expectation == .reject && !$0.reference }.count, 8)

        for c in cases {
            let path = root + "/" + c.path
            if c.isDirectory {
                switch c.expectation {
                case .accept:
                    XCTAssertNoThrow(try SafeTensorsCheckpoint(path: path), c.name)
                case .reject:
                    XCTAssertThrowsError(try SafeTensorsCheckpoint(path: path), c.name) { check($0, c, root: root, via: "checkpoint") }
                }
                continue
            }
            let bytes = try Sys.readFile(path)
            let memory = Result { try bytes.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0, file: path) } }
            switch c.expectation {
            case .accept:
                XCTAssertNoThrow(try SafeTensorsHeader.read(path: path), c.name)
                XCTAssertNoThrow(try memory.get(), c.name)
                XCTAssertNoThrow(try SafeTensorsFile(path: path), c.name)
                XCTAssertNoThrow(try SafeTensorsCheckpoint(path: path), c.name)
            case .reject:
                XCTAssertThrowsError(try SafeTensorsHeader.read(path: path), c.name) { check($0, c, root: root, via: "header read") }
                XCTAssertThrowsError(try memory.get(), c.name) { check($0, c, root: root, via: "in-memory parse") }
                XCTAssertThrowsError(try SafeTensorsFile(path: path), c.name) { check($0, c, root: root, via: "file") }
                XCTAssertThrowsError(try SafeTensorsCheckpoint(path: path), c.name) { check($0, c, root: root, via: "checkpoint") }
                // Where the offset is known it lies inside the file (or at its end).
                if case .failure(let e as SafeTensorsError) = memory, let o = e.offset {
                    XCTAssertTrue((0...bytes.count).contains(o), "\(c.name): offset \(o) outside the \(bytes.count)-byte file")
                }
            }
        }

        // The reference implementation over the same directory, in one Python call.
        let report = try STPython.runJSON("check_corpus.py", [root])
        let results = try XCTUnwrap(report["results"]?.objectMembers)
        let byName = Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1) })
        for c in cases where c.reference {
            guard let r = byName[c.name] else {
                XCTFail("check_corpus.py did not report \(c.name)")
                continue
            }
            for way in ["safe_open", "load_file", "deserialize"] {
                let outcome = r[way]
                switch c.expectation {
                case .reject:
                    XCTAssertNotNil(outcome?.stringValue, "\(c.name): the reference accepted it via \(way), dsconvert rejects it")
                case .accept:
                    XCTAssertEqual(outcome, .null, "\(c.name): the reference rejected it via \(way): \(outcome.map(JSONWriter.compact) ?? "-")")
                }
            }
        }
        XCTAssertEqual(results.count, cases.filter(\.reference).count)
        withExtendedLifetime(tmp) {}
    }

    /// The few files the reference accepts and dsconvert deliberately rejects. Pinned here so a
    /// change on either side shows up (the differential fuzz test allows exactly these).
    func testDeliberatelyStricterThanTheReference() throws {
        let tmp = try STTemporaryDirectory("st-stricter")
        let e = STImage.entry
        let cases: [(String, [UInt8], SafeTensorsError.Code, String)] = [
            // serde keeps the last of duplicate keys; identical entries then tile the data.
            ("duplicate-identical", STImage.make(header: "{" + e("a", "U8", "[1]", "[0,1]") + "," + e("a", "U8", "[1]", "[0,1]") + "}", data: [1]),
             .invalidJSON, "duplicate key"),
            // Canonically equivalent names (U+00E9 vs e + U+0301) are one key to Swift's String,
            // two tensors to the reference; dsconvert refuses rather than confuse them.
            ("canonically-equivalent-names", STImage.make(header: "{" + e("\u{E9}", "U8", "[1]", "[0,1]") + "," + e("e\u{301}", "U8", "[1]", "[1,2]") + "}", data: [1, 2]),
             .invalidJSON, "duplicate key"),
            // A dimension above Int.max is a valid usize; with another dimension 0 the tensor is empty.
            ("huge-dimension-of-empty-tensor", STImage.make(header: "{" + e("a", "U8", "[0,9223372036854775808]", "[0,0]") + "}"),
             .invalidShape, "larger than dsconvert supports"),
        ]
        for (name, image, code, fragment) in cases {
            try STImage.write(image, to: tmp.file(name + ".safetensors"))
            XCTAssertThrowsError(try image.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0) }, name) { error in
                let err = error as? SafeTensorsError
                XCTAssertEqual(err?.kind, code, "\(error)")
                XCTAssertTrue(err?.message.contains(fragment) ?? false, "\(error)")
                XCTAssertTrue(err.map(HeaderFuzzTests.knownStricter) ?? false, "\(error)")
            }
        }
        let report = try STPython.runJSON("st_classify.py", [tmp.path])
        for (name, _, _, _) in cases {
            let outcome = report["results"]?[name + ".safetensors"]
            XCTAssertNotNil(outcome?["tensors"], "\(name): the reference now rejects it too: \(outcome.map(JSONWriter.compact) ?? "-")")
        }
    }

    /// Headers the reference accepts that dsconvert used to refuse: unknown fields in a tensor
    /// entry (any JSON, in any position, nested up to the reference's recursion limit) and a null
    /// `__metadata__`. Both read them to the same tensors and bytes; one level deeper than the
    /// limit both refuse.
    func testAcceptsWhatTheReferenceAccepts() throws {
        let tmp = try STTemporaryDirectory("st-lenient")
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        let accepted: [(String, String)] = [
            ("extra-int", #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":5}}"#),
            ("extra-first", #"{"a":{"note":"x","dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#),
            ("extra-object", #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"quant":{"scale":[1.5,null,true],"k":{}}}}"#),
            ("extra-metadata-key", #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"__metadata__":{"k":1}}}"#),
            // 2 levels (header, entry) + 125 = 127, serde_json's limit.
            ("extra-nested-to-the-limit", #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"e":"# + nested(125) + "}}"),
            ("null-metadata", #"{"__metadata__":null,"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#),
        ]
        let rejected: [(String, String)] = [
            ("extra-nested-past-the-limit", #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"e":"# + nested(126) + "}}"),
            ("extra-duplicate-dtype", #"{"a":{"dtype":"U8","dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#),
            ("extra-but-missing-shape", #"{"a":{"dtype":"U8","shap":[2],"data_offsets":[0,2]}}"#),
        ]
        for (name, header) in accepted + rejected {
            try STImage.write(STImage.make(header: header, data: [7, 9]), to: tmp.file(name + ".safetensors"))
        }
        let report = try STPython.runJSON("st_classify.py", [tmp.path])
        for (name, _) in accepted {
            let path = tmp.file(name + ".safetensors")
            let outcome = report["results"]?[name + ".safetensors"]
            XCTAssertEqual(outcome?["tensors"], .array([.array([.string("a"), .string("U8"), .array([.int(2)]), .string("0709")])]),
                           "\(name): the reference's reading: \(outcome.map(JSONWriter.compact) ?? "-")")
            let f = try SafeTensorsFile(path: path)
            XCTAssertEqual(f.tensors.map(\.name), ["a"], name)
            XCTAssertEqual(Array(try f.tensor("a").bytes), [7, 9], name)
            XCTAssertNoThrow(try SafeTensorsCheckpoint(path: path), name)
        }
        for (name, _) in rejected {
            XCTAssertNotNil(report["results"]?[name + ".safetensors"]?["error"]?.stringValue, "\(name): the reference accepts it")
            XCTAssertThrowsError(try SafeTensorsHeader.read(path: tmp.file(name + ".safetensors")), name)
        }
    }

    func testManifestDescribesEveryCase() throws {
        let tmp = try STTemporaryDirectory("st-corpus-manifest")
        let cases = try STCorpus.write(to: tmp.path)
        let manifest = try JSONParser.parse(Sys.readFile(tmp.file(STCorpus.manifestName)))
        let listed = try XCTUnwrap(manifest["cases"]?.arrayValue)
        XCTAssertEqual(listed.count, cases.count)
        XCTAssertEqual(Set(cases.map(\.name)).count, cases.count, "case names are unique")
        for (entry, c) in zip(listed, cases) {
            XCTAssertEqual(entry["name"]?.stringValue, c.name)
            XCTAssertEqual(entry["code"]?.stringValue, c.code?.rawValue)
            XCTAssertTrue(Sys.exists(tmp.file(c.path)), c.path)
        }
    }
}
