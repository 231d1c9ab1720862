import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// SafeTensorsHeader / SafeTensorsFile / SafeTensorsCheckpoint / SafeTensorsIndex behaviour
/// beyond the malformed corpus.
final class SafeTensorsReaderTests: XCTestCase {
    private let specs = [
        TensorSpec(name: "w", dtype: .bf16, shape: [3, 4]),
        TensorSpec(name: "b", dtype: .f32, shape: [4]),
        TensorSpec(name: "e", dtype: .u8, shape: [0]),
    ]

    private func parse(_ image: [UInt8]) throws -> SafeTensorsHeader {
        try image.withUnsafeBytes { try SafeTensorsHeader.parse(file: $0) }
    }

    private func code(_ image: [UInt8]) -> SafeTensorsError.Code? {
        do { _ = try parse(image); return nil } catch { return (error as? SafeTensorsError)?.kind }
    }

    func testHeaderFields() throws {
        let image = try STImage.valid(specs)
        let h = try parse(image)
        let n = Int(image.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(h.dataStart, 8 + n)
        XCTAssertEqual(h.fileSize, image.count)
        XCTAssertEqual(h.tensorNames, ["w", "b", "e"])
        XCTAssertEqual(h.info("b")?.dataOffsets, 24..<40)
        XCTAssertEqual(h.info("b")?.shapeText, "[4]")
        XCTAssertEqual(h.info("e")?.byteCount, 0)
        XCTAssertNil(h.info("missing"))
        XCTAssertEqual(h.metadata?.map { "\($0.0)=\($0.1)" }, ["format=pt"])
    }

    func testTensorsAreSortedByOffsetNotByJSONOrder() throws {
        let image = STImage.make(header: "{" + [STImage.entry("second", "U8", "[2]", "[2,4]"), STImage.entry("first", "U8", "[2]", "[0,2]"),
                                               STImage.entry("zero", "U8", "[0]", "[2,2]")].joined(separator: ",") + "}", data: [1, 2, 3, 4])
        XCTAssertEqual(try parse(image).tensorNames, ["first", "zero", "second"])
    }

    func testUnpaddedAndWhitespaceHeadersAreValid() throws {
        let entry = "{" + STImage.entry("x", "U8", "[1]", "[0,1]") + "}"
        XCTAssertNoThrow(try parse(STImage.make(header: entry, data: [7], pad: false)))
        XCTAssertNoThrow(try parse(STImage.make(header: entry + "\n\t ", data: [7], pad: false)))
        // The reference (0.8) lets JSON whitespace precede the object, but nothing else.
        XCTAssertNoThrow(try parse(STImage.make(header: " \n\t\r" + entry, data: [7])))
        XCTAssertEqual(code(STImage.make(header: "\u{0C}" + entry, data: [7])), .invalidHeader)
        XCTAssertEqual(code(STImage.make(header: "\u{FEFF}" + entry, data: [7])), .invalidHeader)
        XCTAssertEqual(code(STImage.make(header: "        ", data: [7])), .invalidHeader)
    }

    func testLargestDeclaredHeaderLengthIsChecked() {
        // Exactly 100,000,000 is allowed by the limit, so the file bounds decide.
        XCTAssertEqual(code(STImage.lengthPrefix(100_000_000) + Array("{}".utf8)), .headerOutOfBounds)
        XCTAssertEqual(code(STImage.lengthPrefix(100_000_001) + Array("{}".utf8)), .headerTooLarge)
        XCTAssertEqual(code(STImage.lengthPrefix(1 << 63) + Array("{}".utf8)), .headerTooLarge)
        XCTAssertEqual(code([]), .truncated)
        XCTAssertEqual(code([1, 0, 0, 0, 0, 0, 0]), .truncated)
        XCTAssertEqual(code(STImage.lengthPrefix(1)), .headerOutOfBounds)
    }

    func testErrorDescriptionFormat() {
        let e = SafeTensorsError(.sizeMismatch, file: "m.safetensors", tensor: "t", offset: 12, "bad")
        XCTAssertEqual(e.description, "m.safetensors: tensor 't' (byte 12): bad")
        XCTAssertEqual(SafeTensorsError(.io, file: "f", "x").description, "f: x")
    }

    func testErrorOffsetsPointIntoTheFile() throws {
        // Invalid UTF-8 at header byte 3 → file byte 8 + 3.
        let header: [UInt8] = Array("{\"".utf8) + [0x61, 0xFF] + Array("\":1}".utf8)
        XCTAssertThrowsError(try parse(STImage.make(header: header))) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.kind, .invalidJSON)
            XCTAssertEqual(e?.offset, 8 + 3)
        }
        // A hole is reported where the uncovered bytes begin.
        let image = STImage.make(header: "{" + STImage.entry("a", "U8", "[2]", "[0,2]") + "," + STImage.entry("b", "U8", "[2]", "[5,7]") + "}", data: [UInt8](repeating: 0, count: 7))
        XCTAssertThrowsError(try parse(image)) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.kind, .hole)
            XCTAssertEqual(e?.offset, (try? self.dataStart(image)).map { $0 + 2 })
        }
    }

    private func dataStart(_ image: [UInt8]) throws -> Int { 8 + Int(image.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) }

    func testFileAccess() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("m.safetensors")
        let image = try STImage.valid(specs, seed: 9)
        try STImage.write(image, to: path)
        let f = try SafeTensorsFile(path: path)
        let start = try dataStart(image)
        for t in f.tensors {
            let v = try f.tensor(t.name)
            XCTAssertEqual(f.fileRange(t), start + t.dataOffsets.lowerBound..<start + t.dataOffsets.upperBound)
            XCTAssertEqual(Array(v.bytes), Array(image[f.fileRange(t)]))
            XCTAssertEqual(v.file, path)
        }
        XCTAssertThrowsError(try f.tensor("nope")) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.kind, .missingTensor)
            XCTAssertEqual(e?.file, path)
            XCTAssertEqual(e?.tensor, "nope")
        }
        // A header read earlier no longer matches once the file has changed size.
        let stale = f.header
        try STImage.write(image + [0], to: path)
        XCTAssertThrowsError(try SafeTensorsFile(path: path, header: stale)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .truncated)
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    func testIOErrorsNameThePath() throws {
        let dir = try STTemporaryDirectory()
        for path in [dir.file("absent.safetensors"), dir.path] {
            XCTAssertThrowsError(try SafeTensorsHeader.read(path: path)) { error in
                let e = error as? SafeTensorsError
                XCTAssertEqual(e?.kind, .io, "\(error)")
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
            XCTAssertThrowsError(try SafeTensorsFile(path: path)) { error in
                let e = error as? SafeTensorsError
                XCTAssertEqual(e?.kind, .io, "\(error)")
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
        }
        XCTAssertThrowsError(try SafeTensorsCheckpoint(path: dir.file("absent"))) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .io)
        }
    }

    func testCheckpointOfSingleFileAndUnindexedDirectory() throws {
        let dir = try STTemporaryDirectory()
        let shardDir = try dir.directory("shards")
        try STImage.write(try STImage.valid([specs[0]], seed: 1), to: shardDir + "/b.safetensors")
        try STImage.write(try STImage.valid([specs[1], specs[2]], seed: 2), to: shardDir + "/a.safetensors")
        try STImage.write(Array("not a safetensors file".utf8), to: shardDir + "/notes.txt")
        try STImage.write(Array("junk".utf8), to: shardDir + "/.hidden.safetensors")

        for path in [shardDir, shardDir + "/"] {
            let c = try SafeTensorsCheckpoint(path: path)
            XCTAssertEqual(c.directory, shardDir)
            XCTAssertNil(c.index)
            XCTAssertEqual(c.shards.map(\.name), ["a.safetensors", "b.safetensors"])
            XCTAssertEqual(c.tensorNames, ["b", "e", "w"], "shard order, then data order")
            XCTAssertEqual(c.tensorCount, 3)
            XCTAssertEqual(c.location("w")?.shard, 1)
            XCTAssertEqual(c.totalTensorBytes, 24 + 16)
            XCTAssertEqual(c.totalFileBytes, c.shards.reduce(0) { $0 + $1.status.size })
            XCTAssertTrue(c.contains("e"))
            XCTAssertFalse(c.contains("x"))
        }
        let single = try SafeTensorsCheckpoint(path: shardDir + "/b.safetensors")
        XCTAssertEqual(single.shards.count, 1)
        XCTAssertEqual(single.tensorNames, ["w"])
        let v = try single.open(shard: 0).tensor("w")
        XCTAssertEqual(v.bytes.count, 24)

        let empty = try dir.directory("empty")
        XCTAssertThrowsError(try SafeTensorsCheckpoint(path: empty)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .missingShard)
        }
    }

    func testIndexSerialisationAndReading() throws {
        let dir = try STTemporaryDirectory()
        let index = SafeTensorsIndex(metadata: [("total_size", .int(1)), ("format", .string("pt"))],
                                     weightMap: [("b.weight", "model-00002-of-00002.safetensors"), ("a.weight", "model-00001-of-00002.safetensors")])
        let text = String(decoding: index.serialized(totalSize: 1234), as: UTF8.self)
        XCTAssertEqual(text, """
            {
              "metadata": {
                "format": "pt",
                "total_size": 1234
              },
              "weight_map": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.weight": "model-00002-of-00002.safetensors"
              }
            }

            """)
        let path = dir.file(SafeTensorsIndex.fileName)
        try STImage.write(Array(text.utf8), to: path)
        let back = try SafeTensorsIndex.read(path: path)
        XCTAssertEqual(back.weightMap.map(\.0), ["a.weight", "b.weight"])
        XCTAssertEqual(back.metadata.first { $0.0 == "total_size" }?.1.intValue, 1234)

        let bad: [(String, String)] = [
            (#"{"weight_map":{"a":"../x.safetensors"}}"#, "a"),
            (#"{"weight_map":{"a":"sub/x.safetensors"}}"#, "a"),
            (#"{"weight_map":{"a":".."}}"#, "a"),
            (#"{"weight_map":{"a":"."}}"#, "a"),
            (#"{"weight_map":{"a":""}}"#, "a"),
            (#"{"weight_map":{"a":"x.safetensors\u0000.txt"}}"#, "a"),
            (#"{"weight_map":{"a":5}}"#, "a"),
            (#"{"weight_map":[]}"#, ""),
            (#"{"metadata":[],"weight_map":{}}"#, ""),
            (#"[]"#, ""),
            (#"{"weight_map":{"a":"x","a":"y"}}"#, ""),
        ]
        for (json, tensor) in bad {
            try STImage.write(Array(json.utf8), to: path)
            XCTAssertThrowsError(try SafeTensorsIndex.read(path: path), json) { error in
                let e = error as? SafeTensorsError
                XCTAssertEqual(e?.kind, .indexInvalid, json)
                XCTAssertEqual(e?.file, path)
                if !tensor.isEmpty { XCTAssertEqual(e?.tensor, tensor, json) }
            }
        }
    }
}
