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
    /// Other quantization tensors of the module (`input_scale`, zero points) that go with it.
    public var extras: [TensorInfo]
    public var granularity: Granularity
    public var module: String { String(weight.name.dropLast(".weight".count)) }

    /// Finds every quantized weight of `checkpoint`: an F8_E4M3 or I8 `X.weight` with a
    /// `X.weight_scale_inv` (DeepSeek, multiply) or `X.weight_scale` (compressed-tensors). The
    /// scale's shape tells the granularity; block edges come from config.json
    /// (`weight_block_size` or compressed-tensors' `block_structure`), 128 by default.
    public static func find(in checkpoint: Checkpoint) throws -> [String: QuantizedWeight] {
        let w = checkpoint.weights
        let blockEdge = configuredBlock(checkpoint.config?.quantizationConfig)
        var out: [String: QuantizedWeight] = [:]
        for shard in w.shards {
          for info in shard.header.tensors where info.dtype == .f8e4m3 || info.dtype == .i8 {
            let name = info.name
            guard name.hasSuffix(".weight") else { continue }
            let module = String(name.dropLast(".weight".count))
            guard let scale = w.info(module + ".weight_scale_inv") ?? w.info(module + ".weight_scale") else {
                throw QuantizationError.missingScale(tensor: name, scale: module + ".weight_scale_inv")
            }
            guard info.shape.count == 2 else {
                throw QuantizationError.badShape(tensor: name, shape: info.shape, "quantized weights must be 2-D")
            }
            let rows = info.shape[0], cols = info.shape[1]
            let g: Granularity
            let s = scale.shape
            let deepSeekLayout = scale.name.hasSuffix(".weight_scale_inv")
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
            let extras = ["input_scale", "weight_zero_point", "input_zero_point"].compactMap { w.info(module + "." + $0) }
            out[name] = QuantizedWeight(weight: info, scale: scale, extras: extras, granularity: g)
          }
        }
        return out
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
