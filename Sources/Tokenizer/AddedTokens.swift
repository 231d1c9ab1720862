/// One entry of `added_tokens`.
public struct AddedToken: Sendable, Equatable {
    public var id: Int32
    public var content: String
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var normalized: Bool
    public var special: Bool
}

/// Finds added tokens in text the way `tokenizers`' AddedVocabulary does: leftmost-longest
/// (Aho-Corasick) over non-overlapping matches; a `single_word` token next to a word character
/// is dropped (and the search goes on after it); `lstrip` / `rstrip` absorb the whitespace
/// beside the match.
struct AddedTokenMatcher: Sendable {
    struct Entry: Sendable {
        var scalars: [UInt32]
        var token: AddedToken
    }
    /// Entries by first scalar, longest first.
    private var byFirst: [UInt32: [Entry]] = [:]
    private var asciiFirst = [Bool](repeating: false, count: 128)

    var isEmpty: Bool { byFirst.isEmpty }

    init(_ entries: [(scalars: [UInt32], token: AddedToken)]) {
        for e in entries where !e.scalars.isEmpty {
            byFirst[e.scalars[0], default: []].append(Entry(scalars: e.scalars, token: e.token))
            if e.scalars[0] < 128 { asciiFirst[Int(e.scalars[0])] = true }
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    enum Segment {
        case text(Range<Int>)
        case token(Int32)
    }

    /// `s[range]` cut into text and added tokens, in order; empty text is left out.
    func split(_ s: [UInt32], _ range: Range<Int>) -> [Segment] {
        if byFirst.isEmpty { return range.isEmpty ? [] : [.text(range)] }
        var out: [Segment] = []
        var textStart = range.lowerBound
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = s[i]
            if c < 128 && !asciiFirst[Int(c)] { i += 1; continue }
            guard let candidates = byFirst[c],
                  let e = candidates.first(where: { i + $0.scalars.count <= end && s[i..<(i + $0.scalars.count)].elementsEqual($0.scalars) })
            else { i += 1; continue }
            var start = i
            var stop = i + e.scalars.count
            let t = e.token
            if t.singleWord {
                let before = start > range.lowerBound && Self.isWord(s[start - 1])
                let after = stop < end && Self.isWord(s[stop])
                if before || after { i = stop; continue }
            }
            if t.lstrip {
                while start > textStart && Self.isSpace(s[start - 1]) { start -= 1 }
            }
            if t.rstrip {
                while stop < end && Self.isSpace(s[stop]) { stop += 1 }
            }
            if textStart < start { out.append(.text(textStart..<start)) }
            out.append(.token(t.id))
            textStart = stop
            i = stop
        }
        if textStart < end { out.append(.text(textStart..<end)) }
        return out
    }

    /// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    static func isWord(_ v: UInt32) -> Bool {
        guard let u = Unicode.Scalar(v) else { return false }
        let p = u.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static func isSpace(_ v: UInt32) -> Bool { CharClass.of(v).contains(.space) }
}
