import Numerics
import Quantization
import Tensors

/// Opens the model's tensors from a store and checks each against the shape config.json implies,
/// so a mismatch is reported by name before anything runs.
struct WeightReader {
    let store: TensorStore
    let block: (rows: Int, cols: Int)

    /// A 2-D weight `name` of shape [rows, cols] in any encoding the codec reads.
    func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> StoredWeight {
        guard let info = store.info(name) else {
            throw EngineError.tensor(name: name, "is missing from \(store.location)")
        }
        guard info.shape == [rows, cols] else {
            throw EngineError.tensor(name: name, "has shape \(info.shapeText) but config.json implies [\(rows), \(cols)]")
        }
        do {
            return try StoredWeight(name, in: store, blockSize: block)
        } catch {
            throw EngineError.tensor(name: name, "cannot be read: \(error)")
        }
    }

    /// A linear layer `prefix.weight` [outputs, inputs], with `prefix.bias` when `bias` says so.
    func linear(_ prefix: String, _ outputs: Int, _ inputs: Int, bias: Bool = false) throws -> Linear {
        let w = try matrix(prefix + ".weight", outputs, inputs)
        let b = bias ? try vector(prefix + ".bias", outputs) : nil
        return Linear(w, bias: b)
    }

    /// A 1-D float tensor (norm weight, bias) widened to f32; these are small.
    func vector(_ name: String, _ count: Int) throws -> [Float] {
        guard let info = store.info(name) else {
            throw EngineError.tensor(name: name, "is missing from \(store.location)")
        }
        guard info.shape == [count] else {
            throw EngineError.tensor(name: name, "has shape \(info.shapeText) but config.json implies [\(count)]")
        }
        guard let format = info.dtype.floatFormat, [.f32, .bf16, .f16].contains(format) else {
            throw EngineError.tensor(name: name, "is \(info.dtype.rawValue); the engine reads vectors in F32, BF16 or F16")
        }
        let v = try store.view(name)
        let base = v.bytes.baseAddress!
        return (0..<count).map { FloatFormat.load(base, format, $0) }
    }

    func has(_ name: String) -> Bool { store.info(name) != nil }
}
