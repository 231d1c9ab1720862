import SafeTensors

/// How one weight matrix is stored: the element type, where its scales live and how they apply.
/// One description for every layout dsconvert reads or writes (plain BF16/F16/F32, DeepSeek
/// block FP8, compressed-tensors FP8 / INT8 per tensor or per channel, with zero points), so
/// codecs, plans and the engine switch over one type.
public struct WeightEncoding: Sendable, Hashable, CustomStringConvertible {
    public enum Element: String, Sendable, Hashable {
        case f32, f16, bf16, e4m3, e5m2, int8

        public init?(_ dtype: DType) {
            switch dtype {
            case .f32: self = .f32
            case .f16: self = .f16
            case .bf16: self = .bf16
            case .f8e4m3: self = .e4m3
            case .f8e5m2: self = .e5m2
            case .i8: self = .int8
            default: return nil
            }
        }

        public var dtype: DType {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .e4m3: return .f8e4m3
            case .e5m2: return .f8e5m2
            case .int8: return .i8
            }
        }

        /// Needs a scale to mean anything (FP8, INT8).
        public var isQuantized: Bool { self == .e4m3 || self == .e5m2 || self == .int8 }
    }

    /// Which elements share a scale.
    public enum ScaleLayout: Sendable, Hashable, CustomStringConvertible {
        /// Plain floats, no scale.
        case none
        /// One scale for the whole matrix (`[1]` or `[]`).
        case tensor
        /// One scale per output row (`[rows, 1]` or `[rows]`).
        case channel
        /// One scale per `rows × cols` block, `[ceil(R/rows), ceil(C/cols)]` (DeepSeek: 128 × 128).
        case block(rows: Int, cols: Int)

        /// `none`, `tensor`, `channel`, `block 128x128`.
        public var description: String {
            switch self {
            case .none: return "none"
            case .tensor: return "tensor"
            case .channel: return "channel"
            case let .block(r, c): return "block \(r)x\(c)"
            }
        }
    }

    /// How a stored scale s turns a code q into a value.
    public enum Convention: String, Sendable, Hashable {
        /// w = (q − zp) × s: DeepSeek's `weight_scale_inv` and compressed-tensors' `weight_scale`.
        case multiply
        /// w = (q − zp) / s.
        case divide
    }

    public var element: Element
    public var scale: ScaleLayout
    /// dtype of the stored scale (nil without one).
    public var scaleDType: DType?
    public var convention: Convention
    /// A zero point is stored beside the scale (asymmetric quantization), same layout as the scale.
    public var hasZeroPoint: Bool

    public init(element: Element, scale: ScaleLayout = .none, scaleDType: DType? = nil, convention: Convention = .multiply, hasZeroPoint: Bool = false) {
        self.element = element
        self.scale = scale
        self.scaleDType = scaleDType
        self.convention = convention
        self.hasZeroPoint = hasZeroPoint
    }

    /// `BF16`, `F8_E4M3 block 128x128 (F32 scale)`, `I8 channel (BF16 scale, zero point)`.
    public var description: String {
        guard scale != .none else { return element.dtype.rawValue }
        let s = element.dtype.rawValue + " " + scale.description
        var extra = [(scaleDType?.rawValue ?? "?") + " scale"]
        if convention == .divide { extra.append("divided") }
        if hasZeroPoint { extra.append("zero point") }
        return s + " (" + extra.joined(separator: ", ") + ")"
    }

    /// Shape of the scale tensor for a `rows × cols` matrix.
    public func scaleShape(rows: Int, cols: Int) -> [Int]? {
        switch scale {
        case .none: return nil
        case .tensor: return [1]
        case .channel: return [rows, 1]
        case let .block(br, bc): return [(rows + br - 1) / br, (cols + bc - 1) / bc]
        }
    }
}
