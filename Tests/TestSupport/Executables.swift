import Foundation
import XCTest

/// The package's executables (dsconvert, dsconvert-bench, test helpers), which
/// `swift build --build-tests` puts beside the test bundle.
public enum BuiltExecutable {
    /// The path of executable `name`, or an XCTSkip when it was not built.
    public static func path(_ name: String) throws -> String {
        var dir = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let p = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
            dir.deleteLastPathComponent()
        }
        throw XCTSkip("\(name) executable not found next to the tests (build with --build-tests)")
    }
}

/// A child process whose standard output is read line by line while it runs.
public final class ChildProcess {
    public let process = Process()
    private let out = Pipe()
    private var buffered = Data()

    public init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The next line of standard output (without the newline), or nil at end of file or when
    /// none arrives within `timeout` seconds (a hang is a test failure, not a stuck suite).
    public func readLine(timeout: Double = 30) -> String? {
        let fd = out.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = buffered.firstIndex(of: 0x0A) {
                let line = String(decoding: buffered[buffered.startIndex..<nl], as: UTF8.self)
                buffered = Data(buffered[buffered.index(after: nl)...])
                return line
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffered.append(contentsOf: chunk[0..<n])
        }
    }

    /// The rest of standard output, up to end of file (or `timeout` seconds).
    public func readAll(timeout: Double = 60) -> String {
        var lines: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        while let l = readLine(timeout: max(0, deadline.timeIntervalSinceNow)) { lines.append(l) }
        if !buffered.isEmpty { lines.append(String(decoding: buffered, as: UTF8.self)); buffered.removeAll() }
        return lines.joined(separator: "\n")
    }

    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the exit (killing the child after `timeout` seconds) and returns its status.
    public func wait(timeout: Double = 30) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
}
