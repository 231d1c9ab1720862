import Diagnostics
import ArgumentParser
import Numerics
import SystemIO

/// Flags every reporting command has.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @Option(name: .long, parsing: .unconditional, help: "Worker threads, 1 to 1024 (default: all cores).",
            transform: { try OptionValue.integer($0, option: "--threads", in: OptionValue.threads) })
    var threads: Int?

    @Flag(name: [.short, .long], help: "No progress output.")
    var quiet = false

    func apply() throws {
        if let t = threads { Parallel.threads = t }
    }
}

/// 6224224 → "6,224,224".
func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

/// Writes a line to standard error.
func printError(_ s: String) {
    // Control characters from names in the input never reach the terminal raw.
    FileHandle.standardError.write((Diagnostic.escaped(s, keepWhitespace: true) + "\n").data(using: .utf8)!)
}

import Foundation
