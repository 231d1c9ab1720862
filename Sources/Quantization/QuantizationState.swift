import JSON
import SafeTensors
import Checkpoint

/// How a checkpoint is quantized, as `inspect` reports it.
public struct QuantizationState: Sendable {
    /// `none`, `fp8` (DeepSeek block layout), `compressed-tensors`, or `unknown`.
    public var method: String
    /// Quantized weights grouped by (dtype, scale name, granularity): count and an example.
    public var groups: [Group]
    /// config.json's `quantization_config`, if any.
    public var config: JSONValue?
    /// Why quantize / dequantize would refuse this checkpoint's quantization tensors (an orphan
    /// scale, an ambiguous pair, an unsupported encoding), if they would.
    public var problem: String?

    public struct Group: Sendable {
        public var valueDType: DType
        public var scaleName: String
        public var scaleDType: DType
        public var granularity: String
        /// dtype of the zero points (asymmetric quantization), nil when symmetric.
        public var zeroPointDType: DType?
        public var count: Int
        public var example: String
    }

    public var quantizedWeights: Int { groups.reduce(0) { $0 + $1.count } }

    public static func of(_ ckpt: Checkpoint) -> QuantizationState {
        let config = ckpt.config?.quantizationConfig
        var found: [String: QuantizedWeight] = [:]
        var problem: String?
        do {
            found = try TensorClassification.classify(ckpt).quantized
        } catch {
            problem = "\(error)"
        }
        struct Key: Hashable { var value: DType; var scale: String; var scaleDType: DType; var granularity: WeightEncoding.ScaleLayout; var zero: DType? }
        var groups: [Key: Group] = [:]
        for q in found.values {
            let g = q.encoding.scale.description
            let scaleName = q.scale.name.hasSuffix("_inv") ? "weight_scale_inv" : "weight_scale"
            let key = Key(value: q.weight.dtype, scale: scaleName, scaleDType: q.scale.dtype, granularity: q.encoding.scale, zero: q.zeroPoint?.dtype)
            if groups[key] == nil {
                groups[key] = Group(valueDType: q.weight.dtype, scaleName: scaleName, scaleDType: q.scale.dtype, granularity: g,
                                    zeroPointDType: q.zeroPoint?.dtype, count: 0, example: q.weight.name)
            }
            groups[key]!.count += 1
            if q.weight.name < groups[key]!.example { groups[key]!.example = q.weight.name }
        }
        var method = config?["quant_method"]?.stringValue ?? (groups.isEmpty ? "none" : "unknown")
        if groups.isEmpty && config == nil { method = "none" }
        let sorted = groups.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.example < $1.example }
        return QuantizationState(method: method, groups: sorted, config: config, problem: problem)
    }
}
