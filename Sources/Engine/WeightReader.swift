import Diagnostics
import Numerics
import Quantization
import Tensors

/// Opens the model's tensors from a store and checks each against the shape config.json implies,
/// so a mismatch (or an encoding the engine does not run) is reported by name and file before
/// anything runs.
struct WeightReader {
    let store: TensorStore
    let block: (rows: Int, cols: Int)
    /// A model cut by `shard`: where each global tensor's slices are (nil: `store` holds it all).
    var layout: TensorParallelLayout? = nil

    /// The reader of the rank store holding `name` whole (and its name there), for a split model.
    func holder(of name: String) -> (WeightReader, String)? {
        guard case let .whole(s, local)? = layout?.placements[name] else { return nil }
        return (WeightReader(store: s, block: block), local)
    }

    /// The slices of `name` when a split model cuts it.
    func parts(of name: String) -> (dim: Int, parts: [TensorParallelLayout.Part])? {
        guard case let .split(dim, parts)? = layout?.placements[name] else { return nil }
        return (dim, parts)
    }

    /// A [rows, cols] table read as a Linear (the embedding, lm_head): its slices when split.
    func table(_ name: String, _ rows: Int, _ cols: Int) throws -> Linear {
        guard let (dim, parts) = parts(of: name) else { return Linear(try matrix(name, rows, cols)) }
        let pieces = try parts.map { p in
            Linear(try WeightReader(store: p.store, block: block).matrix(p.name, dim == 0 ? p.length : rows, dim == 1 ? p.length : cols))
        }
        return dim == 0 ? Linear(columnParallel: pieces) : Linear(rowParallel: pieces, bias: nil)
    }

    /// The file holding `name` (the store's location when it is not there).
    func file(of name: String) -> String {
        store.fileIndex(of: name).map { store.files[$0].path } ?? store.location
    }

    /// A 2-D weight `name` of shape [rows, cols] in any encoding the codec reads.
    func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> StoredWeight {
        if let (r, local) = holder(of: name) { return try r.matrix(local, rows, cols) }
        if parts(of: name) != nil {
            throw EngineError.tensor(name: name, file: store.location, "is split across ranks where the engine reads it whole")
        }
        let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        guard let info = store.info(name) else {
            // compressed-tensors' pack-quantized format stores sub-byte codes packed into int32
            // words as `X.weight_packed` (with `X.weight_shape`) instead of `X.weight`.
            let packed = module + ".weight_packed"
            if has(packed) {
                throw EngineError.tensor(name: packed, file: file(of: packed),
                                         "is a packed sub-byte integer weight (compressed-tensors pack-quantized, e.g. INT4), which the engine does not run")
            }
            throw EngineError.tensor(name: name, file: store.location, "is missing from \(store.location)")
        }
        guard info.shape == [rows, cols] else {
            throw EngineError.tensor(name: name, file: file(of: name), "has shape \(info.shapeText) but config.json implies [\(rows), \(cols)]")
        }
        // Group-wise scales (one per `group` inputs of each output row, compressed-tensors'
        // strategy "group") are neither tensor, channel nor block scales.
        let scaleName = module + ".weight_scale"
        if let s = store.info(scaleName), s.shape.count == 2, s.shape[0] == rows, s.shape[1] > 1, cols % s.shape[1] == 0,
           !(block.rows == 1 && block.cols == cols / s.shape[1]) {
            throw EngineError.tensor(name: scaleName, file: file(of: scaleName),
                                     "has shape \(s.shapeText): group-wise scales (one per \(cols / s.shape[1]) inputs of each row of \(name)), which the engine does not run (it runs tensor, channel and block scales)")
        }
        do {
            return try StoredWeight(name, in: store, blockSize: block)
        } catch let e as DiagnosticError {
            let t = e.tensor ?? name
            throw EngineError.tensor(name: t, file: file(of: t), t == name ? e.message : "(for \(name)) " + e.message)
        } catch {
            throw EngineError.tensor(name: name, file: file(of: name), "cannot be read: \(error)")
        }
    }

    /// A linear layer `prefix.weight` [outputs, inputs], with `prefix.bias` when `bias` says so.
    func linear(_ prefix: String, _ outputs: Int, _ inputs: Int, bias: Bool = false) throws -> Linear {
        if let (r, local) = holder(of: prefix + ".weight"), local.hasSuffix(".weight") {
            return try r.linear(String(local.dropLast(".weight".count)), outputs, inputs, bias: bias)
        }
        if let (dim, parts) = parts(of: prefix + ".weight") {
            // Column-parallel parts carry their slice of the bias; a row-parallel bias is added
            // once, after the partial sums.
            let pieces = try parts.map { p -> Linear in
                let r = WeightReader(store: p.store, block: block)
                let local = String(p.name.dropLast(".weight".count))
                return try r.linear(local, dim == 0 ? p.length : outputs, dim == 1 ? p.length : inputs, bias: bias && dim == 0)
            }
            return dim == 0 ? Linear(columnParallel: pieces) : Linear(rowParallel: pieces, bias: bias ? try vector(prefix + ".bias", outputs) : nil)
        }
        let w = try matrix(prefix + ".weight", outputs, inputs)
        let b = bias ? try vector(prefix + ".bias", outputs) : nil
        return Linear(w, bias: b, inputQuantizer: try inputQuantizer(prefix, weight: w))
    }

    /// The static activation quantizer of `prefix` when it has `prefix.input_scale` (a W8A8
    /// checkpoint with `input_activations.dynamic: false`): one positive finite scale, shape [1]
    /// or [], applied as the weight's element type says (FP8 weights: FP8 activations; INT8: INT8).
    func inputQuantizer(_ prefix: String, weight: StoredWeight) throws -> ActivationQuantizer? {
        let name = prefix + ".input_scale"
        guard let info = store.info(name) else { return nil }
        guard info.elementCount == 1, info.shape.count <= 1 else {
            throw EngineError.tensor(name: name, file: file(of: name), "has shape \(info.shapeText): the engine runs static per-tensor activation scales (shape [1]), not per-token or per-channel ones")
        }
        let format: ActivationQuantizer.Format
        switch weight.encoding.element {
        case .e4m3: format = .fp8
        case .int8: format = .int8
        default:
            throw EngineError.tensor(name: name, file: file(of: name), "is a static activation scale on \(weight.encoding.element.rawValue) weights; the engine runs it with FP8 E4M3 or INT8 weights (W8A8)")
        }
        let v = try vector(name, 1, shape: info.shape)
        guard let s = v.first, s.isFinite, s > 0 else {
            throw EngineError.tensor(name: name, file: file(of: name), "is \(v.first ?? .nan); an activation scale is positive and finite (the checkpoint is damaged)")
        }
        return ActivationQuantizer(scale: s, format: format)
    }

    /// A 1-D float tensor (norm weight, bias) widened to f32; these are small.
    func vector(_ name: String, _ count: Int, shape: [Int]? = nil) throws -> [Float] {
        if let (r, local) = holder(of: name) { return try r.vector(local, count, shape: shape) }
        if let (_, parts) = parts(of: name) {
            return try parts.flatMap { try WeightReader(store: $0.store, block: block).vector($0.name, $0.length) }
        }
        guard let info = store.info(name) else {
            throw EngineError.tensor(name: name, file: store.location, "is missing from \(store.location)")
        }
        guard info.shape == (shape ?? [count]) else {
            throw EngineError.tensor(name: name, file: file(of: name), "has shape \(info.shapeText) but config.json implies [\(count)]")
        }
        guard let format = info.dtype.floatFormat, [.f32, .bf16, .f16].contains(format) else {
            throw EngineError.tensor(name: name, file: file(of: name), "is \(info.dtype.rawValue); the engine reads vectors in F32, BF16 or F16")
        }
        let v = try store.view(name)
        let base = v.bytes.baseAddress!
        return (0..<count).map { FloatFormat.load(base, format, $0) }
    }

    func has(_ name: String) -> Bool { layout?.placements[name] != nil || store.info(name) != nil }
}
