import Foundation

/// A pre-tokenizer's split pattern, found in text the way the `tokenizers` package finds it
/// (Oniguruma, leftmost-first alternation, greedy quantifiers with backtracking).
///
/// The regexes of GPT-2 (ByteLevel's built-in), Llama 3, Qwen2 and DeepSeek-V3 are recognised by
/// their exact text and run by hand-written scanners; any other regex runs through
/// `NSRegularExpression` (ICU) with `\s` rewritten to Oniguruma's White_Space set.
enum SplitPattern {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama 3 (`\p{N}{1,3}`, `digitRun` 3) and Qwen2 (`\p{N}`, `digitRun` 1): case-insensitive
    /// contractions, an optional non-letter before a letter run, punctuation runs that keep
    /// trailing newlines, newline runs.
    case llama3Style(digitRun: Int)
    /// `\p{N}{1,3}`
    case digits3
    /// `[一-龥぀-ゟ゠-ヿ]+` (DeepSeek-V3's CJK ideographs and kana).
    case cjkKana
    /// DeepSeek-V3's main regex: ASCII punctuation + ASCII letters, letter/mark runs with an
    /// optional prefix, punctuation/symbol runs, whitespace.
    case deepseek
    /// A `{"String": ...}` pattern: the literal text.
    case literal([UInt32])
    /// Any other regex.
    case regex(NSRegularExpression)

    static let gpt2Text = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Text = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Text = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let digits3Text = #"\p{N}{1,3}"#
    static let cjkKanaText = "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"
    static let deepseekText = ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##

    /// The pattern for a regex text. Literal CR and LF characters in the text are read as `\r`
    /// and `\n` (DeepSeek-V3's file mixes both spellings). `scanners: false` forces the general
    /// regex path (tests compare both).
    static func regex(_ text: String, scanners: Bool = true) throws -> SplitPattern {
        let canonical = text.replacingOccurrences(of: "\r", with: #"\r"#).replacingOccurrences(of: "\n", with: #"\n"#)
        if scanners {
            switch canonical {
            case gpt2Text: return .gpt2
            case llama3Text: return .llama3Style(digitRun: 3)
            case qwen2Text: return .llama3Style(digitRun: 1)
            case digits3Text: return .digits3
            case cjkKanaText: return .cjkKana
            case deepseekText: return .deepseek
            default: break
            }
        }
        return .regex(try NSRegularExpression(pattern: icuPattern(canonical)))
    }

    /// Oniguruma's `\s` is Unicode White_Space; ICU's is `[\t\n\f\r\p{Z}]`, which lacks U+000B
    /// and U+0085. Rewrites `\s` (and `\S` outside brackets) so both engines agree.
    static func icuPattern(_ pattern: String) -> String {
        let space = #"\t\n\x{0B}\f\r\x{85}\p{Z}"#
        var out = ""
        var inClass = 0
        var it = Array(pattern.unicodeScalars)[...]
        while let c = it.popFirst() {
            if c == "\\", let n = it.popFirst() {
                if n == "s" {
                    out += inClass > 0 ? space : "[" + space + "]"
                } else if n == "S" && inClass == 0 {
                    out += "[^" + space + "]"
                } else {
                    out.unicodeScalars.append(c)
                    out.unicodeScalars.append(n)
                }
                continue
            }
            if c == "[" { inClass += 1 } else if c == "]" && inClass > 0 { inClass -= 1 }
            out.unicodeScalars.append(c)
        }
        return out
    }

    /// The non-overlapping matches in `s[range]`, leftmost first; the ends of `range` are the ends
    /// of the text for anchors and look-ahead.
    func matches(in s: [UInt32], _ range: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        switch self {
        case .regex(let re):
            return Self.regexMatches(re, s, range)
        case .literal(let lit):
            guard !lit.isEmpty else { return [] }
            var i = range.lowerBound
            while i + lit.count <= range.upperBound {
                if s[i] == lit[0] && s[i..<(i + lit.count)].elementsEqual(lit) {
                    out.append(i..<(i + lit.count))
                    i += lit.count
                } else {
                    i += 1
                }
            }
            return out
        default:
            var scanner = Scanner(s: s, end: range.upperBound)
            var i = range.lowerBound
            while i < range.upperBound {
                let e = scanner.match(self, at: i)
                if e > i {
                    out.append(i..<e)
                    i = e
                } else {
                    i += 1
                }
            }
            return out
        }
    }

    private static func regexMatches(_ re: NSRegularExpression, _ s: [UInt32], _ range: Range<Int>) -> [Range<Int>] {
        var text = String.UnicodeScalarView()
        // utf16Index[k] is the scalar index (from range.lowerBound) of UTF-16 offset k.
        var scalarAt: [Int] = []
        for k in range {
            let u = Unicode.Scalar(s[k])!
            text.append(u)
            scalarAt.append(k)
            if u.value > 0xFFFF { scalarAt.append(k) }
        }
        scalarAt.append(range.upperBound)
        let string = String(text)
        var out: [Range<Int>] = []
        let all = NSRange(location: 0, length: scalarAt.count - 1)
        for m in re.matches(in: string, options: [], range: all) where m.range.length > 0 {
            out.append(scalarAt[m.range.location]..<scalarAt[m.range.location + m.range.length])
        }
        return out
    }
}

/// The hand-written matchers: `match(pattern, at: i)` is the end of the match that the regex
/// finds when it starts at `i`, or `i` when it matches nothing there.
private struct Scanner {
    let s: [UInt32]
    let end: Int

    @inline(__always) func cls(_ i: Int) -> CharClass { CharClass.of(s[i]) }
    @inline(__always) func isNewline(_ v: UInt32) -> Bool { v == 0x0A || v == 0x0D }

    /// The end of the run of characters from `i` whose class intersects `c`, at most `limit` long.
    func run(_ i: Int, _ c: CharClass, limit: Int = .max) -> Int {
        var j = i
        let stop = limit < end - i ? i + limit : end
        while j < stop && !CharClass.of(s[j]).isDisjoint(with: c) { j += 1 }
        return j
    }

    func run(_ i: Int, where p: (UInt32) -> Bool) -> Int {
        var j = i
        while j < end && p(s[j]) { j += 1 }
        return j
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive when `fold` (Oniguruma folds U+017F ſ to s).
    func contraction(_ i: Int, fold: Bool) -> Int {
        guard s[i] == 0x27, i + 1 < end else { return i }
        func f(_ v: UInt32) -> UInt32 {
            guard fold else { return v }
            if v >= 0x41 && v <= 0x5A { return v + 0x20 }
            if v == 0x17F { return 0x73 }
            return v
        }
        let a = f(s[i + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return i + 2 }  // s t m d
        guard i + 2 < end else { return i }
        let b = f(s[i + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return i + 3 }  // re ve ll
        return i
    }

    /// `\s*[\r\n]+` from `i` (a whitespace character): up to and including the run's last newline.
    func spacesToNewline(_ i: Int) -> Int {
        let j = run(i, .space)
        var k = j - 1
        while k >= i {
            if isNewline(s[k]) { return k + 1 }
            k -= 1
        }
        return i
    }

    /// `\s+(?!\S)|\s+` from `i` (a whitespace character): the run, less its last character when
    /// a non-space follows and the run is longer than one.
    func spaces(_ i: Int) -> Int {
        let j = run(i, .space)
        if j == i { return i }
        return (j == end || j - i == 1) ? j : j - 1
    }

    mutating func match(_ p: SplitPattern, at i: Int) -> Int {
        let c = s[i]
        let k = cls(i)
        switch p {
        case .gpt2:
            let e = contraction(i, fold: false)
            if e > i { return e }
            let other: CharClass = [.space, .letter, .number]
            if c == 0x20 && i + 1 < end {
                let n = cls(i + 1)
                if n.contains(.letter) { return run(i + 1, .letter) }
                if n.contains(.number) { return run(i + 1, .number) }
                if n.isDisjoint(with: other) { return run(i + 1, where: { CharClass.of($0).isDisjoint(with: other) }) }
            }
            if k.contains(.letter) { return run(i, .letter) }
            if k.contains(.number) { return run(i, .number) }
            if k.isDisjoint(with: other) { return run(i, where: { CharClass.of($0).isDisjoint(with: other) }) }
            return spaces(i)
        case .llama3Style(let digitRun):
            let e = contraction(i, fold: true)
            if e > i { return e }
            let letterOrNumber: CharClass = [.letter, .number]
            if !isNewline(c) && k.isDisjoint(with: letterOrNumber) && i + 1 < end && cls(i + 1).contains(.letter) {
                return run(i + 1, .letter)
            }
            if k.contains(.letter) { return run(i, .letter) }
            if k.contains(.number) { return run(i, .number, limit: digitRun) }
            let other: CharClass = [.space, .letter, .number]
            var j = i
            if c == 0x20 && i + 1 < end && cls(i + 1).isDisjoint(with: other) {
                j = run(i + 1, where: { CharClass.of($0).isDisjoint(with: other) })
            } else if k.isDisjoint(with: other) {
                j = run(i, where: { CharClass.of($0).isDisjoint(with: other) })
            }
            if j > i { return run(j, where: isNewline) }
            let n = spacesToNewline(i)
            if n > i { return n }
            return spaces(i)
        case .digits3:
            return k.contains(.number) ? run(i, .number, limit: 3) : i
        case .cjkKana:
            return run(i, where: { ($0 >= 0x4E00 && $0 <= 0x9FA5) || ($0 >= 0x3040 && $0 <= 0x30FF) })
        case .deepseek:
            let asciiLetter: (UInt32) -> Bool = { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }
            let asciiPunct = (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E)
            if asciiPunct && i + 1 < end && asciiLetter(s[i + 1]) { return run(i + 1, where: asciiLetter) }
            let letterMark: CharClass = [.letter, .mark]
            if !isNewline(c) && k.isDisjoint(with: [.letter, .punctuation, .symbol]) && i + 1 < end && !cls(i + 1).isDisjoint(with: letterMark) {
                return run(i + 1, letterMark)
            }
            if !k.isDisjoint(with: letterMark) { return run(i, letterMark) }
            let ps: CharClass = [.punctuation, .symbol]
            var j = i
            if c == 0x20 && i + 1 < end && !cls(i + 1).isDisjoint(with: ps) {
                j = run(i + 1, ps)
            } else if !k.isDisjoint(with: ps) {
                j = run(i, ps)
            }
            if j > i { return run(j, where: isNewline) }
            guard k.contains(.space) else { return i }
            let n = spacesToNewline(i)
            if n > i { return n }
            return spaces(i)
        case .literal, .regex:
            return i
        }
    }
}
