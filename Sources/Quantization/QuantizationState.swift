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

    public struct Group: Sendable {
        public var valueDType: DType
        public var scaleName: String
        public var scaleDType: DType
        public var granularity: String
        public var count: Int
        public var example: String
    }

    public var quantizedWeights: Int { groups.reduce(0) { $0 + $1.count } }

    public static func of(_ ckpt: Checkpoint) -> QuantizationState {
        let config = ckpt.config?.quantizationConfig
        let found = (try? QuantizedWeight.find(in: ckpt)) ?? [:]
        var groups: [String: Group] = [:]
        for name in ckpt.weights.tensorNames {
            guard let q = found[name] else { continue }
            let g: String
            switch q.granularity {
            case let .block(r, c): g = "block \(r)x\(c)"
            case .channel: g = "channel"
            case .tensor: g = "tensor"
            }
            let scaleName = String(q.scale.name.split(separator: ".").last!)
            let key = "\(q.weight.dtype.rawValue)|\(scaleName)|\(q.scale.dtype.rawValue)|\(g)"
            groups[key, default: Group(valueDType: q.weight.dtype, scaleName: scaleName, scaleDType: q.scale.dtype, granularity: g, count: 0, example: name)].count += 1
        }
        var method = config?["quant_method"]?.stringValue ?? (groups.isEmpty ? "none" : "unknown")
        if groups.isEmpty && config == nil { method = "none" }
        return QuantizationState(method: method, groups: groups.values.sorted { $0.count > $1.count }, config: config)
    }
}
