import Foundation

/// Running the Python reference scripts under `Tests/Reference` and handling their output.
///
/// The references are never optional: when `python3` or one of its packages (numpy, ml_dtypes,
/// xxhash) is missing, `run` throws an error telling the user to run `make test`, which installs
/// them, and the test that asked for the reference fails.
public enum PythonReference {
    /// The package root (the directory holding Package.swift), found from this file's path:
    /// `<root>/Tests/TestSupport/PythonReference.swift`.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // root

    /// `<root>/Tests/Reference/<name>`.
    public static func scriptURL(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/Reference").appendingPathComponent(name)
    }

    public struct Failure: Error, CustomStringConvertible, LocalizedError {
        public let message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
        public var errorDescription: String? { message }
    }

    public static let installHint =
        "The Python references need python3 with numpy, ml_dtypes and xxhash: run `make test`, which installs them."

    /// Runs `python3 <script> <arguments>` (the script path relative to `Tests/Reference`, or
    /// absolute) in the package root and returns its standard output. The interpreter is `python3`
    /// from PATH, or `$DSCONVERT_PYTHON` when set. Throws `Failure` with the script's stderr when it
    /// cannot be started or exits non-zero.
    @discardableResult
    public static func run(_ script: String, _ arguments: [String]) throws -> String {
        let scriptPath = script.hasPrefix("/") ? script : scriptURL(script).path
        guard FileManager.default.fileExists(atPath: scriptPath) else {
            throw Failure("Python reference script not found at \(scriptPath)")
        }
        let python = ProcessInfo.processInfo.environment["DSCONVERT_PYTHON"] ?? "python3"
        if ReferenceServer.enabled {
            let r = try ReferenceServer.shared.run(scriptPath, arguments)
            if r.status != 0 {
                throw Failure(failureMessage(python, [scriptPath] + arguments, status: r.status, killed: false, stderr: r.stderr))
            }
            return r.stdout
        }
        // Capture output in files rather than pipes: a large stdout/stderr cannot then block the child.
        let scratch = try TemporaryDirectory(prefix: "pyref-run")
        let outURL = scratch.url.appendingPathComponent("stdout")
        let errURL = scratch.url.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, scriptPath] + arguments
        p.currentDirectoryURL = packageRoot
        var env = ProcessInfo.processInfo.environment
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        p.environment = env
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            try? out.close(); try? err.close()
            throw Failure("could not start `\(python) \(scriptPath)`: \(error). \(installHint)")
        }
        p.waitUntilExit()
        try? out.close(); try? err.close()
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let status = p.terminationStatus
        if p.terminationReason != .exit || status != 0 {
            throw Failure(failureMessage(python, [scriptPath] + arguments, status: status, killed: p.terminationReason != .exit, stderr: stderr))
        }
        return stdout
    }

    static func failureMessage(_ python: String, _ command: [String], status: Int32, killed: Bool, stderr: String) -> String {
        var msg = "`\(python) \(command.joined(separator: " "))` "
        msg += killed ? "was killed by signal \(status)" : "exited with status \(status)"
        msg += stderr.isEmpty ? " (no stderr)" : ":\n\(stderr)"
        if status == 127 || stderr.contains("ModuleNotFoundError") || stderr.contains("ImportError")
            || stderr.contains("No such file or directory") || stderr.contains("cannot import")
        {
            msg += "\n" + installHint
        }
        return msg
    }

    /// The bytes of `dir/name`, checked to hold exactly `count` elements of `T` when `count` is given.
    public static func load<T>(_ dir: URL, _ name: String, as _: T.Type, count: Int? = nil) throws -> [T] {
        let url = dir.appendingPathComponent(name)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw Failure("reference file \(url.path) is missing or unreadable: \(error)")
        }
        let size = MemoryLayout<T>.stride
        guard data.count % size == 0 else {
            throw Failure("reference file \(name): \(data.count) bytes is not a multiple of \(size)")
        }
        let n = data.count / size
        if let count, n != count {
            throw Failure("reference file \(name): \(n) elements, expected \(count)")
        }
        return [T](unsafeUninitializedCapacity: n) { buf, initialized in
            data.withUnsafeBytes { raw in
                if n > 0 { memcpy(buf.baseAddress!, raw.baseAddress!, n * size) }
            }
            initialized = n
        }
    }
}

extension PythonReference {
    // Nested (PythonReference.TemporaryDirectory) so it cannot clash with helpers other test
    // files in TestSupport may declare.
    /// A fresh directory under the system temp directory, removed by `remove()` or when the last
    /// reference to it goes away.
    public final class TemporaryDirectory: @unchecked Sendable {
        public let url: URL
        private var removed = false

        public init(prefix: String = "dsconvert-test") throws {
            let base = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
            let name = "\(prefix)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
            url = base.appendingPathComponent(name, isDirectory: true)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        public var path: String { url.path }

        public func appending(_ component: String) -> URL { url.appendingPathComponent(component) }

        public func remove() {
            if removed { return }
            removed = true
            try? FileManager.default.removeItem(at: url)
        }

        deinit { remove() }
    }
}
