import JSON
import SafeTensors
import Checkpoint

/// Where a tensor's bytes start in its file, for error messages.
public struct StoredAt: Sendable, Hashable {
    public var file: String
    /// Byte offset of the tensor's first byte in `file` (nil when the store cannot say).
    public var offset: Int?

    public init(file: String, offset: Int?) {
        self.file = file
        self.offset = offset
    }

    /// Where `name` is stored in `store`.
    public static func of(_ name: String, in store: any TensorStore) -> StoredAt? { TensorLocator(store)(name) }
}

/// Finds where tensors are stored, on demand (error messages only need it when something is
/// wrong, so classification does not pay for it up front).
public final class TensorLocator: Sendable {
    let store: any TensorStore

    public init(_ store: any TensorStore) { self.store = store }

    public func callAsFunction(_ name: String) -> StoredAt? {
        let files = store.files
        guard let i = store.fileIndex(of: name), i < files.count else { return nil }
        return StoredAt(file: files[i].path, offset: store.fileOffset(of: name))
    }
}

/// What every tensor of a checkpoint is, decided in one place for `inspect`, `quantize` and
/// `dequantize`, so that the three commands never disagree about a tensor.
///
/// From the names and header entries alone (no config needed, so a bare safetensors file works):
///
/// - **quantized weight**: `X.weight` stored as F8_E4M3 or I8 with exactly one scale,
///   `X.weight_scale_inv` (DeepSeek's block layout, F32 [ceil(R/b), ceil(C/b)]) or `X.weight_scale`
///   (compressed-tensors, per tensor `[1]`/`[]` or per channel `[R, 1]`/`[R]`), optionally with
///   `X.weight_zero_point` (asymmetric, same number of elements as the scale), `X.input_scale`
///   and `X.input_zero_point` (static activation parameters, which a plain output drops). Any
///   module may be quantized, `lm_head` included: whether it stays quantized is the plan's
///   business, not the classification's.
/// - **quantization parameter**: one of those scale / zero-point tensors, attached to its weight.
/// - **buffer**: `rotary_emb.inv_freq`, which older Llama-family exports saved; the model
///   recomputes it and transformers ignores it when loading. Kept as it is.
/// - **plain**: everything else (BF16/F16/F32 weights, norms, biases, embeddings, router bias).
///
/// Refused, with the tensor named: a weight with both `weight_scale_inv` and `weight_scale`
/// (which one applies is ambiguous); a scale or zero point whose module has no weight, or whose
/// weight is not FP8/INT8 (a norm with a scale, a half-converted checkpoint); an FP8/INT8 weight
/// without its scale; a weight with a scale in an encoding dsconvert cannot compute (F8_E5M2 and
/// the FNUZ variants, packed formats); a zero point beside a DeepSeek block scale; scale shapes
/// that fit no layout; scale or zero-point dtypes dsconvert does not read.
public struct TensorClassification: Sendable {
    public enum Kind: Sendable, Hashable {
        case quantizedWeight
        /// A scale, zero point or input scale of the quantized weight named here.
        case quantizationParameter(weight: String)
        case buffer
        case plain
    }

    /// The quantized weights, by weight name.
    public private(set) var quantized: [String: QuantizedWeight]
    /// Tensors that only exist as part of a quantized weight (its scale, zero point, input scale).
    public private(set) var consumed: Set<String>
    /// `rotary_emb.inv_freq` buffers.
    public private(set) var buffers: Set<String>

    public func kind(_ name: String) -> Kind {
        if quantized[name] != nil { return .quantizedWeight }
        if consumed.contains(name), let dot = name.lastIndex(of: ".") { return .quantizationParameter(weight: String(name[..<dot]) + ".weight") }
        return buffers.contains(name) ? .buffer : .plain
    }

    /// The quantization tensors a module may carry, and what each is.
    public static let parameterSuffixes = ["weight_scale_inv", "weight_scale", "weight_zero_point", "input_scale", "input_zero_point"]
    /// Weight dtypes that mean "quantized" (they hold codes, not values).
    static let codeDTypes: Set<DType> = [.f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0, .i8, .u8, .i32, .f4, .f6e2m3, .f6e3m2]

    /// Classifies every tensor of `checkpoint`, or throws the first inconsistency (in storage order).
    public static func classify(_ checkpoint: Checkpoint) throws -> TensorClassification {
        let store: any TensorStore = checkpoint.weights
        return try classify(store, roles: checkpoint.roles, quantizationConfig: checkpoint.config?.quantizationConfig)
    }

    /// One pass over the names; header lookups only for `.weight` tensors of a code dtype and for
    /// quantization tensors (a plain BF16 checkpoint costs one lookup per weight). Locations for
    /// messages are resolved only when needed (`TensorLocator`).
    public static func classify(_ store: any TensorStore, roles: [String: TensorRole] = [:], quantizationConfig: JSONValue? = nil) throws -> TensorClassification {
        let blockEdge = QuantizedWeight.configuredBlock(quantizationConfig)
        var quantized: [String: QuantizedWeight] = [:]
        var consumed = Set<String>(), buffers = Set<String>()
        let locator = TensorLocator(store)
        func invalid(_ tensor: String, _ message: String) -> QuantizationError {
            .invalidQuantizedInput(tensor: tensor, message, at: locator(tensor))
        }
        for name in store.tensorNames {
            guard let dot = name.lastIndex(of: ".") else { continue }
            let parameter = name[name.index(after: dot)...]
            if parameter == "weight" {
                let info = store.info(name)!
                // A float weight is plain (a scale beside it is refused as an orphan below); only
                // code dtypes need their module's quantization tensors looked up.
                guard codeDTypes.contains(info.dtype) else { continue }
                let module = String(name[..<dot])
                if let q = try quantizedWeight(info, module: module, store: store, blockEdge: blockEdge, locator: locator, invalid: invalid) {
                    quantized[name] = q
                }
                continue
            }
            if parameterSuffixes.contains(where: { $0 == parameter }) {
                let weightName = String(name[..<dot]) + ".weight"
                guard let w = store.info(weightName) else {
                    throw invalid(name, "is a quantization tensor of '\(weightName)', which is not in the checkpoint (an orphan scale)")
                }
                if !codeDTypes.contains(w.dtype) {
                    throw invalid(name, "is a quantization tensor of '\(weightName)', which is \(w.dtype.rawValue) (not quantized); a norm, embedding or plain weight cannot carry a scale (a half-converted checkpoint?)")
                }
                consumed.insert(name)
                continue
            }
            if parameter == "inv_freq" && (roles[name]?.kind == .buffer || (roles.isEmpty && name[..<dot].hasSuffix("rotary_emb"))) {
                buffers.insert(name)
            }
        }
        return TensorClassification(quantized: quantized, consumed: consumed, buffers: buffers)
    }

    /// The quantized weight `info` (a `.weight` of a code dtype), nil when it is plain data
    /// without any scale (U8 / I32 / E5M2), or the reason it is refused.
    static func quantizedWeight(_ info: TensorInfo, module: String, store: any TensorStore, blockEdge: (Int, Int)?, locator: TensorLocator,
                                invalid: (String, String) -> QuantizationError) throws -> QuantizedWeight? {
        let name = info.name
        guard info.dtype == .f8e4m3 || info.dtype == .i8 else {
            if parameterSuffixes.contains(where: { store.info(module + "." + $0) != nil }) {
                throw QuantizationError.unsupportedDType(tensor: name, dtype: info.dtype.rawValue, "is a quantized encoding dsconvert cannot compute (it reads F8_E4M3 and I8 weights with their scales)")
            }
            return nil
        }
        let inv = store.info(module + ".weight_scale_inv"), direct = store.info(module + ".weight_scale")
        if inv != nil && direct != nil {
            throw invalid(name, "has both '\(module).weight_scale_inv' (DeepSeek block layout) and '\(module).weight_scale' (compressed-tensors); which one applies is ambiguous, so dsconvert refuses the checkpoint")
        }
        guard let scale = inv ?? direct else {
            throw QuantizationError.missingScale(tensor: name, scale: module + (info.dtype == .i8 ? ".weight_scale" : ".weight_scale_inv' or '\(module).weight_scale"))
        }
            guard info.shape.count == 2 else {
                throw QuantizationError.badShape(tensor: name, shape: info.shape, "quantized weights must be 2-D")
            }
            let rows = info.shape[0], cols = info.shape[1]
            let g: WeightEncoding.ScaleLayout
            let s = scale.shape
            let deepSeekLayout = inv != nil
            if !deepSeekLayout && (s == [1] || s == []) {
                g = .tensor
            } else if !deepSeekLayout && (s == [rows, 1] || s == [rows]) {
                g = .channel
            } else if s.count == 2, let (br, bc) = blockEdge,
                      s == BlockFP8.scaleShape(rows: rows, cols: cols, blockRows: br, blockCols: bc) {
                g = .block(rows: br, cols: bc)
            } else {
                throw QuantizationError.badShape(tensor: scale.name, shape: s, "does not match weight \(info.shape) as a tensor, channel or \(blockEdge.map { "\($0.0)x\($0.1)" } ?? "128x128") block scale")
            }
            guard [.f32, .bf16, .f16].contains(scale.dtype) else {
                throw QuantizationError.unsupportedDType(tensor: scale.name, dtype: scale.dtype.rawValue, "is not a supported scale type (F32, BF16, F16)")
            }
            if info.dtype == .i8, case .block = g {
                throw QuantizationError.badShape(tensor: name, shape: info.shape, "INT8 with block scales is not supported")
            }
            let zp = store.info(module + ".weight_zero_point")
            if let zp {
                if case .block = g {
                    throw invalid(zp.name, "is a zero point beside a DeepSeek block scale ('\(scale.name)'); that layout is symmetric and dsconvert will not guess how the two combine")
                }
                guard zp.elementCount == scale.elementCount else {
                    throw QuantizationError.badShape(tensor: zp.name, shape: zp.shape, "a zero point must have one element per scale element (the scale '\(scale.name)' has shape \(scale.shape))")
                }
                guard [.i8, .u8, .i32, .f32, .bf16, .f16, .f8e4m3].contains(zp.dtype) else {
                    throw QuantizationError.unsupportedDType(tensor: zp.name, dtype: zp.dtype.rawValue, "is not a zero-point type dsconvert reads (I8, U8, I32, F32, BF16, F16, F8_E4M3)")
                }
            }
            let extras = ["input_scale", "input_zero_point"].compactMap { store.info(module + "." + $0) }
            return QuantizedWeight(weight: info, scale: scale, zeroPoint: zp, extras: extras, scaleLayout: g, locator: locator)
    }
}
