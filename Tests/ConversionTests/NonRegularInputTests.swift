import Foundation
import XCTest
import Checkpoint
import Diagnostics
import Conversion
import SafeTensors
import SystemIO
#if canImport(Glibc)
import Glibc
#endif

/// Inputs that are not regular files (FIFOs, symlink loops, dangling links, unreadable files)
/// are refused at once with their own error, never read as "missing" and never blocked on.
/// Every CLI run has a 15 s guard: a hang is a failure, not a stuck suite.
final class NonRegularInputTests: XCTestCase {
    let guardSeconds = 15.0

    /// Replaces `path` (if it exists) with a FIFO that nobody writes to.
    func fifo(_ path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(mkfifo(path, 0o644), 0, "mkfifo \(path)")
    }

    func link(_ path: String, to target: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    /// Runs dsconvert with the guard; asserts it finished quickly with `status` and `code`.
    @discardableResult
    func expectQuick(_ args: [String], status: Int32 = 1, code: String, file: StaticString = #filePath, line: UInt = #line) throws -> CLI.Result {
        let t0 = Date()
        let r = try CLI.run(args + ["--json"], timeout: guardSeconds)
        let dt = Date().timeIntervalSince(t0)
        XCTAssertLessThan(dt, guardSeconds - 1, "\(args) blocked (killed by the guard)", file: file, line: line)
        XCTAssertEqual(r.status, status, "\(args): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.code, code, "\(args): \(r.stdout) \(r.stderr)", file: file, line: line)
        return r
    }

    func testFIFOsAnywhereAreRefusedWithoutBlocking() throws {
        let tmp = try CVTempDir()
        // The single file of a one-file model.
        let single = tmp.sub("single")
        try CV.copyDirectory(CV.llama, to: single)
        try fifo(single + "/model.safetensors")
        var r = try expectQuick(["inspect", single], code: "io.not_regular_file")
        XCTAssertTrue(r.stderr.contains("model.safetensors: is a fifo, not a regular file"), r.stderr)
        try expectQuick(["inspect", single + "/model.safetensors"], code: "io.not_regular_file")

        // config.json.
        let config = tmp.sub("config")
        try CV.copyDirectory(CV.llama, to: config)
        try fifo(config + "/config.json")
        r = try expectQuick(["inspect", config], code: "io.not_regular_file")
        XCTAssertTrue(r.stderr.contains("config.json"), r.stderr)

        // The index, and one shard of an indexed checkpoint.
        let index = tmp.sub("index")
        try CV.copyDirectory(CV.deepseek, to: index)
        try fifo(index + "/" + SafeTensorsIndex.fileName)
        r = try expectQuick(["inspect", index], code: "io.not_regular_file")
        XCTAssertTrue(r.stderr.contains(SafeTensorsIndex.fileName), r.stderr)
        let shard = tmp.sub("shard")
        try CV.copyDirectory(CV.deepseek, to: shard)
        try fifo(shard + "/" + CV.deepseekShards[2])
        r = try expectQuick(["quantize", "--fp8", shard, tmp.sub("out-shard")], code: "io.not_regular_file")
        XCTAssertTrue(r.stderr.contains(CV.deepseekShards[2]), r.stderr)
        XCTAssertFalse(CV.exists(tmp.sub("out-shard")), "refused before anything is written")

        // A stray .safetensors file in a folder without an index (every such file is a shard).
        let stray = tmp.sub("stray")
        try CV.copyDirectory(CV.llama, to: stray)
        try fifo(stray + "/extra.safetensors")
        try expectQuick(["inspect", stray], code: "io.not_regular_file")

        // A side file that would be copied: refused before any shard is converted.
        let side = tmp.sub("side")
        try CV.copyDirectory(CV.llama, to: side)
        try fifo(side + "/tokenizer.json")
        r = try expectQuick(["quantize", "--fp8", side, tmp.sub("out-side")], code: "io.not_regular_file")
        XCTAssertTrue(r.stderr.contains("tokenizer.json: is a fifo"), "not 'not copied (subfolders …)': \(r.stderr)")
        XCTAssertFalse(CV.exists(tmp.sub("out-side")))
    }

    /// The library call itself returns at once (run on a thread with a deadline, so a regression
    /// fails instead of hanging the suite).
    func testOpenForReadingDoesNotBlockOnAFIFO() throws {
        let tmp = try CVTempDir()
        let p = tmp.sub("pipe")
        try fifo(p)
        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var value = "" }
        let result = Box()
        Thread.detachNewThread {
            do { _ = try SafeTensorsHeader.read(path: p); result.value = "read" } catch {
                result.value = (error as? SafeTensorsError)?.code ?? "\(error)"
            }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "SafeTensorsHeader.read blocked on a FIFO")
        XCTAssertEqual(result.value, "io.not_regular_file")
        XCTAssertThrowsError(try Sys.readFile(p)) { XCTAssertTrue($0 is NotRegularFile, "\($0)") }
        XCTAssertThrowsError(try MappedFile(path: p)) { XCTAssertTrue($0 is NotRegularFile, "\($0)") }
    }

    /// A symlink loop is reported as a loop — as a shard, as config.json (which used to be read as
    /// "no config") and as a shard the index names (which used to be "does not exist").
    func testSymlinkLoopsAreNotReportedAsMissing() throws {
        let tmp = try CVTempDir()
        let single = tmp.sub("single")
        try CV.copyDirectory(CV.llama, to: single)
        try link(single + "/model.safetensors", to: "model.safetensors")  // points at itself
        var r = try expectQuick(["inspect", single], code: "io.symlink_loop")
        XCTAssertTrue(r.stderr.contains("symbolic links"), r.stderr)
        XCTAssertFalse(r.stderr.contains("does not exist"), r.stderr)

        let config = tmp.sub("config")
        try CV.copyDirectory(CV.llama, to: config)
        try link(config + "/config.json", to: "config.json")
        r = try expectQuick(["inspect", config], code: "io.symlink_loop")
        XCTAssertTrue(r.stderr.contains("config.json"), r.stderr)

        let indexed = tmp.sub("indexed")
        try CV.copyDirectory(CV.deepseek, to: indexed)
        try link(indexed + "/" + CV.deepseekShards[1], to: CV.deepseekShards[1])
        r = try expectQuick(["inspect", indexed], code: "io.symlink_loop")
        XCTAssertFalse(r.stderr.contains("does not exist"), r.stderr)

        // A loop in the path given on the command line.
        try link(tmp.sub("loop"), to: "loop")
        try expectQuick(["inspect", tmp.sub("loop")], code: "io.symlink_loop")
    }

    /// Item 28: every side file to be copied is checked before the first shard is converted — a
    /// dangling symlink, a FIFO and (when not running as root) a mode-000 file.
    func testUnreadableSideFileFailsBeforeConverting() throws {
        let tmp = try CVTempDir()
        var cases: [(String, (String) throws -> Void, String)] = [
            ("dangling", { try self.link($0, to: "no-such-file.json") }, "io.not_found"),
            ("fifo", { try self.fifo($0) }, "io.not_regular_file"),
        ]
        if geteuid() != 0 {
            cases.append(("mode000", { XCTAssertEqual(chmod($0, 0), 0) }, "io.permission_denied"))
        } else {
            print("NonRegularInputTests: running as root, where a mode-000 file is still readable; the chmod 000 case is skipped (the dangling-symlink and FIFO cases cover the same check)")
        }
        for (label, spoil, code) in cases {
            let input = tmp.sub("in-\(label)"), out = tmp.sub("out-\(label)")
            try CV.copyDirectory(CV.deepseek, to: input)
            try spoil(input + "/tokenizer.json")
            XCTAssertThrowsError(try CV.quantize(input, out), label) { e in
                XCTAssertEqual((e as? any DiagnosticError)?.code, code, "\(label): \(e)")
                XCTAssertTrue("\(e)".contains("tokenizer.json"), "\(label): \(e)")
            }
            XCTAssertFalse(CV.exists(out), "\(label): no shard was converted")
            if label == "dangling" {
                let r = try expectQuick(["quantize", "--fp8", input, out], code: code)
                XCTAssertTrue(r.stderr.contains("symbolic link to a file that does not exist"), r.stderr)
            }
        }
    }

    /// merge-index checks the side files before it writes the index or config.json.
    func testMergeIndexChecksSideFilesBeforeWriting() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in"), out = tmp.sub("out")
        try CV.copyDirectory(CV.deepseek, to: input)
        for j in 0..<2 { try CV.quantize(input, out, jobs: 2, jobIndex: j) }
        try fifo(input + "/tokenizer.json")
        try expectQuick(["merge-index", out], code: "io.not_regular_file")
        XCTAssertFalse(CV.exists(out + "/" + SafeTensorsIndex.fileName), "nothing written")
        XCTAssertFalse(CV.exists(out + "/config.json"))
        try FileManager.default.removeItem(atPath: input + "/tokenizer.json")
        try FileManager.default.copyItem(atPath: CV.deepseek + "/tokenizer.json", toPath: input + "/tokenizer.json")
        let r = try CLI.run(["merge-index", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try CV.bytes(out + "/tokenizer.json"), try CV.bytes(CV.deepseek + "/tokenizer.json"))
    }
}
