import ArgumentParser
import Diagnostics
import Quantization

/// A command-line value dsconvert refuses: out of range, malformed, or contradicting another
/// option. Always a usage error (exit 64); the message names the option and what it allows.
struct UsageError: DiagnosticError {
    /// `usage.invalid_value` (a value out of range or malformed) or `usage.conflicting_options`.
    var code: String
    var message: String
    var category: ErrorCategory { .usage }

    /// `--threads '0' is out of range: expected an integer from 1 to 1024`.
    static func invalid(_ option: String, _ value: String, _ why: String, allowed: String) -> UsageError {
        UsageError(code: "usage.invalid_value", message: "\(option) '\(Diagnostic.escaped(value))' \(why): expected \(allowed)")
    }

    static func conflict(_ message: String) -> UsageError {
        UsageError(code: "usage.conflicting_options", message: message)
    }
}

/// The one parser of every numeric option: integers and byte sizes are read as text with
/// overflow-checked integer arithmetic (never a floating-point conversion that can trap) and
/// checked against the option's range, so any value either parses or is a `UsageError` naming
/// the option and the range. Options using it are declared with `parsing: .unconditional`, so
/// that `--threads -1` is read as the value -1 (and refused as out of range), not as a flag.
enum OptionValue {
    static let threads = 1...1024
    static let jobs = 1...100_000
    static let blockSize = 1...65536
    static let shards = 1...100_000
    static let layers = 1...10_000
    static let scale = 1...65536
    /// 1 byte to 1 PiB.
    static let byteSize = 1...(1 << 50)

    /// A decimal integer in `range` (an optional sign; no spaces inside, no exponent, no hex).
    static func integer(_ text: String, option: String, in range: ClosedRange<Int>) throws -> Int {
        let allowed = "an integer from \(range.lowerBound) to \(range.upperBound)"
        let s = text.trimmingCharacters(in: .whitespaces)
        let body = s.first == "+" || s.first == "-" ? s.dropFirst() : Substring(s)
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw UsageError.invalid(option, text, "is not an integer", allowed: allowed)
        }
        guard let v = Int(s), range.contains(v) else {
            throw UsageError.invalid(option, text, "is out of range", allowed: allowed)
        }
        return v
    }

    /// A plain decimal number in `range` (`0.7`, `1`, `.5`; no sign, exponent, `inf` or `nan`).
    static func decimal(_ text: String, option: String, in range: ClosedRange<Double>) throws -> Double {
        let allowed = "a number from \(range.lowerBound) to \(range.upperBound)"
        let s = text.trimmingCharacters(in: .whitespaces)
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard !s.isEmpty, parts.count <= 2, parts.contains(where: { !$0.isEmpty }),
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }), let v = Double(s.hasPrefix(".") ? "0" + s : s) else {
            throw UsageError.invalid(option, text, s.hasPrefix("-") ? "is out of range" : "is not a number", allowed: allowed)
        }
        guard range.contains(v) else { throw UsageError.invalid(option, text, "is out of range", allowed: allowed) }
        return v
    }

    /// An unsigned 64-bit integer (the full range).
    static func uint64(_ text: String, option: String) throws -> UInt64 {
        let s = text.trimmingCharacters(in: .whitespaces)
        let allowed = "an integer from 0 to \(UInt64.max)"
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw UsageError.invalid(option, text, s.hasPrefix("-") ? "is out of range" : "is not an integer", allowed: allowed)
        }
        guard let v = UInt64(s) else { throw UsageError.invalid(option, text, "is out of range", allowed: allowed) }
        return v
    }

    /// Units of `byteSize`, longest first (case-insensitive): SI powers of 1000 and IEC powers of 1024.
    static let units: [(String, Int)] = [
        ("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000),
        ("T", 1_000_000_000_000), ("G", 1_000_000_000), ("M", 1_000_000), ("K", 1000), ("B", 1),
    ]

    /// A size such as `5GB`, `1.5GiB`, `500MiB` or `4294967296`: digits with an optional decimal
    /// fraction, then an optional unit. It must come to a whole number of bytes within `range`;
    /// computed exactly in integers, so `infGB`, `1e30B` and `9223372036854775807GB` are refused
    /// instead of overflowing.
    static func byteSize(_ text: String, option: String, in range: ClosedRange<Int> = byteSize) throws -> Int {
        let allowed = "a size from \(range.lowerBound) B to \(range.upperBound == 1 << 50 ? "1 PiB" : "\(range.upperBound) B") (e.g. 5GB, 500MiB, 4294967296)"
        var s = Substring(text.trimmingCharacters(in: .whitespaces).uppercased())
        var multiplier = 1
        for (u, m) in units where s.hasSuffix(u) {
            s = s.dropLast(u.count)
            multiplier = m
            break
        }
        s = Substring(s.trimmingCharacters(in: .whitespaces))
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let intPart = parts[0]
        var fraction = parts.count > 1 ? parts[1] : ""
        func isDigits(_ x: Substring) -> Bool { x.allSatisfy { $0.isASCII && $0.isNumber } }
        guard !(intPart.isEmpty && fraction.isEmpty), isDigits(intPart), isDigits(fraction) else {
            throw UsageError.invalid(option, text, s.hasPrefix("-") ? "is out of range" : "is not a size", allowed: allowed)
        }
        let tooLarge = UsageError.invalid(option, text, "is out of range", allowed: allowed)
        while fraction.last == "0" { fraction = fraction.dropLast() }
        // Leading zeros cannot overflow: drop them before converting.
        let whole = intPart.drop { $0 == "0" }
        guard whole.count <= 18, let w = Int(whole.isEmpty ? "0" : whole) else { throw tooLarge }
        var (bytes, overflow) = w.multipliedReportingOverflow(by: multiplier)
        if overflow { throw tooLarge }
        if !fraction.isEmpty {
            // fraction / 10^f × multiplier must be whole: reduce 10^f against the multiplier first.
            guard fraction.count <= 18, let f = Int(fraction) else {
                throw UsageError.invalid(option, text, "has too many decimal places", allowed: allowed)
            }
            var denominator = 1
            for _ in 0..<fraction.count { denominator *= 10 }
            let g = gcd(multiplier, denominator)
            let m = multiplier / g, d = denominator / g
            guard f % d == 0 else {
                throw UsageError.invalid(option, text, "is not a whole number of bytes", allowed: allowed)
            }
            let (part, o1) = (f / d).multipliedReportingOverflow(by: m)
            let (sum, o2) = bytes.addingReportingOverflow(part)
            if o1 || o2 { throw tooLarge }
            bytes = sum
        }
        guard range.contains(bytes) else {
            throw UsageError.invalid(option, text, bytes < range.lowerBound ? "is too small" : "is out of range", allowed: allowed)
        }
        return bytes
    }

    /// A Python `re` pattern (`ModulePattern`); an invalid one is `usage.invalid_pattern` naming the option.
    static func pattern(_ text: String, option: String) throws -> ModulePattern {
        do { return try ModulePattern(text) } catch let e as PatternError {
            throw UsageError(code: e.code, message: "\(option) \(e.message)")
        }
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// The `DiagnosticError` inside an error ArgumentParser wrapped (it wraps what `transform`
    /// closures and `validate()` throw), found by reflection so its code and message survive.
    static func embeddedDiagnostic(_ value: Any, depth: Int = 0) -> (any DiagnosticError)? {
        if let d = value as? any DiagnosticError { return d }
        guard depth < 6 else { return nil }
        for child in Mirror(reflecting: value).children {
            if let d = embeddedDiagnostic(child.value, depth: depth + 1) { return d }
        }
        return nil
    }
}

import Foundation
