import Diagnostics
import Foundation

/// A pattern in Python `re` syntax, matched as Python matches it, on top of ICU's
/// `NSRegularExpression`: what `--ignore` and `--filter` take.
///
/// - `PATTERN` matches a name when `re.search(PATTERN, name)` would.
/// - `re:PATTERN` (the form of llm-compressor / compressed-tensors ignore lists) matches when
///   `re.match(PATTERN, name)` would: anchored at the start, as compressed-tensors applies it.
/// - The empty pattern matches every name, as in Python.
///
/// The Python syntax ICU spells differently is translated: named groups `(?P<name>…)` and
/// back-references `(?P=name)`, `\Z`, `\v`, `{,n}`, a `{` that is not a quantifier (a literal in
/// Python), `[` and `&` inside a character class (literals in Python, set syntax in ICU), `\b`
/// inside a class (backspace). What Python refuses is refused even when ICU would take it
/// (`(?<name>…)`, `\p{…}`, `\Q…\E`, other unknown letter escapes), and the few Python constructs
/// ICU lacks (conditionals `(?(1)…)`, the ASCII flag `(?a)`) are refused with a message saying
/// so, never matched differently.
public struct ModulePattern: Sendable {
    /// The pattern as given (with its `re:` prefix, if any).
    public let source: String
    /// True for `re:` patterns (`re.match`, anchored at the start of the name).
    public let anchored: Bool
    /// The ICU translation; nil for the empty pattern.
    public let icu: String?
    private let regex: NSRegularExpression?

    public init(_ source: String) throws {
        self.source = source
        let anchored = source.hasPrefix("re:")
        self.anchored = anchored
        let body = anchored ? String(source.dropFirst(3)) : source
        if body.isEmpty {
            icu = nil
            regex = nil
            return
        }
        let translated = try ModulePattern.translate(body, source: source)
        icu = translated
        // Python's `.`, `^` and `$` know one line terminator, \n; so does ICU in UNIX_LINES mode.
        do { regex = try NSRegularExpression(pattern: translated, options: [.useUnixLineSeparators]) } catch {
            throw PatternError(pattern: source, reason: "ICU refuses its translation '\(translated)' (\(error.localizedDescription))")
        }
    }

    /// `re.search` (or, for `re:` patterns, `re.match`) against `name`.
    public func matches(_ name: String) -> Bool {
        guard let regex else { return true }
        let range = NSRange(name.startIndex..., in: name)
        return regex.firstMatch(in: name, options: anchored ? [.anchored] : [], range: range) != nil
    }

    /// Translates a Python `re` pattern into ICU syntax; throws `PatternError` for what Python
    /// refuses and for the Python constructs ICU cannot express.
    public static func translate(_ python: String, source: String? = nil) throws -> String {
        let s = Array(python.unicodeScalars)
        let label = source ?? python
        func fail(_ why: String) -> PatternError { PatternError(pattern: label, reason: why) }
        var out = ""
        var i = 0
        var groupNames: [String: String] = [:]
        /// Open groups, innermost last: the capture number of capturing ones, nil for the others.
        var stack: [Int?] = []
        var captures = 0
        var closedCaptures = Set<Int>()
        var captureOfName: [String: Int] = [:]
        func open(capturing: Bool) {
            if capturing { captures += 1; stack.append(captures) } else { stack.append(nil) }
        }
        /// The ICU name for a Python group name (ICU allows only ASCII letters and digits).
        func icuName() -> String { "pyg\(groupNames.count)" }
        func isIdentifier(_ n: String) -> Bool {
            guard let f = n.unicodeScalars.first, f == "_" || f.properties.isXIDStart else { return false }
            return n.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isXIDContinue }
        }
        func readName(until end: Unicode.Scalar) throws -> String {
            var name = ""
            while i < s.count && s[i] != end { name.unicodeScalars.append(s[i]); i += 1 }
            guard i < s.count else { throw fail("missing '\(end)' after a group name") }
            i += 1
            guard isIdentifier(name) else { throw fail("bad character in group name '\(name)'") }
            return name
        }
        /// A valid Python quantifier `{m}`, `{m,}`, `{,n}`, `{,}`, `{m,n}` starting at `start` (at `{`):
        /// its ICU spelling and length, or nil when the `{` is a literal (as Python reads it).
        func quantifier(at start: Int) throws -> (String, Int)? {
            func digits(_ j: inout Int) -> String {
                var d = ""
                while j < s.count, s[j].isASCII, s[j].properties.numericType == .decimal { d.unicodeScalars.append(s[j]); j += 1 }
                return d
            }
            var j = start + 1
            let lo = digits(&j)
            var hi = "", comma = false
            if j < s.count && s[j] == "," { comma = true; j += 1; hi = digits(&j) }
            guard j < s.count, s[j] == "}", !(lo.isEmpty && !comma) else { return nil }
            if let l = Int(lo), let h = Int(hi), l > h { throw fail("min repeat greater than max repeat") }
            return (comma ? "{\(lo.isEmpty ? "0" : lo),\(hi)}" : "{\(lo)}", j - start + 1)
        }
        /// Escapes Python accepts for ASCII letters (the others are errors in Python 3.7+).
        let letterEscapes: Set<Unicode.Scalar> = ["a", "b", "B", "d", "D", "f", "n", "r", "s", "S", "t", "u", "U", "v", "w", "W", "x", "A", "Z", "N"]
        /// Copies the escape at `i` (at `\`), translated; `inClass` for a character class.
        func escape(inClass: Bool) throws {
            guard i + 1 < s.count else { throw fail("bad escape (end of pattern)") }
            let c = s[i + 1]
            i += 2
            if c.isASCII && c.properties.isAlphabetic {
                // Inside a class Python refuses \A, \Z and \B (and reads \b as backspace).
                guard letterEscapes.contains(c), !(inClass && (c == "A" || c == "Z" || c == "B")) else {
                    throw fail("bad escape \\\(c)")
                }
                switch c {
                case "Z": out += "\\z"
                case "v": out += "\\x{0B}"
                case "b" where inClass: out += "\\x{08}"
                case "x":
                    var hex = ""
                    while hex.count < 2, i < s.count, s[i].isASCII, s[i].properties.isASCIIHexDigit { hex.unicodeScalars.append(s[i]); i += 1 }
                    guard hex.count == 2 else { throw fail("incomplete escape \\x\(hex)") }
                    out += "\\x{\(hex)}"
                case "u", "U":
                    let n = c == "u" ? 4 : 8
                    var hex = ""
                    while hex.count < n, i < s.count, s[i].isASCII, s[i].properties.isASCIIHexDigit { hex.unicodeScalars.append(s[i]); i += 1 }
                    guard hex.count == n, let v = UInt32(hex, radix: 16) else { throw fail("incomplete escape \\\(c)\(hex)") }
                    guard v <= 0x10FFFF else { throw fail("bad escape \\\(c)\(hex)") }
                    out += "\\x{\(String(v, radix: 16))}"
                case "N":
                    guard i < s.count, s[i] == "{" else { throw fail("missing { after \\N") }
                    var name = ""
                    i += 1
                    while i < s.count && s[i] != "}" { name.unicodeScalars.append(s[i]); i += 1 }
                    guard i < s.count else { throw fail("missing } after \\N{") }
                    i += 1
                    out += "\\N{\(name)}"
                default:
                    out += "\\" + String(c)
                }
                return
            }
            if c.isASCII && c.properties.numericType == .decimal {
                // Python's rules (sre_parse): \0 and three octal digits are octal escapes; inside a
                // class any octal digits are; otherwise one or two digits name a closed group.
                func isOctal(_ k: Int) -> Bool { k < s.count && s[k].isASCII && ("0"..."7").contains(Character(s[k])) }
                func isDigit(_ k: Int) -> Bool { k < s.count && s[k].isASCII && s[k].properties.numericType == .decimal }
                var octal: String?
                if c == "0" || inClass {
                    guard c != "8" && c != "9" else { throw fail("bad escape \\\(c)") }
                    var d = String(c)
                    while d.count < 3 && isOctal(i) { d.unicodeScalars.append(s[i]); i += 1 }
                    octal = d
                } else if isOctal(i - 1) && isOctal(i) && isOctal(i + 1) {
                    octal = String(c) + String(s[i]) + String(s[i + 1])
                    i += 2
                }
                if let octal {
                    let v = Int(octal, radix: 8)!
                    guard v <= 0o377 else { throw fail("octal escape value \\\(octal) outside of range 0-0o377") }
                    out += "\\x{\(String(v, radix: 16))}"
                    return
                }
                var digits = String(c)
                if isDigit(i) { digits.unicodeScalars.append(s[i]); i += 1 }
                let k = Int(digits)!
                guard k <= captures else { throw fail("invalid group reference \(k)") }
                guard closedCaptures.contains(k) else { throw fail("cannot refer to an open group") }
                // (?:) ends the number: ICU would read following digits as part of it.
                out += "\\\(k)(?:)"
                return
            }
            // Any other escaped character is that character: ASCII punctuation keeps its backslash,
            // anything else is written by code point (ICU refuses some other escapes).
            if c.isASCII && c.properties.isPatternSyntax {
                out += "\\" + String(c)
            } else {
                out += "\\x{" + String(c.value, radix: 16) + "}"
            }
        }

        while i < s.count {
            let c = s[i]
            switch c {
            case "\\":
                try escape(inClass: false)
            case "[":
                out += "["
                i += 1
                if i < s.count && s[i] == "^" { out += "^"; i += 1 }
                // A `]` first in the class is a literal in Python.
                if i < s.count && s[i] == "]" { out += "\\]"; i += 1 }
                var closed = false
                while i < s.count {
                    let d = s[i]
                    if d == "]" { out += "]"; i += 1; closed = true; break }
                    if d == "\\" { try escape(inClass: true); continue }
                    // Literals in Python, set syntax (nested sets, intersection) in ICU.
                    if d == "[" || d == "&" || d == "{" || d == "}" || d == "$" { out += "\\" + String(d); i += 1; continue }
                    out.unicodeScalars.append(d)
                    i += 1
                }
                if !closed { throw fail("unterminated character set") }
            case "(":
                i += 1
                if i < s.count && s[i] == "?" {
                    i += 1
                    guard i < s.count else { throw fail("unexpected end of pattern after (?") }
                    let d = s[i]
                    if d == "P" {
                        i += 1
                        guard i < s.count else { throw fail("unexpected end of pattern after (?P") }
                        if s[i] == "<" {
                            i += 1
                            let name = try readName(until: ">")
                            guard groupNames[name] == nil else { throw fail("redefinition of group name '\(name)'") }
                            let n = icuName()
                            groupNames[name] = n
                            out += "(?<\(n)>"
                            open(capturing: true)
                            captureOfName[name] = captures
                        } else if s[i] == "=" {
                            i += 1
                            let name = try readName(until: ")")
                            guard let n = groupNames[name], let k = captureOfName[name] else { throw fail("unknown group name '\(name)'") }
                            guard closedCaptures.contains(k) else { throw fail("cannot refer to an open group") }
                            out += "\\k<\(n)>"
                        } else {
                            throw fail("unknown extension ?P\(s[i])")
                        }
                    } else if d == "<" {
                        guard i + 1 < s.count, s[i + 1] == "=" || s[i + 1] == "!" else {
                            throw fail("unknown extension ?<\(i + 1 < s.count ? String(s[i + 1]) : "") (Python spells named groups (?P<name>…))")
                        }
                        out += "(?<" + String(s[i + 1])
                        i += 2
                        open(capturing: false)
                    } else if d == "(" {
                        throw fail("conditional groups (?(…)…) are Python syntax that ICU regular expressions cannot express")
                    } else if d == "#" {
                        // A comment: dropped.
                        while i < s.count && s[i] != ")" { i += 1 }
                        guard i < s.count else { throw fail("missing ), unterminated comment") }
                        i += 1
                    } else if [":", "=", "!", ">"].contains(d) {
                        out += "(?" + String(d)
                        i += 1
                        open(capturing: false)
                    } else if d.properties.isAlphabetic || d == "-" {
                        // Inline flags: (?aiLmsux), (?flags:…), (?-flags:…).
                        var flags = ""
                        while i < s.count, s[i] != ")" && s[i] != ":" { flags.unicodeScalars.append(s[i]); i += 1 }
                        guard i < s.count else { throw fail("missing ) after inline flags") }
                        let scoped = s[i] == ":"
                        i += 1
                        var icuFlags = ""
                        for f in flags.unicodeScalars {
                            switch f {
                            case "i", "m", "s", "x", "-": icuFlags.unicodeScalars.append(f)
                            case "u": break  // the default for str patterns
                            case "a": throw fail("the ASCII flag (?a) has no ICU equivalent")
                            case "L": throw fail("bad inline flag: cannot use 'L' flag with a str pattern")
                            default: throw fail("unknown flag '\(f)'")
                            }
                        }
                        if scoped {
                            out += "(?\(icuFlags):"
                            open(capturing: false)
                        } else if !icuFlags.isEmpty {
                            out += "(?\(icuFlags))"
                        }
                    } else {
                        throw fail("unknown extension ?\(d)")
                    }
                } else {
                    out += "("
                    open(capturing: true)
                }
            case ")":
                guard let top = stack.popLast() else { throw fail("unbalanced parenthesis") }
                if let k = top { closedCaptures.insert(k) }
                out += ")"
                i += 1
            case "{":
                if let (q, n) = try quantifier(at: i) {
                    out += q
                    i += n
                } else {
                    out += "\\{"
                    i += 1
                }
            case "}", "]":
                out += "\\" + String(c)
                i += 1
            default:
                out.unicodeScalars.append(c)
                i += 1
            }
        }
        if !stack.isEmpty { throw fail("missing ), unterminated subpattern") }
        return out
    }
}

/// A pattern that is not a valid Python `re` pattern (or one ICU cannot express).
public struct PatternError: DiagnosticError {
    public var pattern: String
    public var reason: String
    public var category: ErrorCategory { .usage }
    public var code: String { "usage.invalid_pattern" }
    public var message: String { "'\(Diagnostic.escaped(pattern))' is not a valid Python regular expression: \(reason)" }
}
