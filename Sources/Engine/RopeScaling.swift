import Checkpoint
import JSON

#if canImport(Glibc)
import Glibc
#endif

/// Rotary position embedding frequencies: plain, linear, Llama 3 and YaRN scaling, computed
/// the way transformers computes them (f32 tensor arithmetic on top of Python-float constants),
/// so that angles agree to the last bit or two at long positions.
public struct RopeScaling: Sendable {
    public struct Yarn: Sendable {
        public var factor: Double
        public var originalContext: Int
        public var betaFast: Double
        public var betaSlow: Double
        public var mscale: Double
        public var mscaleAllDim: Double
        public var attentionFactor: Double?
        public var truncate: Bool
    }

    public enum Kind: Sendable {
        case plain
        case linear(factor: Double)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalContext: Int)
        case yarn(Yarn)
    }

    public var theta: Double
    /// Rotated width (the head dim, or DeepSeek's qk_rope_head_dim).
    public var dim: Int
    public var kind: Kind
    /// inv_freq[i] for i < dim / 2.
    public let inverseFrequencies: [Float]
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    public let attentionScaling: Float

    public init(theta: Double, dim: Int, kind: Kind) {
        self.theta = theta
        self.dim = dim
        self.kind = kind
        (inverseFrequencies, attentionScaling) = RopeScaling.compute(theta: theta, dim: dim, kind: kind)
    }

    init(config: ModelConfig, theta: Double, dim: Int) throws {
        let path = config.path
        guard let s = config.ropeScaling else {
            self.init(theta: theta, dim: dim, kind: .plain)
            return
        }
        let type = config.ropeScalingType ?? "default"
        func num(_ key: String) throws -> Double {
            guard let v = s[key]?.doubleValue else { throw EngineError.config(path: path, "rope scaling '\(type)' needs a number '\(key)'") }
            return v
        }
        func opt(_ key: String) -> Double? { s[key].flatMap { $0 == .null ? nil : $0.doubleValue } }
        let kind: Kind
        switch type {
        case "default":
            kind = .plain
        case "linear":
            kind = .linear(factor: try num("factor"))
        case "llama3":
            guard let oc = s["original_max_position_embeddings"]?.intValue else {
                throw EngineError.config(path: path, "llama3 rope scaling needs 'original_max_position_embeddings'")
            }
            kind = .llama3(factor: try num("factor"), lowFreqFactor: try num("low_freq_factor"), highFreqFactor: try num("high_freq_factor"), originalContext: oc)
            let (f, lo, hi) = (try num("factor"), try num("low_freq_factor"), try num("high_freq_factor"))
            guard f > 0, lo > 0, hi > lo else { throw EngineError.config(path: path, "llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0") }
        case "yarn":
            let original = s["original_max_position_embeddings"]?.intValue ?? config.int("max_position_embeddings") ?? 0
            // Without a factor, transformers takes the ratio of the two contexts.
            var factor = opt("factor") ?? 0
            if opt("factor") == nil, let m = config.int("max_position_embeddings"), original > 0 { factor = Double(m) / Double(original) }
            guard factor > 0, original > 0 else { throw EngineError.config(path: path, "yarn rope scaling needs a positive factor and original context") }
            kind = .yarn(Yarn(factor: factor, originalContext: original, betaFast: opt("beta_fast") ?? 32, betaSlow: opt("beta_slow") ?? 1,
                              mscale: opt("mscale") ?? 0, mscaleAllDim: opt("mscale_all_dim") ?? 0,
                              attentionFactor: opt("attention_factor"), truncate: s["truncate"]?.boolValue ?? true))
        default:
            throw EngineError.config(path: path, "rope scaling type '\(type)' is not implemented (default, linear, llama3 and yarn are)")
        }
        self.init(theta: theta, dim: dim, kind: kind)
    }

    /// YaRN's magnitude correction, 0.1 · m · ln(s) + 1 (1 when s ≤ 1).
    public static func yarnMscale(_ scale: Double, _ m: Double) -> Double {
        scale <= 1 ? 1 : 0.1 * m * log(scale) + 1
    }

    /// base ** (2i / dim) in f32, as torch evaluates `base ** (arange(0, dim, 2).float() / dim)`.
    static func positionFrequencies(theta: Double, dim: Int) -> [Float] {
        (0..<(dim / 2)).map { i in
            let e = Float(2 * i) / Float(dim)
            return Float(pow(Double(Float(theta)), Double(e)))
        }
    }

    static func compute(theta: Double, dim: Int, kind: Kind) -> ([Float], Float) {
        let pos = positionFrequencies(theta: theta, dim: dim)
        let plain = pos.map { 1 / $0 }
        switch kind {
        case .plain:
            return (plain, 1)
        case let .linear(f):
            return (plain.map { $0 / Float(f) }, 1)
        case let .llama3(factor, lowF, highF, oc):
            let ff = Float(factor)
            let lowWave = Double(oc) / lowF, highWave = Double(oc) / highF
            let out: [Float] = plain.map { inv in
                let wavelen = Float(2 * Double.pi) / inv
                var v = Double(wavelen) > lowWave ? inv / ff : inv
                let smooth = (Float(Double(oc)) / wavelen - Float(lowF)) / Float(highF - lowF)
                let smoothed = (1 - smooth) * v / ff + smooth * v
                let medium = !(Double(wavelen) < highWave) && !(Double(wavelen) > lowWave)
                if medium { v = smoothed }
                return v
            }
            return (out, 1)
        case let .yarn(y):
            let attention: Double
            if let a = y.attentionFactor {
                attention = a
            } else if y.mscale != 0 && y.mscaleAllDim != 0 {
                attention = yarnMscale(y.factor, y.mscale) / yarnMscale(y.factor, y.mscaleAllDim)
            } else {
                attention = yarnMscale(y.factor, 1)
            }
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * log(Double(y.originalContext) / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correctionDim(y.betaFast), high = correctionDim(y.betaSlow)
            if y.truncate { low = floor(low); high = ceil(high) }
            low = max(low, 0)
            high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            let ff = Float(y.factor)
            let out: [Float] = (0..<(dim / 2)).map { i in
                let ramp = min(max((Float(i) - Float(low)) / Float(high - low), 0), 1)
                let extrapolationFactor = 1 - ramp
                let extrapolation = 1 / pos[i]
                let interpolation = 1 / (ff * pos[i])
                return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
            return (out, Float(attention))
        }
    }

    /// cos and sin of position `p` for every frequency, times the attention scaling.
    public func angles(position p: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let fp = Float(p)
        for (i, inv) in inverseFrequencies.enumerated() {
            let a = Double(inv * fp)
            c[i] = Float(Glibc.cos(a)) * attentionScaling
            s[i] = Float(Glibc.sin(a)) * attentionScaling
        }
    }

    /// Rotates one head vector in place: pairs (i, i + dim/2), or (2i, 2i+1) when interleaved.
    @inline(__always)
    public static func rotate(_ x: UnsafeMutablePointer<Float>, half: Int, interleaved: Bool, cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        if interleaved {
            for i in 0..<half {
                let a = x[2 * i], b = x[2 * i + 1]
                x[2 * i] = a * c[i] - b * s[i]
                x[2 * i + 1] = b * c[i] + a * s[i]
            }
        } else {
            for i in 0..<half {
                let a = x[i], b = x[i + half]
                x[i] = a * c[i] - b * s[i]
                x[i + half] = b * c[i] + a * s[i]
            }
        }
    }
}
