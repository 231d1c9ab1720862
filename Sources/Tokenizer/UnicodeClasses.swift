/// The character classes the pre-tokenizer regexes use, as Oniguruma (the regex engine of the
/// `tokenizers` package) defines them: `\p{L}`, `\p{N}`, `\p{M}`, `\p{P}`, `\p{S}` are the
/// Unicode general categories, `\s` the White_Space property — of Unicode 16.0, the version of the
/// Oniguruma in `tokenizers` 0.2x: code points assigned later (the Swift runtime knows newer
/// versions) are unassigned there, in no class.
struct CharClass: OptionSet {
    let rawValue: UInt8
    static let letter = CharClass(rawValue: 1)
    static let number = CharClass(rawValue: 2)
    static let mark = CharClass(rawValue: 4)
    static let punctuation = CharClass(rawValue: 8)
    static let symbol = CharClass(rawValue: 16)
    static let space = CharClass(rawValue: 32)

    /// One byte per BMP code point, computed once; astral code points are looked up directly.
    private static let bmp: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            if let u = Unicode.Scalar(UInt32(v)) { t[v] = compute(u).rawValue }
        }
        return t
    }()

    /// The Unicode version of Oniguruma's property tables.
    static let oniguruma = (major: 16, minor: 0)

    static func of(_ v: UInt32) -> CharClass {
        if v < 0x10000 { return CharClass(rawValue: bmp[Int(v)]) }
        guard let u = Unicode.Scalar(v) else { return [] }
        return compute(u)
    }

    private static func compute(_ u: Unicode.Scalar) -> CharClass {
        let p = u.properties
        if let age = p.age, age.major > oniguruma.major || (age.major == oniguruma.major && age.minor > oniguruma.minor) { return [] }
        var c: CharClass = p.isWhitespace ? .space : []
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            c.insert(.number)
        case .nonspacingMark, .spacingMark, .enclosingMark:
            c.insert(.mark)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            c.insert(.punctuation)
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            c.insert(.symbol)
        default:
            break
        }
        return c
    }
}
