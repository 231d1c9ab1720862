import ArgumentParser
import Numerics
import SystemIO

/// Flags every reporting command has.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(name: [.short, .long], help: "No progress output.")
    var quiet = false

    func apply() throws {
        if let t = threads {
            guard t >= 1 else { throw ValidationError("--threads must be at least 1") }
            Parallel.threads = t
        }
    }
}

/// Parses sizes like `5GB`, `500MiB`, `4294967296`.
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        let s = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [
            ("TIB", 1099511627776), ("GIB", 1073741824), ("MIB", 1048576), ("KIB", 1024),
            ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3), ("B", 1),
        ]
        for (u, m) in units where s.hasSuffix(u) {
            guard let v = Double(s.dropLast(u.count).trimmingCharacters(in: .whitespaces)), v > 0 else { return nil }
            bytes = Int(v * m)
            return
        }
        guard let v = Int(s), v > 0 else { return nil }
        bytes = v
    }
}

/// `12.4 MB` style (decimal units, as `ls -h --si` and Hugging Face show sizes).
func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"]
    var v = Double(n)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    return i == 0 ? "\(n) B" : String(format: v >= 100 ? "%.0f %@" : v >= 10 ? "%.1f %@" : "%.2f %@", v, units[i])
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
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

import Foundation
