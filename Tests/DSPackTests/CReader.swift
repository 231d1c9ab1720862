import Foundation
import JSON
import TestSupport
import XCTest

/// Formats/dspack.h's test driver (Tests/CReader/dspack_cli.c), compiled once per test run with
/// the system C compiler (`$CC`, else `cc`) and linked against libxxhash; `opensslSHA` builds
/// the variant whose SHA-256 is OpenSSL's instead of the header's embedded one, with
/// dspack_verify_signature (Ed25519 through OpenSSL) compiled in.
enum CReader {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [Bool: String] = [:]
    nonisolated(unsafe) private static var scratch: STTemporaryDirectory?

    static func executable(opensslSHA: Bool = false) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let p = built[opensslSHA] { return p }
        if scratch == nil { scratch = try STTemporaryDirectory("dspack-c") }
        let out = scratch!.file(opensslSHA ? "dspack_cli_openssl" : "dspack_cli")
        let root = PythonReference.packageRoot.path
        var args = ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", root + "/Formats",
                    root + "/Tests/CReader/dspack_cli.c", "-o", out, "-lxxhash"]
        if opensslSHA { args += ["-DDSPACK_SHA256_OPENSSL", "-DDSPACK_ED25519_OPENSSL", "-lcrypto"] }
        let cc = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let (status, _, err) = try run("/usr/bin/env", [cc] + args)
        guard status == 0 else { throw PythonReference.Failure("\(cc) failed to build the C reader's test driver:\n\(err)") }
        built[opensslSHA] = out
        return out
    }

    /// Runs the driver on `files`: one JSON object per file, in order.
    static func read(_ files: [String], opensslSHA: Bool = false) throws -> [JSONValue] {
        let (_, out, err) = try run(try executable(opensslSHA: opensslSHA), files)
        let lines = out.split(separator: "\n")
        guard lines.count == files.count else { throw PythonReference.Failure("the C driver printed \(lines.count) lines for \(files.count) files: \(err)") }
        return try lines.map { try JSONParser.parse(Array($0.utf8)) }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let dir = try STTemporaryDirectory("dspack-c-run")
        FileManager.default.createFile(atPath: dir.file("out"), contents: nil)
        FileManager.default.createFile(atPath: dir.file("err"), contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("out")))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("err")))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = out
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        try? out.close(); try? err.close()
        return (p.terminationStatus, (try? String(contentsOfFile: dir.file("out"), encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: dir.file("err"), encoding: .utf8)) ?? "")
    }
}
