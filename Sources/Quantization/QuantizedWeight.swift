import JSON
import SafeTensors
import Checkpoint

/// A weight that is already quantized in the input checkpoint, with how to dequantize it.
public struct QuantizedWeight: Sendable {
    public var weight: TensorInfo
    public var scale: TensorInfo
    /// `X.weight_zero_point` (asymmetric compressed-tensors), same element count as the scale.
    public var zeroPoint: TensorInfo?
    /// Other quantization tensors of the module (`input_scale`, `input_zero_point`) that go with it
    /// (static activation parameters; a plain output drops them).
    public var extras: [TensorInfo]
    /// How it is stored: element type, scale layout and dtype, zero point.
    public var encoding: WeightEncoding
    /// Finds where the weight, scale and zero point are stored (for messages), when known.
    public var locator: TensorLocator?
    public var weightAt: StoredAt? { locator?(weight.name) }
    public var scaleAt: StoredAt? { locator?(scale.name) }
    public var zeroPointAt: StoredAt? { zeroPoint.flatMap { locator?($0.name) } }
    public var module: String { String(weight.name.dropLast(".weight".count)) }

    public init(weight: TensorInfo, scale: TensorInfo, zeroPoint: TensorInfo? = nil, extras: [TensorInfo] = [], scaleLayout: WeightEncoding.ScaleLayout,
                locator: TensorLocator? = nil) {
        self.weight = weight
        self.scale = scale
        self.zeroPoint = zeroPoint
        self.extras = extras
        encoding = WeightEncoding(element: WeightEncoding.Element(weight.dtype) ?? .e4m3, scale: scaleLayout, scaleDType: scale.dtype, hasZeroPoint: zeroPoint != nil)
        self.locator = locator
    }

    /// Every tensor this quantized weight reads besides the weight itself.
    public var parameterTensors: [TensorInfo] { [scale] + (zeroPoint.map { [$0] } ?? []) + extras }

    /// Finds every quantized weight of `checkpoint` (see `TensorClassification`, which decides it
    /// for all commands). Block edges come from config.json (`weight_block_size` or
    /// compressed-tensors' `block_structure`), 128 by default.
    public static func find(in checkpoint: Checkpoint) throws -> [String: QuantizedWeight] {
        try TensorClassification.classify(checkpoint).quantized
    }

    /// The region of the scale tensor that goes with `region` of the weight: the matching cut of
    /// a block grid (refusing a cut inside a block), the rows of a per-channel scale, or nil when
    /// the whole scale applies (per tensor, or a per-channel scale cut along columns).
    public func scaleRegion(for region: TensorRegion, tensor: String) throws -> TensorRegion? {
        switch encoding.scale {
        case let .block(br, bc):
            return try region.scaleGrid(weightShape: weight.shape, blocks: [br, bc], tensor: tensor)
        case .channel:
            try region.validate(weight.shape, tensor: tensor)
            return region.dimension == 0 ? TensorRegion(dimension: 0, range: region.range) : nil
        case .tensor, .none:
            try region.validate(weight.shape, tensor: tensor)
            return nil
        }
    }

    /// This weight as if only `region` of it (and the matching scales) were stored.
    public func restricted(to region: TensorRegion) throws -> QuantizedWeight {
        var q = self
        let shape = region.shape(of: weight.shape)
        q.weight = TensorInfo(name: weight.name, dtype: weight.dtype, shape: shape, dataOffsets: 0..<weight.dtype.byteCount(elements: shape.reduce(1, *))!)
        if let sr = try scaleRegion(for: region, tensor: weight.name) {
            func cut(_ t: TensorInfo) -> TensorInfo {
                var ss = t.shape
                ss[sr.dimension] = sr.range.count
                return TensorInfo(name: t.name, dtype: t.dtype, shape: ss, dataOffsets: 0..<t.dtype.byteCount(elements: ss.reduce(1, *))!)
            }
            q.scale = cut(scale)
            // A zero point has the scale's layout.
            if let z = zeroPoint, z.shape == scale.shape { q.zeroPoint = cut(z) }
        }
        return q
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
