/// GPT-2's reversible byte ↔ character map: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) for U+0100 … U+0143 in byte order.
/// Byte-level vocabularies are written in these characters.
enum ByteLevelAlphabet {
    /// `character[b]` is the scalar value that byte `b` is written as.
    static let character: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The byte a scalar stands for, or nil when it is not in the alphabet.
    static func byte(of scalar: UInt32) -> UInt8? {
        if scalar < 256 {
            let b = Int(scalar)
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            return printable ? UInt8(b) : nil
        }
        return scalar <= 0x143 ? inverseHigh[Int(scalar - 256)] : nil
    }

    private static let inverseHigh: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 68)
        for b in 0..<256 where character[b] >= 256 { t[Int(character[b] - 256)] = UInt8(b) }
        return t
    }()

    /// The bytes a byte-level token string stands for, or nil when a character is outside the
    /// alphabet (an added token such as `<｜begin▁of▁sentence｜>`).
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for u in token.unicodeScalars {
            guard let b = byte(of: u.value) else { return nil }
            out.append(b)
        }
        return out
    }
}
