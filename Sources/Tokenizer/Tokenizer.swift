import Diagnostics
import Foundation
import JSON
import SystemIO

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`, giving the ids the
/// `tokenizers` package gives (Llama 3, Qwen2, DeepSeek-V3 and GPT-2-style configurations).
///
/// Implemented: model `BPE` (vocab; merges as `"a b"` or `["a", "b"]`; `ignore_merges`;
/// `unk_token` / `fuse_unk`), normalizers `NFC` and `Sequence`, pre-tokenizers `ByteLevel`
/// (`add_prefix_space`, `use_regex`), `Split` (regex or string pattern; `Isolated` or `Removed`)
/// and `Sequence`, added tokens (`single_word`, `lstrip`, `rstrip`, `normalized`, `special`),
/// post-processors `ByteLevel`, `TemplateProcessing` and `Sequence`, decoders `ByteLevel` and
/// `Sequence`. Anything else is a `TokenizerError.unsupported` naming the key, never approximated.
public struct Tokenizer: Sendable {
    /// The file this was read from, when it was.
    public let file: String?
    let model: BPEModel
    let normalizers: [Normalizer]
    let preTokenizers: [PreTokenizer]
    /// Added tokens matched in the raw text (`normalized: false`) and in the normalized text.
    let rawAdded: AddedTokenMatcher
    let normalizedAdded: AddedTokenMatcher
    let postProcessors: [PostProcessor]
    let hasDecoder: Bool
    /// The bytes each id decodes to (byte-level tokens through the alphabet, others as UTF-8).
    let idBytes: [[UInt8]?]
    /// Every added token, by id.
    public let addedTokens: [AddedToken]
    private let specialIds: Set<Int32>
    /// Ids by the UTF-8 bytes of the token (Swift's String equality would merge canonically
    /// equivalent tokens that `tokenizers` keeps apart).
    private let tokenIds: [[UInt8]: Int32]

    enum Normalizer: Sendable { case nfc }
    enum PreTokenizer: Sendable {
        case split(SplitPattern, removed: Bool)
        case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    }
    enum PostProcessor: Sendable {
        /// TemplateProcessing's `single` template: each item a list of ids, or nil for `$A`.
        case template([[Int32]?])
    }

    /// One past the largest id (model vocabulary and added tokens).
    public var vocabularySize: Int { idBytes.count }

    /// The id of a token (added token content, or a vocabulary entry as written in the file).
    public func id(of token: String) -> Int32? { tokenIds[Array(token.utf8)] }

    /// Whether `id` is an added token marked `special`.
    public func isSpecial(_ id: Int32) -> Bool { specialIds.contains(id) }

    // MARK: Loading

    /// Reads `path` (a `tokenizer.json`).
    public static func load(path: String, useScanners: Bool = true) throws -> Tokenizer {
        let bytes = try Sys.readFile(path, limit: 1 << 28)
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw error.naming(file: path) }
        return try Tokenizer(json: json, file: path, useScanners: useScanners)
    }

    /// Builds a tokenizer from the parsed file. `useScanners: false` runs every split regex
    /// through the general regex engine instead of the built-in scanners (for tests).
    public init(json: JSONValue, file: String? = nil, useScanners: Bool = true) throws {
        let r = Reader(file: file)
        self.file = file
        guard json.objectMembers != nil else { throw r.malformed("", "the file is not a JSON object") }

        // Normalizer.
        var normalizers: [Normalizer] = []
        func addNormalizer(_ v: JSONValue, _ key: String) throws {
            if v == .null { return }
            let type = try r.string(v["type"], key + ".type")
            switch type {
            case "NFC": normalizers.append(.nfc)
            case "Sequence":
                for (k, n) in try r.array(v["normalizers"], key + ".normalizers").enumerated() { try addNormalizer(n, "\(key).normalizers[\(k)]") }
            default: throw r.unsupported(key + ".type", "normalizer '\(type)' is not implemented (NFC and Sequence are)")
            }
        }
        try addNormalizer(json["normalizer"] ?? .null, "normalizer")
        self.normalizers = normalizers

        // Pre-tokenizer.
        var pre: [PreTokenizer] = []
        func addPre(_ v: JSONValue, _ key: String) throws {
            if v == .null { return }
            let type = try r.string(v["type"], key + ".type")
            switch type {
            case "ByteLevel":
                pre.append(.byteLevel(addPrefixSpace: try r.bool(v["add_prefix_space"], key + ".add_prefix_space", default: true),
                                      useRegex: try r.bool(v["use_regex"], key + ".use_regex", default: true)))
            case "Split":
                if try r.bool(v["invert"], key + ".invert", default: false) {
                    throw r.unsupported(key + ".invert", "an inverted Split is not implemented")
                }
                let behavior = try r.string(v["behavior"], key + ".behavior")
                guard behavior == "Isolated" || behavior == "Removed" else {
                    throw r.unsupported(key + ".behavior", "Split behavior '\(behavior)' is not implemented (Isolated and Removed are)")
                }
                guard let p = v["pattern"] else { throw r.malformed(key + ".pattern", "missing") }
                let pattern: SplitPattern
                if let text = p["Regex"]?.stringValue {
                    do { pattern = try SplitPattern.regex(text, scanners: useScanners) } catch {
                        throw r.unsupported(key + ".pattern.Regex", "the regex does not compile: \(error)")
                    }
                } else if let text = p["String"]?.stringValue {
                    pattern = .literal(text.unicodeScalars.map(\.value))
                } else {
                    throw r.malformed(key + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}")
                }
                pre.append(.split(pattern, removed: behavior == "Removed"))
            case "Sequence":
                for (k, n) in try r.array(v["pretokenizers"], key + ".pretokenizers").enumerated() { try addPre(n, "\(key).pretokenizers[\(k)]") }
            default:
                throw r.unsupported(key + ".type", "pre-tokenizer '\(type)' is not implemented (ByteLevel, Split and Sequence are)")
            }
        }
        try addPre(json["pre_tokenizer"] ?? .null, "pre_tokenizer")
        guard case .byteLevel = pre.last else {
            throw r.unsupported("pre_tokenizer", "only byte-level BPE is implemented: the pre-tokenizer must end with ByteLevel")
        }
        if pre.dropLast().contains(where: { if case .byteLevel = $0 { return true } else { return false } }) {
            throw r.unsupported("pre_tokenizer", "ByteLevel is only implemented as the last pre-tokenizer")
        }
        self.preTokenizers = pre

        // Model.
        guard let m = json["model"], m.objectMembers != nil else { throw r.malformed("model", "missing or not an object") }
        let modelType = try r.string(m["type"], "model.type", default: "BPE")
        guard modelType == "BPE" else {
            throw r.unsupported("model.type", "tokenizer model '\(modelType)' is not implemented (only BPE is)")
        }
        if try r.bool(m["byte_fallback"], "model.byte_fallback", default: false) {
            throw r.unsupported("model.byte_fallback", "byte_fallback is not implemented")
        }
        for k in ["continuing_subword_prefix", "end_of_word_suffix"] where (m[k] ?? .null) != .null {
            throw r.unsupported("model." + k, "\(k) is not implemented")
        }
        if let d = m["dropout"], d != .null, (d.doubleValue ?? 1) != 0 {
            throw r.unsupported("model.dropout", "BPE dropout is not implemented")
        }
        guard let vocab = m["vocab"]?.objectMembers else { throw r.malformed("model.vocab", "missing or not an object") }
        var tokenIds: [[UInt8]: Int32] = [:]
        var bytesToken: [[UInt8]: Int32] = [:]
        var byteToken = [Int32](repeating: -1, count: 256)
        var idBytes: [[UInt8]?] = []
        func setBytes(_ id: Int32, _ b: [UInt8]) {
            if Int(id) >= idBytes.count { idBytes.append(contentsOf: repeatElement(nil, count: Int(id) + 1 - idBytes.count)) }
            idBytes[Int(id)] = b
        }
        for (token, value) in vocab {
            guard let n = value.intValue, n >= 0, n <= Int(Int32.max) else {
                throw r.malformed("model.vocab[\(Reader.quoted(token))]", "expected a non-negative integer id")
            }
            let id = Int32(n)
            tokenIds[Array(token.utf8)] = id
            if let b = ByteLevelAlphabet.bytes(of: token) {
                bytesToken[b] = id
                if b.count == 1 { byteToken[Int(b[0])] = id }
                setBytes(id, b)
            } else {
                setBytes(id, Array(token.utf8))
            }
        }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        for (rank, mv) in try r.array(m["merges"], "model.merges").enumerated() {
            let key = "model.merges[\(rank)]"
            let pair: [String]
            if let s = mv.stringValue {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw r.malformed(key, "expected \"left right\", found \(Reader.quoted(s))") }
                pair = parts.map(String.init)
            } else if let a = mv.arrayValue, a.count == 2, let x = a[0].stringValue, let y = a[1].stringValue {
                pair = [x, y]
            } else {
                throw r.malformed(key, "expected \"left right\" or [\"left\", \"right\"]")
            }
            guard let x = ByteLevelAlphabet.bytes(of: pair[0]), let y = ByteLevelAlphabet.bytes(of: pair[1]),
                  let a = bytesToken[x], let b = bytesToken[y], let merged = bytesToken[x + y]
            else {
                throw r.malformed(key, "merge \(Reader.quoted(pair[0])) + \(Reader.quoted(pair[1])) names a token that is not in the byte-level vocabulary")
            }
            let k = BPEModel.key(a, b)
            if merges[k] == nil { merges[k] = (Int32(rank), merged) }
        }
        var unknown: Int32?
        if let u = m["unk_token"], u != .null {
            let name = try r.string(u, "model.unk_token")
            guard let id = tokenIds[Array(name.utf8)] else { throw r.malformed("model.unk_token", "\(Reader.quoted(name)) is not in the vocabulary") }
            unknown = id
        }
        self.model = BPEModel(byteToken: byteToken, bytesToken: bytesToken, merges: merges,
                              ignoreMerges: try r.bool(m["ignore_merges"], "model.ignore_merges", default: false),
                              unknown: unknown, fuseUnknown: try r.bool(m["fuse_unk"], "model.fuse_unk", default: false))

        // Added tokens. `tokenizers` does not take their ids from the file: in file order, a
        // content already known keeps its id, a new one gets the next id after the vocabulary
        // (its entry count) or after the largest added id (a warning there when the file says
        // otherwise). Consistent files, as released ones are, get the ids they list.
        var added: [AddedToken] = []
        let vocabCount = Int32(vocab.count)
        var addedIds: [[UInt8]: Int32] = [:]
        var largestAdded: Int32?
        for (k, t) in try r.array(json["added_tokens"] ?? .array([]), "added_tokens").enumerated() {
            let key = "added_tokens[\(k)]"
            // The file's id is checked for form only (see above).
            guard let n = t["id"]?.intValue, n >= 0, n <= Int(Int32.max) else { throw r.malformed(key + ".id", "expected a non-negative integer") }
            let special = try r.bool(t["special"], key + ".special", default: false)
            let content = try r.string(t["content"], key + ".content")
            if content.isEmpty { continue }  // ignored by tokenizers
            let utf8 = Array(content.utf8)
            let id: Int32
            if let known = addedIds[utf8] ?? tokenIds[utf8] {
                id = known
            } else if let m = largestAdded {
                id = (m >= vocabCount || vocabCount == 0) ? m + 1 : vocabCount
            } else {
                id = vocabCount
            }
            addedIds[utf8] = id
            largestAdded = max(largestAdded ?? id, id)
            let token = AddedToken(
                id: id, content: content,
                singleWord: try r.bool(t["single_word"], key + ".single_word", default: false),
                lstrip: try r.bool(t["lstrip"], key + ".lstrip", default: false),
                rstrip: try r.bool(t["rstrip"], key + ".rstrip", default: false),
                normalized: try r.bool(t["normalized"], key + ".normalized", default: !special),
                special: special)
            // A repeated content: the later entry's flags win, as in tokenizers' id → token map.
            added.removeAll { $0.id == id }
            added.append(token)
            tokenIds[utf8] = id
            // As `tokenizers` decodes it: the content (normalized when the token is), through the
            // byte-level alphabet when every character is in it, else as UTF-8.
            var shown = token.content
            if token.normalized && !normalizers.isEmpty {
                var v = String.UnicodeScalarView()
                for u in Tokenizer.normalize(token.content.unicodeScalars.map(\.value), normalizers) { v.append(Unicode.Scalar(u)!) }
                shown = String(v)
            }
            setBytes(token.id, ByteLevelAlphabet.bytes(of: shown) ?? Array(shown.utf8))
        }
        self.addedTokens = added
        self.specialIds = Set(added.filter(\.special).map(\.id))
        // tokenizers matches special tokens first, then the others, each group in file order;
        // leftmost-longest makes the order matter only between equal contents.
        let ordered = added.filter(\.special) + added.filter { !$0.special }
        self.rawAdded = AddedTokenMatcher(ordered.filter { !$0.normalized }.map { ($0.content.unicodeScalars.map(\.value), $0) })
        let norm = normalizers
        self.normalizedAdded = AddedTokenMatcher(ordered.filter(\.normalized).map { (Tokenizer.normalize($0.content.unicodeScalars.map(\.value), norm), $0) })

        // Post-processor.
        var post: [PostProcessor] = []
        func addPost(_ v: JSONValue, _ key: String) throws {
            if v == .null { return }
            let type = try r.string(v["type"], key + ".type")
            switch type {
            case "ByteLevel": break  // trims offsets only; ids unchanged
            case "TemplateProcessing":
                let specials = v["special_tokens"]
                var items: [[Int32]?] = []
                for (k, item) in try r.array(v["single"], key + ".single").enumerated() {
                    if item["Sequence"] != nil {
                        items.append(nil)
                    } else if let st = item["SpecialToken"] {
                        let name = try r.string(st["id"], "\(key).single[\(k)].SpecialToken.id")
                        guard let ids = specials?[name]?["ids"]?.arrayValue else {
                            throw r.malformed("\(key).special_tokens", "no entry for \(Reader.quoted(name))")
                        }
                        items.append(try ids.enumerated().map { j, x in
                            guard let n = x.intValue, n >= 0, n <= Int(Int32.max) else {
                                throw r.malformed("\(key).special_tokens[\(Reader.quoted(name))].ids[\(j)]", "expected a non-negative integer")
                            }
                            return Int32(n)
                        })
                    } else {
                        throw r.malformed("\(key).single[\(k)]", "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
                    }
                }
                post.append(.template(items))
            case "Sequence":
                for (k, n) in try r.array(v["processors"], key + ".processors").enumerated() { try addPost(n, "\(key).processors[\(k)]") }
            default:
                throw r.unsupported(key + ".type", "post-processor '\(type)' is not implemented (ByteLevel, TemplateProcessing and Sequence are)")
            }
        }
        try addPost(json["post_processor"] ?? .null, "post_processor")
        self.postProcessors = post

        // Decoder.
        func checkDecoder(_ v: JSONValue, _ key: String) throws -> Bool {
            if v == .null { return false }
            let type = try r.string(v["type"], key + ".type")
            switch type {
            case "ByteLevel": return true
            case "Sequence":
                var any = false
                for (k, n) in try r.array(v["decoders"], key + ".decoders").enumerated() { any = try checkDecoder(n, "\(key).decoders[\(k)]") || any }
                return any
            default:
                throw r.unsupported(key + ".type", "decoder '\(type)' is not implemented (ByteLevel and Sequence are)")
            }
        }
        self.hasDecoder = try checkDecoder(json["decoder"] ?? .null, "decoder")
        self.idBytes = idBytes
        self.tokenIds = tokenIds

        // Refuse the options that change ids and are not implemented.
        if let t = json["truncation"], t != .null { throw r.unsupported("truncation", "truncation is not implemented") }
        if let p = json["padding"], p != .null { throw r.unsupported("padding", "padding is not implemented") }
    }

    // MARK: Encoding

    /// The ids of `text`. `addSpecialTokens` applies the post-processor's template (BOS), as
    /// `Tokenizer.encode(text)` does in Python by default.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        let s = text.unicodeScalars.map(\.value)
        var ids: [Int32] = []
        ids.reserveCapacity(s.count / 3)
        var cache: [[UInt8]: [Int32]] = [:]
        for seg in rawAdded.split(s, 0..<s.count) {
            switch seg {
            case .token(let id): ids.append(id)
            case .text(let range):
                let n = normalizers.isEmpty ? s : Self.normalize(Array(s[range]), normalizers)
                let r = normalizers.isEmpty ? range : 0..<n.count
                for seg2 in normalizedAdded.split(n, r) {
                    switch seg2 {
                    case .token(let id): ids.append(id)
                    case .text(let r2): encodePiece(n, r2, into: &ids, cache: &cache)
                    }
                }
            }
        }
        guard addSpecialTokens else { return ids }
        for p in postProcessors {
            guard case .template(let items) = p else { continue }
            var out: [Int32] = []
            for item in items { if let item { out += item } else { out += ids } }
            ids = out
        }
        return ids
    }

    /// Pre-tokenizes `s[range]` and runs BPE on each pre-token.
    private func encodePiece(_ s: [UInt32], _ range: Range<Int>, into ids: inout [Int32], cache: inout [[UInt8]: [Int32]]) {
        var text = s
        var pieces: [Range<Int>] = [range]
        var prefixSpace = false
        for p in preTokenizers {
            switch p {
            case .split(let pattern, let removed):
                var next: [Range<Int>] = []
                for piece in pieces {
                    var at = piece.lowerBound
                    for m in pattern.matches(in: text, piece) {
                        if at < m.lowerBound { next.append(at..<m.lowerBound) }
                        if !removed { next.append(m) }
                        at = m.upperBound
                    }
                    if at < piece.upperBound { next.append(at..<piece.upperBound) }
                }
                pieces = next
            case .byteLevel(let addPrefixSpace, let useRegex):
                prefixSpace = addPrefixSpace
                if useRegex {
                    var next: [Range<Int>] = []
                    for piece in pieces {
                        // The prefix space goes in before the regex sees the piece.
                        var p = piece
                        if addPrefixSpace && text[piece.lowerBound] != 0x20 {
                            let base = text.count
                            text.append(0x20)
                            text.append(contentsOf: text[piece])
                            p = base..<text.count
                        }
                        var at = p.lowerBound
                        for m in SplitPattern.gpt2.matches(in: text, p) {
                            if at < m.lowerBound { next.append(at..<m.lowerBound) }
                            next.append(m)
                            at = m.upperBound
                        }
                        if at < p.upperBound { next.append(at..<p.upperBound) }
                    }
                    pieces = next
                    prefixSpace = false
                }
            }
        }
        var bytes: [UInt8] = []
        for piece in pieces where !piece.isEmpty {
            bytes.removeAll(keepingCapacity: true)
            if prefixSpace && text[piece.lowerBound] != 0x20 { bytes.append(0x20) }
            for k in piece { Self.appendUTF8(text[k], to: &bytes) }
            if let hit = cache[bytes] {
                ids += hit
            } else {
                var out: [Int32] = []
                model.tokenize(bytes, into: &out)
                cache[bytes] = out
                ids += out
            }
        }
    }

    @inline(__always) static func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
        if v < 0x80 {
            out.append(UInt8(v))
        } else if v < 0x800 {
            out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    static func normalize(_ s: [UInt32], _ normalizers: [Normalizer]) -> [UInt32] {
        guard !normalizers.isEmpty else { return s }
        var view = String.UnicodeScalarView()
        for v in s { view.append(Unicode.Scalar(v)!) }
        var text = String(view)
        for n in normalizers {
            switch n {
            case .nfc: text = text.precomposedStringWithCanonicalMapping
            }
        }
        return text.unicodeScalars.map(\.value)
    }

    // MARK: Decoding

    /// The text of `ids`: their bytes concatenated (byte-level tokens through the alphabet, added
    /// tokens as written), invalid UTF-8 replaced by U+FFFD as `tokenizers` does.
    /// `skipSpecialTokens` leaves out added tokens marked special.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws -> String {
        guard hasDecoder else {
            throw TokenizerError(.unsupported, file: file, key: "decoder", "the file has no ByteLevel decoder")
        }
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, Int(id) < idBytes.count, let b = idBytes[Int(id)] else {
                throw TokenizerError(.unknownId, file: file, key: nil, "id \(id) is not in the vocabulary (\(idBytes.count) ids)")
            }
            if skipSpecialTokens && specialIds.contains(id) { continue }
            bytes += b
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Typed access to the JSON with the key path in every error.
private struct Reader {
    let file: String?

    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    func malformed(_ key: String, _ detail: String) -> TokenizerError {
        TokenizerError(.malformed, file: file, key: key.isEmpty ? nil : key, detail)
    }

    func unsupported(_ key: String, _ detail: String) -> TokenizerError {
        TokenizerError(.unsupported, file: file, key: key, detail)
    }

    func string(_ v: JSONValue?, _ key: String, default d: String? = nil) throws -> String {
        if let s = v?.stringValue { return s }
        if let d, v == nil || v == .null { return d }
        throw malformed(key, v == nil ? "missing" : "expected a string")
    }

    func bool(_ v: JSONValue?, _ key: String, default d: Bool) throws -> Bool {
        guard let v, v != .null else { return d }
        guard let b = v.boolValue else { throw malformed(key, "expected true or false") }
        return b
    }

    func array(_ v: JSONValue?, _ key: String) throws -> [JSONValue] {
        guard let a = v?.arrayValue else { throw malformed(key, v == nil ? "missing" : "expected an array") }
        return a
    }
}

extension SplitPattern: @unchecked Sendable {}
