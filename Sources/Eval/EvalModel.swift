import Checkpoint
import Engine
import JSON
import Tokenizer

/// A model eval runs: its engine (weights mapped in their stored encoding) and the tokenizer of
/// its folder (`tokenizer.json`, required: eval tokenizes the text with the model's own).
public final class EvalModel: @unchecked Sendable {
    public let path: String
    public let model: Model
    public let tokenizer: Tokenizer
    /// tokenizer.json as stored, to tell identical tokenizers apart from merely compatible ones.
    let tokenizerBytes: [UInt8]

    /// `verify`: check every checksum of a .dspack before using it (`Checkpoint.openStore`).
    public init(path: String, verify: Bool = false) throws {
        self.path = path
        let ckpt = try Checkpoint(path: path, verify: verify)
        let tokPath = ckpt.weights.sideFilePath("tokenizer.json")
        guard let bytes = try ckpt.weights.sideFile("tokenizer.json") else {
            throw EvalError.input(file: tokPath, "does not exist: eval tokenizes the text with the model's own tokenizer.json")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw EvalError.input(file: tokPath, "is not valid JSON: \(error)") }
        tokenizer = try Tokenizer(json: json, file: tokPath)
        tokenizerBytes = bytes
        model = try Model(checkpoint: ckpt)
        guard tokenizer.vocabularySize <= model.config.vocab else {
            throw EvalError.input(file: tokPath, "has ids up to \(tokenizer.vocabularySize - 1), beyond the model's vocab_size \(model.config.vocab)")
        }
    }

    public var vocab: Int { model.config.vocab }

    /// The id llama.cpp's scheme puts first in every chunk: the special token the tokenizer's
    /// post-processor puts before the text, if it adds one.
    public var bos: Int32? {
        let plain = tokenizer.encode("a", addSpecialTokens: false)
        let full = tokenizer.encode("a", addSpecialTokens: true)
        guard full.count > plain.count, let first = full.first, tokenizer.isSpecial(first),
              Array(full.dropFirst().prefix(plain.count)) == plain else { return nil }
        return first
    }

    /// Whether `other` has the same tokenizer.json bytes.
    public func sameTokenizerFile(as other: EvalModel) -> Bool { tokenizerBytes == other.tokenizerBytes }
}
