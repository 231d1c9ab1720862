import Foundation
import SafeTensors
import TestSupport

/// Mutates valid safetensors file images into (mostly) invalid ones: byte flips, insertions,
/// deletions, truncations, splices of JSON tokens, number edits (huge, negative, fractional,
/// off by one), dtype swaps, duplicated entries and header-length edits. Deterministic for a
/// given seed.
struct HeaderFuzzer {
    var rng: STRandom
    let seeds: [[UInt8]]

    init(seed: UInt64) throws {
        rng = STRandom(seed: seed)
        seeds = try HeaderFuzzer.makeSeeds()
    }

    /// A few valid files, written the way dsconvert writes them (SafeTensorsWriter.header + data).
    static func makeSeeds() throws -> [[UInt8]] {
        [
            try STImage.valid([
                TensorSpec(name: "model.embed_tokens.weight", dtype: .bf16, shape: [4, 3]),
                TensorSpec(name: "model.layers.0.mlp.gate.e_score_correction_bias", dtype: .f32, shape: [4]),
                TensorSpec(name: "scalar", dtype: .u8, shape: []),
                TensorSpec(name: "empty", dtype: .f16, shape: [0, 5]),
                TensorSpec(name: "w_fp8", dtype: .f8e4m3, shape: [3, 2]),
                TensorSpec(name: "w_fp8.scale_inv", dtype: .f32, shape: [1, 1]),
            ], seed: 1),
            try STImage.valid([], metadata: nil),
            try STImage.valid([TensorSpec(name: "ids", dtype: .i64, shape: [2])], metadata: nil, seed: 2),
            try STImage.valid([
                TensorSpec(name: "é\"q\\\u{1}", dtype: .bool, shape: [3]),
                TensorSpec(name: "packed", dtype: .f4, shape: [2, 4]),
                TensorSpec(name: "c", dtype: .c64, shape: [1]),
                TensorSpec(name: "big", dtype: .u16, shape: [2, 1, 2]),
            ], metadata: [("format", "pt"), ("note", "snow ☃ \u{10348}")], seed: 3),
            try STImage.valid((0..<12).map { TensorSpec(name: "layers.\($0).w", dtype: $0 % 2 == 0 ? .bf16 : .f8e5m2, shape: [$0 % 3, 2]) }, seed: 4),
        ]
    }

    /// Fragments spliced into the JSON text.
    static let tokens: [[UInt8]] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
        "\"__metadata__\"", "\"F32\"", "\"BF16\"", "\"F4\"", "\"X9\"", "null", "true", "false", "[]", "{}",
        "[0,0]", "[1,2,3]", "-1", "-0", "0", "1e309", "1.5", "18446744073709551616", "9223372036854775807",
        "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\x", "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},",
        "\"__metadata__\":{\"k\":1},", "[[[[[[[[[[", "]]]]]]]]]]",
    ].map { Array($0.utf8) } + [[0x00], [0x1F], [0x7F], [0x80], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFF]]

    /// Replacements for a run of digits.
    static let numbers: [String] = [
        "0", "1", "-1", "-0", "00", "1.0", "1e3", "1E400", "0.5", "-9223372036854775808", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616", "4294967296", "2147483648",
        "100000000", "100000001", "99999999999999999999999999999",
    ]

    static let dtypes: [String] = DType.allCases.map(\.rawValue) + ["f32", "F8", "BF", "", "INT8", "F32 "]

    mutating func next() -> [UInt8] {
        let seed = seeds[rng.below(seeds.count)]
        let n = Int(seed.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var json = Array(seed[8..<8 + n])
        var data = Array(seed[(8 + n)...])
        var lengthOverride: UInt64?
        let rounds = 1 + rng.below(3)
        for _ in 0..<rounds {
            switch rng.below(100) {
            case 0..<14: // flip a bit
                if !json.isEmpty { json[rng.below(json.count)] ^= UInt8(1) << UInt8(rng.below(8)) }
            case 14..<22: // overwrite a byte
                if !json.isEmpty { json[rng.below(json.count)] = interestingByte() }
            case 22..<30: // insert random bytes
                json.insert(contentsOf: rng.bytes(1 + rng.below(4)), at: rng.below(json.count + 1))
            case 30..<38: // delete a range
                if !json.isEmpty {
                    let a = rng.below(json.count)
                    let len = min(json.count - a, 1 + rng.below(rng.chance(0.2) ? 64 : 6))
                    json.removeSubrange(a..<a + len)
                }
            case 38..<50: // splice a token (insert or replace)
                let t = HeaderFuzzer.tokens[rng.below(HeaderFuzzer.tokens.count)]
                let at = rng.below(json.count + 1)
                if rng.chance(0.5), at < json.count {
                    let len = min(json.count - at, 1 + rng.below(4))
                    json.replaceSubrange(at..<at + len, with: t)
                } else {
                    json.insert(contentsOf: t, at: at)
                }
            case 50..<60: // edit a number
                editNumber(&json)
            case 60..<66: // nudge a data offset: overlaps, holes, runs past the end
                editOffset(&json)
            case 66..<72: // swap a dtype
                swapDType(&json)
            case 72..<76: // duplicate a slice of the header elsewhere (e.g. a whole entry)
                if json.count > 2 {
                    let a = rng.below(json.count - 1)
                    let len = min(json.count - a, 1 + rng.below(80))
                    let piece = Array(json[a..<a + len])
                    json.insert(contentsOf: piece, at: rng.below(json.count + 1))
                }
            case 76..<84: // grow or shrink the data buffer
                if rng.chance(0.5) || data.isEmpty {
                    data.append(contentsOf: rng.bytes(1 + rng.below(rng.chance(0.5) ? 4 : 64)))
                } else {
                    data.removeLast(min(data.count, 1 + rng.below(8)))
                }
            case 84..<92: // edit the header length
                lengthOverride = lengthEdit(json.count, total: json.count + data.count)
            case 92..<96: // drop the padding, or pad with something other than spaces
                while json.last == 0x20 { json.removeLast() }
                if rng.chance(0.5) { json.append(contentsOf: [UInt8](repeating: [0x00, 0x09, 0x0A, 0x7B][rng.below(4)], count: 1 + rng.below(7))) }
            default: // splice two seeds' headers
                let other = seeds[rng.below(seeds.count)]
                let m = Int(other.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                let cut = rng.below(json.count + 1), cut2 = rng.below(m + 1)
                json = Array(json[..<cut]) + Array(other[(8 + cut2)..<(8 + m)])
            }
        }
        var image = STImage.lengthPrefix(lengthOverride ?? UInt64(json.count)) + json + data
        if rng.chance(0.04) { image.removeLast(rng.below(image.count + 1)) } // truncate the file
        return image
    }

    private mutating func interestingByte() -> UInt8 {
        let special: [UInt8] = [0x00, 0x1F, 0x20, 0x22, 0x2C, 0x2D, 0x2E, 0x30, 0x31, 0x39, 0x3A, 0x5B, 0x5C, 0x5D, 0x65, 0x7B, 0x7D, 0x7F, 0x80, 0xBF, 0xC0, 0xED, 0xF4, 0xFF]
        return rng.chance(0.7) ? special[rng.below(special.count)] : UInt8(truncatingIfNeeded: rng.next())
    }

    /// Replaces one run of ASCII digits (with its sign) by a hostile or neighbouring value.
    private mutating func editNumber(_ json: inout [UInt8]) {
        var runs: [Range<Int>] = []
        var i = 0
        while i < json.count {
            if json[i] >= 0x30 && json[i] <= 0x39 {
                var s = i
                if s > 0 && json[s - 1] == 0x2D { s -= 1 }
                var e = i
                while e < json.count && json[e] >= 0x30 && json[e] <= 0x39 { e += 1 }
                runs.append(s..<e)
                i = e
            } else {
                i += 1
            }
        }
        guard !runs.isEmpty else { return }
        let r = runs[rng.below(runs.count)]
        let text: String
        if rng.chance(0.4), let v = Int(String(decoding: json[r], as: UTF8.self)) {
            let deltas = [-8, -2, -1, 1, 2, 8]
            text = rng.chance(0.2) ? String(v &* 2) : String(v &+ deltas[rng.below(deltas.count)])
        } else {
            text = HeaderFuzzer.numbers[rng.below(HeaderFuzzer.numbers.count)]
        }
        json.replaceSubrange(r, with: Array(text.utf8))
    }

    /// Moves one `data_offsets` bound, or both (keeping the size: overlaps and holes), by a
    /// small amount.
    private mutating func editOffset(_ json: inout [UInt8]) {
        let key = Array("\"data_offsets\":[".utf8)
        var starts: [Int] = []
        if json.count >= key.count {
            for i in 0...(json.count - key.count) where json[i] == 0x22 && json[i..<i + key.count].elementsEqual(key) {
                starts.append(i + key.count)
            }
        }
        guard !starts.isEmpty else { return }
        let a = starts[rng.below(starts.count)]
        var end = a
        while end < json.count && json[end] != 0x5D { end += 1 }
        guard end < json.count else { return }
        let parts = String(decoding: json[a..<end], as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let b = Int(parts[0]), let e = Int(parts[1]) else { return }
        let deltas = [-4, -2, -1, 1, 2, 4]
        let d = deltas[rng.below(deltas.count)]
        let text: String
        switch rng.below(3) {
        case 0: text = "\(max(0, b &+ d)),\(max(0, e &+ d))"
        case 1: text = "\(max(0, b &+ d)),\(e)"
        default: text = "\(b),\(max(0, e &+ d))"
        }
        json.replaceSubrange(a..<end, with: Array(text.utf8))
    }

    private mutating func swapDType(_ json: inout [UInt8]) {
        let key = Array("\"dtype\":\"".utf8)
        var starts: [Int] = []
        if json.count >= key.count {
            for i in 0...(json.count - key.count) where json[i] == 0x22 && json[i..<i + key.count].elementsEqual(key) {
                starts.append(i + key.count)
            }
        }
        guard let start = starts.isEmpty ? nil : starts[rng.below(starts.count)] else { return }
        var end = start
        while end < json.count && json[end] != 0x22 { end += 1 }
        json.replaceSubrange(start..<end, with: Array(HeaderFuzzer.dtypes[rng.below(HeaderFuzzer.dtypes.count)].utf8))
    }

    private mutating func lengthEdit(_ n: Int, total: Int) -> UInt64 {
        switch rng.below(8) {
        case 0: return 0
        case 1: return UInt64(max(0, n - 1 - rng.below(8)))
        case 2: return UInt64(n + 1 + rng.below(8))
        case 3: return UInt64(total + rng.below(3))
        case 4: return UInt64(SafeTensorsHeader.maxHeaderSize + rng.below(2))
        case 5: return .max - UInt64(rng.below(16))
        case 6: return rng.next()
        default: return UInt64(rng.below(total + 1))
        }
    }
}
