import JSON
import Numerics
import SafeTensors

/// What `quantize` produces: the value format, the scale granularity and the layout that
/// follows from them (docs/reference.md).
///
/// - FP8 + block: DeepSeek-native. `X.weight` F8_E4M3, `X.weight_scale_inv` F32
///   [ceil(out/b), ceil(in/b)], `quantization_config.quant_method = "fp8"`.
/// - FP8 + tensor|channel, INT8 + channel|tensor: compressed-tensors. `X.weight` F8_E4M3 or I8,
///   `X.weight_scale` in the model dtype ([1] or [out, 1]), `quant_method = "compressed-tensors"`,
///   dynamic per-token input activations unless `weightOnly`; with `staticActivations`, static
///   per-tensor activations: `X.input_scale` [1] in the model dtype from a calibrated range.
public struct QuantizationScheme: Sendable, Equatable {
    public enum Format: String, Sendable { case fp8, int8 }
    public enum Granularity: String, Sendable, CaseIterable { case block, tensor, channel }

    public var format: Format
    public var granularity: Granularity
    /// Block edge for `.block` (rows and columns).
    public var blockSize: Int
    /// Drop the activation entry (weight-only quantization).
    public var weightOnly: Bool
    /// Static per-tensor input activations (W8A8 with calibrated `input_scale`s) instead of dynamic per-token ones.
    public var staticActivations: Bool

    public init(format: Format, granularity: Granularity? = nil, blockSize: Int = 128, weightOnly: Bool = false, staticActivations: Bool = false) throws {
        self.format = format
        self.granularity = granularity ?? (format == .fp8 ? .block : .channel)
        self.blockSize = blockSize
        self.weightOnly = weightOnly
        self.staticActivations = staticActivations
        if staticActivations && weightOnly {
            throw QuantizationError.invalidOption("--act static quantizes activations; --weight-only does not: choose one")
        }
        if staticActivations && self.granularity == .block {
            throw QuantizationError.invalidOption("--act static needs per-tensor or per-channel weight scales (--granularity tensor|channel, or --int8): block-wise FP8 supports only dynamic activations in vLLM and SGLang (their Fp8Config refuses a static activation_scheme with weight_block_size)")
        }
        if format == .int8 && self.granularity == .block {
            throw QuantizationError.invalidOption("--int8 supports --granularity channel or tensor (block scales are an FP8 layout)")
        }
        if blockSize < 1 || blockSize > 65536 {
            throw QuantizationError.invalidOption("--block-size must be between 1 and 65536, got \(blockSize)")
        }
        if format == .int8 && weightOnly {
            throw QuantizationError.invalidOption("--int8 --weight-only (W8A16) needs compressed-tensors' pack-quantized layout (int8 values packed into int32 weight_packed tensors), which dsconvert does not write yet; use --int8 (W8A8, dynamic per-token activations) or --fp8 --weight-only")
        }
        if self.granularity == .block && weightOnly {
            throw QuantizationError.invalidOption("--weight-only applies to the compressed-tensors layouts (--granularity tensor|channel or --int8); DeepSeek's block layout always has dynamic activations")
        }
    }

    /// The encoding this scheme writes, with scales stored in `scaleDType` (F32 for the block
    /// layout, the model dtype for compressed-tensors): what picks the codec.
    public func target(scaleDType: DType) -> WeightEncoding {
        let scale: WeightEncoding.ScaleLayout
        switch granularity {
        case .block: scale = .block(rows: blockSize, cols: blockSize)
        case .channel: scale = .channel
        case .tensor: scale = .tensor
        }
        return WeightEncoding(element: format == .fp8 ? .e4m3 : .int8, scale: scale, scaleDType: scaleDType)
    }

    /// DeepSeek's own layout (as opposed to compressed-tensors).
    public var isDeepSeekNative: Bool { format == .fp8 && granularity == .block }

    /// The safetensors suffix of the scale tensor.
    public var scaleSuffix: String { isDeepSeekNative ? "weight_scale_inv" : "weight_scale" }

    public var valueDType: DType { format == .fp8 ? .f8e4m3 : .i8 }

    /// Tensors written for a quantized weight `module.weight` of shape [rows, cols].
    public func outputs(module: String, rows: Int, cols: Int, modelDType: DType) -> [TensorSpec] {
        let scaleShape: [Int]
        let scaleDType: DType
        switch granularity {
        case .block:
            scaleShape = BlockFP8.scaleShape(rows: rows, cols: cols, blockRows: blockSize, blockCols: blockSize)
            scaleDType = .f32
        case .channel:
            scaleShape = [rows, 1]
            scaleDType = modelDType
        case .tensor:
            scaleShape = [1]
            scaleDType = modelDType
        }
        var specs = [
            TensorSpec(name: module + ".weight", dtype: valueDType, shape: [rows, cols]),
            TensorSpec(name: module + "." + scaleSuffix, dtype: scaleDType, shape: scaleShape),
        ]
        if staticActivations { specs.append(TensorSpec(name: module + ".input_scale", dtype: modelDType, shape: [1])) }
        return specs
    }

    /// The stored `input_scale` of an input whose calibrated range is `amax`, as compressed-tensors'
    /// `calculate_qparams` computes it for symmetric 8-bit arguments: amax / (bit range / 2), that
    /// is amax / 448 for FP8 E4M3 (range −448…448) and amax / 127.5 for INT8 (−128…127), divided in
    /// f32 and rounded to the stored dtype (round to nearest even); a zero scale becomes that dtype's
    /// epsilon. `dtype` is the model dtype (BF16, F16 or F32).
    public func inputScale(amax: Double, dtype: DType) -> Float {
        let q = Float(amax) / (format == .fp8 ? 448 : 127.5)
        let f = dtype.floatFormat ?? .f32
        var stored = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: q) { src in stored.withUnsafeMutableBytes { FloatFormat.convert(src.baseAddress!, from: .f32, to: $0.baseAddress!, f, count: 1) } }
        let back = stored.withUnsafeBytes { FloatFormat.load($0.baseAddress!, f, 0) }
        if back == 0 {
            switch f {
            case .bf16: return 0.0078125   // torch.finfo(torch.bfloat16).eps
            case .f16: return 0.0009765625 // torch.finfo(torch.float16).eps
            default: return Float.ulpOfOne
            }
        }
        return back
    }

    /// config.json's `quantization_config` for this scheme. `ignore` lists the modules left
    /// unquantized for the compressed-tensors layout, as exact names or `re:` patterns;
    /// `ignoredLayers` the linear modules `--ignore` kept in high precision, which the DeepSeek
    /// layout records as `ignored_layers` (the key vLLM's and SGLang's `Fp8Config` read) only
    /// when there are any, so that the default config is exactly DeepSeek's four keys.
    public func quantizationConfig(ignore: [String], ignoredLayers: [String] = []) -> JSONValue {
        if isDeepSeekNative {
            var members: [(String, JSONValue)] = [
                ("activation_scheme", .string("dynamic")),
                ("fmt", .string("e4m3")),
                ("quant_method", .string("fp8")),
                ("weight_block_size", .array([.int(blockSize), .int(blockSize)])),
            ]
            if !ignoredLayers.isEmpty { members.append(("ignored_layers", .array(ignoredLayers.map { .string($0) }))) }
            return .object(members)
        }
        let type = format == .fp8 ? "float" : "int"
        // compressed-tensors infers the format from the scheme: weight-only FP8 is "naive-quantized"
        // (the same bytes; the name tells loaders no activation quantization happens).
        let fmt = weightOnly ? "naive-quantized" : format == .fp8 ? "float-quantized" : "int-quantized"
        func args(strategy: String, dynamic: Bool) -> JSONValue {
            .object([
                ("num_bits", .int(8)), ("type", .string(type)), ("symmetric", .bool(true)),
                ("group_size", .null), ("strategy", .string(strategy)), ("dynamic", .bool(dynamic)),
            ])
        }
        let group = JSONValue.object([
            ("targets", .array([.string("Linear")])),
            ("weights", args(strategy: granularity.rawValue, dynamic: false)),
            ("input_activations", weightOnly ? .null : staticActivations ? args(strategy: "tensor", dynamic: false) : args(strategy: "token", dynamic: true)),
            ("output_activations", .null),
            ("format", .string(fmt)),
        ])
        return .object([
            ("config_groups", .object([("group_0", group)])),
            ("quant_method", .string("compressed-tensors")),
            ("kv_cache_scheme", .null),
            ("format", .string(fmt)),
            ("quantization_status", .string("compressed")),
            ("global_compression_ratio", .null),
            ("ignore", .array(ignore.map { .string($0) })),
        ])
    }

    /// A stable one-line description (recorded for resume, shown in logs).
    public var summary: String {
        isDeepSeekNative ? "fp8 block \(blockSize)x\(blockSize) (DeepSeek layout)"
            : "\(format.rawValue) \(granularity.rawValue) (compressed-tensors\(weightOnly ? ", weight-only" : staticActivations ? ", static per-tensor activations" : ", dynamic per-token activations"))"
    }
}
