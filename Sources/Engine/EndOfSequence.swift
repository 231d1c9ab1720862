import Checkpoint
import JSON

/// The tokens that end a generation: `eos_token_id` of generation_config.json (an id or a list,
/// what transformers' `generate` stops at), else of config.json; none when neither names one.
public enum EndOfSequence {
    public static func ids(of checkpoint: Checkpoint) throws -> Set<Int> {
        if let bytes = try checkpoint.weights.sideFile("generation_config.json") {
            let path = checkpoint.weights.sideFilePath("generation_config.json")
            let v: JSONValue
            do { v = try JSONParser.parse(bytes) } catch {
                throw EngineError.config(path: path, "is not valid JSON: \(error)")
            }
            if let ids = try parse(v["eos_token_id"], path: path) { return ids }
        }
        if let c = checkpoint.config, let ids = try parse(c.json["eos_token_id"], path: c.path) { return ids }
        return []
    }

    static func parse(_ v: JSONValue?, path: String) throws -> Set<Int>? {
        guard let v, v != .null else { return nil }
        if let i = v.intValue { return [i] }
        if let a = v.arrayValue {
            var out = Set<Int>()
            for e in a {
                guard let i = e.intValue else { throw EngineError.config(path: path, "eos_token_id holds \(JSONWriter.compact(e)), not a token id") }
                out.insert(i)
            }
            return out
        }
        throw EngineError.config(path: path, "eos_token_id is \(JSONWriter.compact(v)), not a token id or a list of them")
    }
}
