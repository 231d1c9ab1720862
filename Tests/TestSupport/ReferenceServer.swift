import Foundation
import JSON

/// One long-lived Python process (`Tests/Reference/ref_server.py`) that runs the reference scripts
/// for the whole test process.
///
/// Starting Python with numpy and ml_dtypes takes seconds, and the suites call the references
/// dozens of times; the server pays that once. Each call still runs the script from scratch
/// (fresh module namespace, its own argv, captured stdout/stderr and exit status), so the answers
/// are the live references', exactly as `python3 SCRIPT ARGS` gives them.
/// `DSCONVERT_REFERENCE_SERVER=0` falls back to one `python3` process per call.
public final class ReferenceServer: @unchecked Sendable {
    public struct Reply {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// False when `DSCONVERT_REFERENCE_SERVER=0`.
    public static let enabled = ProcessInfo.processInfo.environment["DSCONVERT_REFERENCE_SERVER"] != "0"

    public static let shared = ReferenceServer()

    private let lock = NSLock()
    private var process: Process?
    private var input: FileHandle?
    private var output: FileHandle?
    private var buffer = Data()

    /// Runs `script` (an absolute path) with `arguments` in the server. Throws `PythonReference.Failure`
    /// when the server cannot be started or dies; a script's own failure is a `Reply` with its status.
    public func run(_ script: String, _ arguments: [String]) throws -> Reply {
        lock.lock()
        defer { lock.unlock() }
        try startIfNeeded()
        let request = JSONValue.object([("script", .string(script)), ("args", .array(arguments.map { .string($0) }))])
        var line = Data(JSONWriter.compact(request).utf8)
        line.append(0x0A)
        do {
            try input!.write(contentsOf: line)
        } catch {
            stop()
            throw PythonReference.Failure("the Python reference server died before `\(script)` could run (\(error)). \(PythonReference.installHint)")
        }
        guard let reply = readLine() else {
            stop()
            throw PythonReference.Failure("the Python reference server exited while running `\(script) \(arguments.joined(separator: " "))`. \(PythonReference.installHint)")
        }
        let json: JSONValue
        do { json = try JSONParser.parse([UInt8](reply)) } catch {
            stop()
            throw PythonReference.Failure("the Python reference server sent invalid JSON (\(error)): \(String(decoding: reply.prefix(500), as: UTF8.self))")
        }
        return Reply(
            status: Int32(json["status"]?.intValue ?? 1),
            stdout: json["stdout"]?.stringValue ?? "",
            stderr: json["stderr"]?.stringValue ?? "")
    }

    private func startIfNeeded() throws {
        if let p = process, p.isRunning { return }
        stop()
        let python = ProcessInfo.processInfo.environment["DSCONVERT_PYTHON"] ?? "python3"
        let server = STFixtures.referenceDirectory + "/ref_server.py"
        // A write to a server that just died must fail with EPIPE, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, server]
        p.currentDirectoryURL = URL(fileURLWithPath: STFixtures.packageRoot)
        var env = ProcessInfo.processInfo.environment
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        p.environment = env
        let toServer = Pipe(), fromServer = Pipe()
        p.standardInput = toServer
        p.standardOutput = fromServer
        p.standardError = FileHandle.standardError
        do { try p.run() } catch {
            throw PythonReference.Failure("could not start `\(python) \(server)`: \(error). \(PythonReference.installHint)")
        }
        process = p
        input = toServer.fileHandleForWriting
        output = fromServer.fileHandleForReading
        buffer = Data()
    }

    /// The next newline-terminated reply (without the newline), or nil at end of file.
    private func readLine() -> Data? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                return Data(line)
            }
            let chunk = output!.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    private func stop() {
        try? input?.close()
        if let p = process, p.isRunning { p.terminate(); p.waitUntilExit() }
        process = nil
        input = nil
        output = nil
    }
}
