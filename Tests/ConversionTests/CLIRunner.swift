import Foundation
import XCTest
import JSON
import TestSupport

/// Runs the built `dsconvert` executable (beside the test bundle) for CLI-level tests.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// The `{"error": {...}}` object printed with `--json`, when there is one.
        var error: JSONValue? { (try? JSONParser.parse(stdout))?["error"] }
        var code: String? { error?["code"]?.stringValue }
    }

    static func executable() throws -> String { try BuiltExecutable.path("dsconvert") }

    /// Runs `dsconvert args`; `timeout` kills it (a hang is a test failure, not a stuck suite).
    /// Runs `dsconvert args` (or another built executable, e.g. `dsconvert-bench`).
    static func run(_ args: [String], executable name: String? = nil, timeout: Double = 60) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try name.map { try BuiltExecutable.path($0) } ?? executable())
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = DispatchTime.now() + timeout
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: deadline)
        timer.setEventHandler { if p.isRunning { p.terminate() } }
        timer.resume()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        timer.cancel()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Asserts exit status and (with `--json` in `args`) the error code, and returns the result.
    @discardableResult
    static func expect(_ args: [String], status: Int32, code: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let r = try run(args)
        XCTAssertEqual(r.status, status, "\(args): \(r.stderr)", file: file, line: line)
        if let code {
            XCTAssertEqual(r.code, code, "\(args): stdout \(r.stdout) stderr \(r.stderr)", file: file, line: line)
        }
        return r
    }
}
