import ArgumentParser
import Diagnostics
import Foundation
import JSON
import SystemIO

/// The exit statuses of every command (binding; the README's table is this one), and the one
/// place an error is turned into a status and printed.
enum ExitStatus {
    static let ok: Int32 = 0
    static let badInput: Int32 = 1
    static let gateFailed: Int32 = 3
    static let verificationFailed: Int32 = 4
    static let usage: Int32 = 64
    static let sigint: Int32 = 130
    static let sigterm: Int32 = 143

    /// The exit status of an error of `category` (`signal` for `.interrupted`).
    static func of(_ category: ErrorCategory, signal: Int32 = SIGINT) -> Int32 {
        switch category {
        case .usage: return usage
        case .input, .io, .output: return badInput
        case .gate: return gateFailed
        case .verification: return verificationFailed
        case .interrupted: return signal == SIGTERM ? sigterm : sigint
        }
    }

    /// Prints `error` (one line on standard error; with `json` also the error object on standard
    /// output, after `report`'s members when a command prints its report even when it fails, so
    /// that stdout is one document) and exits with its status. Help and version requests exit 0
    /// as ArgumentParser does.
    static func exit(with error: Error, json: Bool, report: [(String, JSONValue)] = []) -> Never {
        let (v, status, text) = describe(error)
        if json {
            print(JSONWriter.pretty(.object(report + [("error", v)])), terminator: "")
            fflush(stdout)
        }
        printError(text)
        Foundation.exit(status)
    }

    /// The error object `--json` prints, the exit status and the line for standard error.
    private static func describe(_ error: Error) -> (JSONValue, Int32, String) {
        let d: Diagnostic
        let status: Int32
        var text: String
        // ArgumentParser wraps what option transforms and validate() throw; unwrap ours.
        if let e = error as? any DiagnosticError ?? OptionValue.embeddedDiagnostic(error) {
            d = Diagnostic(e)
            status = of(e.category, signal: (e as? Interrupted)?.signal ?? SIGINT)
            text = "error: " + d.description
        } else if let e = error as? ExitCode {
            // Thrown by ArgumentParser itself (e.g. `--version`); nothing of ours throws it.
            Foundation.exit(e.rawValue)
        } else {
            let code = DSConvert.exitCode(for: error)
            if code == .success { DSConvert.exit(withError: error) }  // --help, --version
            d = Diagnostic(.usage, code: "usage", DSConvert.message(for: error))
            status = usage
            text = DSConvert.fullMessage(for: error)
            if !text.lowercased().hasPrefix("error") { text = "error: " + text }
        }
        let v = JSONValue.object([
            ("code", .string(d.code)),
            ("exit_status", .int(Int(status))),
            ("message", .string(d.message)),
            ("file", d.file.map { .string($0) } ?? .null),
            ("tensor", d.tensor.map { .string($0) } ?? .null),
            ("offset", d.offset.map { .int($0) } ?? .null),
        ])
        return (v, status, text)
    }
}
