import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

final class SafeTensorsWriterTests: XCTestCase {
    private let specs = [
        TensorSpec(name: "a", dtype: .f32, shape: [2, 2]),   // 16 bytes
        TensorSpec(name: "z", dtype: .f16, shape: [0, 7]),   // 0 bytes
        TensorSpec(name: "b", dtype: .u8, shape: [3]),       // 3 bytes
        TensorSpec(name: "s", dtype: .bf16, shape: []),      // 2 bytes
    ]

    private func data(_ spec: TensorSpec) -> [UInt8] { STRandom.bytes(spec.byteCount, seed: UInt64(spec.name.utf8.first!)) }

    /// Names in `dir` other than the ones listed.
    private func leftovers(_ dir: STTemporaryDirectory, except keep: Set<String> = []) throws -> [String] {
        try dir.contents().filter { !keep.contains($0) }
    }

    private func assertMisuse(_ body: @autoclosure () throws -> Void, tensor: String?, _ fragment: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .writerMisuse, "\(e)", file: file, line: line)
            XCTAssertEqual(e.tensor, tensor, "\(e)", file: file, line: line)
            XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    /// A tensor's bytes, copied while its file is still mapped (a TensorView is only valid as
    /// long as the SafeTensorsFile that made it).
    private func bytes(of tensor: String, in path: String) throws -> [UInt8] {
        let f = try SafeTensorsFile(path: path)
        return try withExtendedLifetime(f) { Array(try f.tensor(tensor).bytes) }
    }

    // MARK: success

    func testHeaderBytesAreExactlyWhatTheReferenceWrites() throws {
        // safetensors' Python/Rust writer: compact JSON, __metadata__ first, padded with spaces to 8.
        let h = try SafeTensorsWriter.header(for: Array(specs.prefix(3)), metadata: [("format", "pt")])
        let json = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"z":{"dtype":"F16","shape":[0,7],"data_offsets":[16,16]},"b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}"#
        let padded = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        XCTAssertEqual(h, STImage.lengthPrefix(UInt64(padded.utf8.count)) + Array(padded.utf8))
        XCTAssertEqual(h.count % 8, 0)
        XCTAssertEqual(try SafeTensorsWriter.header(for: [], metadata: nil), STImage.lengthPrefix(8) + Array("{}      ".utf8))
    }

    func testWritesInPiecesAndReadsBack() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("out.safetensors")
        let w = try SafeTensorsWriter(path: path, tensors: specs, metadata: [("format", "pt"), ("note", "ünïcode \"quoted\"")])
        var observed: [UInt8] = []
        w.observer = { observed.append(contentsOf: $0) }
        XCTAssertEqual(w.nextTensor?.name, "a")
        let a = data(specs[0])
        try w.write("a", Array(a[0..<5]))
        XCTAssertEqual(w.nextTensor?.name, "a", "a is not complete yet")
        try w.write("a", Array(a[5..<5]))
        try w.write("a", Array(a[5...]))
        XCTAssertEqual(w.nextTensor?.name, "b", "zero-size z needs no bytes")
        try w.write("z", [])
        try w.write("b", data(specs[2]))
        try w.write("s", data(specs[3]))
        XCTAssertNil(w.nextTensor)
        XCTAssertFalse(Sys.exists(path), "nothing under the final name before finish()")
        try w.finish()

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.header.fileSize, w.fileSize)
        XCTAssertEqual(file.tensors.map(\.name), ["a", "z", "b", "s"])
        for spec in specs {
            let v = try file.tensor(spec.name)
            XCTAssertEqual(v.dtype, spec.dtype)
            XCTAssertEqual(v.shape, spec.shape)
            XCTAssertEqual(Array(v.bytes), data(spec), spec.name)
        }
        XCTAssertEqual(file.header.metadata?.map(\.0), ["format", "note"])
        XCTAssertEqual(file.header.metadata?.last?.1, "ünïcode \"quoted\"")
        XCTAssertEqual(observed, try Sys.readFile(path), "the observer sees every byte, in file order")
        XCTAssertEqual(try leftovers(dir), ["out.safetensors"])
    }

    func testRunOfAdjacentPiecesWritesWhatPieceByPieceWrites() throws {
        let dir = try STTemporaryDirectory()
        // Piece by piece, the reference.
        let one = dir.file("one.safetensors")
        let w1 = try SafeTensorsWriter(path: one, tensors: specs)
        for spec in specs { try w1.write(spec.name, data(spec)) }
        try w1.finish()
        // The same bytes as runs: a's first 5 bytes alone, then a's rest + z (empty) + b in one
        // run, then s; each run is one observer call, completions in order.
        let run = dir.file("run.safetensors")
        let w2 = try SafeTensorsWriter(path: run, tensors: specs)
        var calls: [Int] = []
        var completed: [Int] = []
        w2.observer = { calls.append($0.count) }
        w2.tensorCompleted = { completed.append($0) }
        let a = data(specs[0]), b = data(specs[2])
        let head = Array(a[0..<5])
        try head.withUnsafeBytes { try w2.write(run: [(name: "a", count: 5)], $0) }
        let middle = Array(a[5...]) + b
        try middle.withUnsafeBytes { try w2.write(run: [(name: "a", count: 11), (name: "z", count: 0), (name: "b", count: 3)], $0) }
        XCTAssertEqual(completed, [0, 1, 2])
        XCTAssertEqual(w2.nextTensor?.name, "s")
        // A run with a piece out of order or too long writes nothing of it.
        let s = data(specs[3])
        let bad = s + [9, 9]
        try bad.withUnsafeBytes { buf in
            assertMisuse(try w2.write(run: [(name: "s", count: 2), (name: "a", count: 2)], buf), tensor: "a", "all tensors were already written")
        }
        XCTAssertEqual(w2.nextTensor?.name, "s", "the refused run wrote nothing")
        try s.withUnsafeBytes { try w2.write(run: [(name: "s", count: 2)], $0) }
        try w2.finish()
        XCTAssertEqual(calls.count, 4, "header, then one call per run")
        XCTAssertEqual(try Sys.readFile(run), try Sys.readFile(one))
    }

    func testRunOutOfOrderNamesTheExpectedTensor() throws {
        let dir = try STTemporaryDirectory()
        let w = try SafeTensorsWriter(path: dir.file("o.safetensors"), tensors: specs)
        let bytes = data(specs[0]) + data(specs[3])
        try bytes.withUnsafeBytes { buf in
            assertMisuse(try w.write(run: [(name: "a", count: 16), (name: "s", count: 2)], buf), tensor: "s", "expected 'b'")
        }
        XCTAssertEqual(w.nextTensor?.name, "a", "nothing of the refused run was written")
        try w.write("a", data(specs[0]))
        let four: [UInt8] = [1, 2, 3, 4]
        try four.withUnsafeBytes { buf in
            assertMisuse(try w.write(run: [(name: "b", count: 4)], buf), tensor: "b", "4 bytes written, tensor has 3")
        }
    }

    func testZeroSizeTensorsMayBeWrittenOrLeftOut() throws {
        let dir = try STTemporaryDirectory()
        let layouts: [[TensorSpec]] = [
            specs,
            [TensorSpec(name: "e0", dtype: .f32, shape: [0])] + specs + [TensorSpec(name: "e9", dtype: .i64, shape: [3, 0])],
            [TensorSpec(name: "only", dtype: .u8, shape: [0])],
        ]
        for (i, layout) in layouts.enumerated() {
            for writeEmpty in [true, false] {
                let path = dir.file("z\(i)-\(writeEmpty).safetensors")
                let w = try SafeTensorsWriter(path: path, tensors: layout, metadata: nil)
                for spec in layout where writeEmpty || spec.byteCount > 0 {
                    try w.write(spec.name, data(spec))
                }
                try w.finish()
                let h = try SafeTensorsHeader.read(path: path)
                XCTAssertEqual(h.tensors.count, layout.count)
                XCTAssertEqual(Set(h.tensorNames), Set(layout.map(\.name)))
            }
        }
    }

    func testEmptyFile() throws {
        let dir = try STTemporaryDirectory()
        let w = try SafeTensorsWriter(path: dir.file("e.safetensors"), tensors: [])
        try w.finish()
        let h = try SafeTensorsHeader.read(path: dir.file("e.safetensors"))
        XCTAssertEqual(h.tensors.count, 0)
        XCTAssertEqual(h.metadata?.first?.1, "pt")
    }

    // MARK: misuse

    func testOutOfOrderWriteIsRejectedAndLeavesNoFile() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("out.safetensors")
        do {
            let w = try SafeTensorsWriter(path: path, tensors: specs)
            assertMisuse(try w.write("b", data(specs[2])), tensor: "b", "expected 'a'")
            assertMisuse(try w.write("nope", [1]), tensor: "nope", "out of order")
            try w.write("a", data(specs[0]))
            assertMisuse(try w.write("s", data(specs[3])), tensor: "s", "expected 'b'")
            assertMisuse(try w.finish(), tensor: "b", "before this tensor was written in full")
            XCTAssertFalse(Sys.exists(path))
            XCTAssertEqual(try leftovers(dir), [], "finish() removed the temporary")
            assertMisuse(try w.write("b", data(specs[2])), tensor: "b", "aborted")
        }
        XCTAssertEqual(try leftovers(dir), [])
    }

    func testTooManyBytesIsRejected() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("out.safetensors")
        do {
            let w = try SafeTensorsWriter(path: path, tensors: specs)
            assertMisuse(try w.write("a", [UInt8](repeating: 0, count: 17)), tensor: "a", "17 bytes written, tensor has 16")
            try w.write("a", [UInt8](repeating: 0, count: 10))
            assertMisuse(try w.write("a", [UInt8](repeating: 0, count: 7)), tensor: "a", "17 bytes written")
            try w.write("a", [UInt8](repeating: 0, count: 6))
            assertMisuse(try w.write("z", [0]), tensor: "z", "1 bytes written, tensor has 0")
            try w.write("b", data(specs[2]))
            try w.write("s", data(specs[3]))
            assertMisuse(try w.write("s", [0]), tensor: "s", "all tensors were already written")
            XCTAssertFalse(Sys.exists(path))
        }
        XCTAssertEqual(try leftovers(dir), [], "the dropped writer removed its temporary")
    }

    func testFinishingEarlyIsRejectedAndLeavesNoFile() throws {
        let dir = try STTemporaryDirectory()
        for written in 0..<specs.count {
            let path = dir.file("early\(written).safetensors")
            let w = try SafeTensorsWriter(path: path, tensors: specs)
            for spec in specs.prefix(written) { try w.write(spec.name, data(spec)) }
            if written == 0 { try w.write("a", [1, 2, 3]) } // partially written
            let missing = specs.dropFirst(written).first { $0.byteCount > 0 }!.name
            assertMisuse(try w.finish(), tensor: missing, "finished before")
            XCTAssertFalse(Sys.exists(path))
            XCTAssertEqual(try leftovers(dir), [], "the temporary is removed at once")
            assertMisuse(try w.finish(), tensor: nil, "aborted")
        }
    }

    func testFinishTwiceAndAbortThenFinishAreMisuse() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("twice.safetensors")
        let w = try SafeTensorsWriter(path: path, tensors: [specs[2]])
        try w.write("b", data(specs[2]))
        try w.finish()
        assertMisuse(try w.finish(), tensor: nil, "already finished")
        assertMisuse(try w.write("b", []), tensor: "b", "already finished")
        w.abort() // no effect once finished
        XCTAssertTrue(Sys.exists(path), "abort() after finish() leaves the finished file alone")

        let path2 = dir.file("aborted.safetensors")
        let w2 = try SafeTensorsWriter(path: path2, tensors: [specs[2]])
        try w2.write("b", data(specs[2]))
        w2.abort()
        assertMisuse(try w2.finish(), tensor: nil, "aborted")
        XCTAssertFalse(Sys.exists(path2))
        XCTAssertEqual(try leftovers(dir), ["twice.safetensors"])
    }

    func testDroppedWriterLeavesNoTemporary() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("dropped.safetensors")
        var temporary = ""
        do {
            let w = try SafeTensorsWriter(path: path, tensors: specs)
            try w.write("a", data(specs[0]))
            let names = try leftovers(dir)
            XCTAssertEqual(names.count, 1)
            temporary = names.first ?? ""
            XCTAssertEqual(TemporaryName(parsing: temporary)?.target, "dropped.safetensors", temporary)
        }
        XCTAssertFalse(temporary.isEmpty)
        XCTAssertEqual(try leftovers(dir), [], "deinit removed \(temporary)")
        XCTAssertFalse(Sys.exists(path))
        // A writer dropped before writing anything leaves nothing either.
        do { _ = try SafeTensorsWriter(path: path, tensors: specs) }
        XCTAssertEqual(try leftovers(dir), [])
    }

    func testFinishRenamesAtomicallyOverAnExistingFile() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("model.safetensors")
        let old = Array("previous contents".utf8)
        try STImage.write(old, to: path)
        let w = try SafeTensorsWriter(path: path, tensors: specs)
        for spec in specs { try w.write(spec.name, data(spec)) }
        // Until finish(), the old file is untouched and the new bytes sit in a hidden temporary.
        XCTAssertEqual(try Sys.readFile(path), old)
        let temporaries = try leftovers(dir, except: ["model.safetensors"])
        XCTAssertEqual(temporaries.count, 1)
        let tmpPath = dir.file(temporaries[0])
        XCTAssertEqual(try Sys.stat(tmpPath).size, w.fileSize)
        // Same inode after the rename: the temporary is moved into place, not copied.
        let inode = { (p: String) in try FileManager.default.attributesOfItem(atPath: p)[.systemFileNumber] as? UInt64 }
        let before = try XCTUnwrap(inode(tmpPath))
        try w.finish()
        XCTAssertEqual(try inode(path), before)
        XCTAssertFalse(Sys.exists(tmpPath))
        XCTAssertEqual(try leftovers(dir), ["model.safetensors"])
        XCTAssertEqual(try SafeTensorsHeader.read(path: path).tensors.count, specs.count)
    }

    func testTwoWritersForTheSameDestinationDoNotShareATemporary() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("same.safetensors")
        let one = try SafeTensorsWriter(path: path, tensors: [specs[2]], metadata: [("writer", "one")])
        let two = try SafeTensorsWriter(path: path, tensors: [specs[2]], metadata: [("writer", "two")])
        XCTAssertEqual(try leftovers(dir).count, 2, "one temporary each")
        try one.write("b", [1, 1, 1])
        try two.write("b", [2, 2, 2])
        try one.finish()
        XCTAssertEqual(try SafeTensorsHeader.read(path: path).metadata?.first?.1, "one")
        XCTAssertEqual(try bytes(of: "b", in: path), [1, 1, 1])
        try two.finish()
        XCTAssertEqual(try SafeTensorsHeader.read(path: path).metadata?.first?.1, "two")
        XCTAssertEqual(try bytes(of: "b", in: path), [2, 2, 2])
        XCTAssertEqual(try leftovers(dir), ["same.safetensors"])
    }

    func testInterruptAbortsTheWrite() throws {
        let dir = try STTemporaryDirectory()
        let path = dir.file("int.safetensors")
        let w = try SafeTensorsWriter(path: path, tensors: specs)
        try w.write("a", data(specs[0]))
        Interrupt.request()
        defer { Interrupt.reset() }
        XCTAssertThrowsError(try w.write("b", data(specs[2]))) { XCTAssertTrue($0 is Interrupted, "\($0)") }
        XCTAssertEqual(try leftovers(dir), [])
        Interrupt.reset()
        assertMisuse(try w.finish(), tensor: nil, "aborted")
        XCTAssertFalse(Sys.exists(path))
    }

    func testInvalidSpecsAreRejectedUpFront() throws {
        let dir = try STTemporaryDirectory()
        let bad: [([TensorSpec], SafeTensorsError.Code, String)] = [
            ([specs[0], specs[0]], .duplicateTensor, "a"),
            ([TensorSpec(name: "__metadata__", dtype: .u8, shape: [1])], .duplicateTensor, "__metadata__"),
            ([TensorSpec(name: "neg", dtype: .u8, shape: [2, -1])], .invalidShape, "neg"),
            ([TensorSpec(name: "f4", dtype: .f4, shape: [3])], .invalidShape, "f4"),
            ([TensorSpec(name: "huge", dtype: .u8, shape: [Int.max, 2])], .invalidShape, "huge"),
            ([TensorSpec(name: "wide", dtype: .f64, shape: [Int.max / 4])], .invalidShape, "wide"),
            ([TensorSpec(name: "x", dtype: .u8, shape: [Int.max])], .invalidShape, "x"), // Int.max × 8 bits overflows
            // Each fits; their offsets do not.
            ((0..<9).map { TensorSpec(name: "t\($0)", dtype: .u8, shape: [Int.max / 8]) }, .invalidShape, "t8"),
        ]
        for (tensors, code, name) in bad {
            XCTAssertThrowsError(try SafeTensorsWriter(path: dir.file("bad.safetensors"), tensors: tensors), name) { error in
                let e = error as? SafeTensorsError
                XCTAssertEqual(e?.kind, code, "\(error)")
                XCTAssertEqual(e?.tensor, name)
            }
        }
        XCTAssertEqual(try leftovers(dir), [], "a rejected spec list creates no temporary")
    }
}
