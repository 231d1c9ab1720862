import JSON
import SafeTensors
import Checkpoint

/// A weight that is already quantized in the input checkpoint, with how to dequantize it.
public struct QuantizedWeight: Sendable {
    public enum Granularity: Sendable, Hashable {
        case block(rows: Int, cols: Int)
        case channel
        case tensor
    }

    public var weight: TensorInfo
    public var scale: TensorInfo
    /// `X.weight_zero_point` (asymmetric compressed-tensors), same element count as the scale.
    public var zeroPoint: TensorInfo?
    /// Other quantization tensors of the module (`input_scale`, `input_zero_point`) that go with it
    /// (static activation parameters; a plain output drops them).
    public var extras: [TensorInfo]
    public var granularity: Granularity
    /// Where the weight, scale and zero point are stored (for messages).
    public var weightAt: StoredAt?
    public var scaleAt: StoredAt?
    public var zeroPointAt: StoredAt?
    public var module: String { String(weight.name.dropLast(".weight".count)) }

    public init(weight: TensorInfo, scale: TensorInfo, zeroPoint: TensorInfo? = nil, extras: [TensorInfo] = [], granularity: Granularity,
                weightAt: StoredAt? = nil, scaleAt: StoredAt? = nil, zeroPointAt: StoredAt? = nil) {
        self.weight = weight
        self.scale = scale
        self.zeroPoint = zeroPoint
        self.extras = extras
        self.granularity = granularity
        self.weightAt = weightAt
        self.scaleAt = scaleAt
        self.zeroPointAt = zeroPointAt
    }

    /// Every tensor this quantized weight reads besides the weight itself.
    public var parameterTensors: [TensorInfo] { [scale] + (zeroPoint.map { [$0] } ?? []) + extras }

    /// Finds every quantized weight of `checkpoint` (see `TensorClassification`, which decides it
    /// for all commands). Block edges come from config.json (`weight_block_size` or
    /// compressed-tensors' `block_structure`), 128 by default.
    public static func find(in checkpoint: Checkpoint) throws -> [String: QuantizedWeight] {
        try TensorClassification.classify(checkpoint).quantized
    }

    static func configuredBlock(_ q: JSONValue?) -> (Int, Int)? {
        if let b = q?["weight_block_size"]?.arrayValue, b.count == 2, let r = b[0].intValue, let c = b[1].intValue, r > 0, c > 0 {
            return (r, c)
        }
        if let groups = q?["config_groups"]?.objectMembers {
            for (_, g) in groups {
                if let b = g["weights"]?["block_structure"]?.arrayValue, b.count == 2, let r = b[0].intValue, let c = b[1].intValue, r > 0, c > 0 {
                    return (r, c)
                }
            }
        }
        return (128, 128)
    }
}
