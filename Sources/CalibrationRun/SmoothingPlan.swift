import Calibration
import Checkpoint
import Engine
import Eval
import Numerics
import Tensors

/// What `calibrate --smooth` smooths (Formats/calibration.md, "SmoothQuant"): every observed
/// input that is a norm's output (its consumers all read that norm, `SmoothingGroups`) is
/// measured channel by channel in a first pass; then s per norm from the maxima over all of the
/// norm's observed inputs and over the columns of every weight that reads the norm, the router
/// included. The first pass observes routed experts on their routed tokens only (`.routedOnly`:
/// no expert runs on tokens not routed to it; the experts' rows together, with the shared
/// experts' input, are every token of the norm's output, so the maxima are those of all tokens),
/// whatever mode the histogram pass uses. The other inputs (o_proj, down_proj) have no norm to
/// fold into and are left as they are.
final class SmoothingPlan {
    struct Member {
        var site: ObservedSite
        var name: String
    }

    /// The observation mode of the first pass.
    static let measureMode = ExpertObservation.routedOnly

    /// Per norm: its width, the first pass's inputs (measured) and the histogram pass's (divided).
    let groups: [(group: SmoothingGroups.Group, width: Int, measured: [Member], divided: [String])]
    let sites: [(site: ObservedSite, name: String, width: Int)]
    /// Observed input → its consumers (for messages).
    let consumers: [String: [String]]
    let notSmoothed: [(name: String, reason: String)]
    private let store: any TensorStore
    private(set) var entries: [SmoothingEntry] = []
    /// Observed input name (histogram pass) → s.
    private(set) var divisors: [String: [Float]] = [:]

    /// `experts`: the histogram pass's mode.
    init(model: EvalModel, experts: ExpertObservation) throws {
        let ckpt = try Checkpoint(path: model.path)
        store = ckpt.weights
        let all = ckpt.smoothingGroups
        func group(of input: ObservedLayerInput) -> Int? {
            let wanted = Set(input.consumers)
            return all.firstIndex { wanted.isSubset(of: $0.readers) }
        }
        var measured = [[Member]](repeating: [], count: all.count)
        var divided = [[String]](repeating: [], count: all.count)
        var skipped: [(String, String)] = []
        var consumers: [String: [String]] = [:]
        for input in model.model.observedInputs(Self.measureMode) {
            consumers[input.name] = input.consumers
            if let g = group(of: input) { measured[g].append(Member(site: input.site, name: input.name)) }
        }
        for input in model.model.observedInputs(experts) {
            consumers[input.name] = input.consumers
            if let g = group(of: input) {
                divided[g].append(input.name)
            } else {
                skipped.append((input.name, "no norm before it to fold s into (\(input.consumers.count == 1 ? input.consumers[0] : "its consumers") read\(input.consumers.count == 1 ? "s" : "") no norm's output)"))
            }
        }
        var groups: [(SmoothingGroups.Group, Int, [Member], [String])] = []
        for k in all.indices where !measured[k].isEmpty && !divided[k].isEmpty {
            let g = all[k]
            guard let info = store.info(g.norm + ".weight"), info.shape.count == 1 else {
                throw CalibrationError.smoothing(tensor: g.norm + ".weight", "is not a 1-D norm weight")
            }
            groups.append((g, info.shape[0], measured[k], divided[k]))
        }
        self.groups = groups
        sites = groups.flatMap { g in g.2.map { ($0.site, $0.name, g.1) } }
        self.consumers = consumers
        notSmoothed = skipped
    }

    /// s of every group from the first pass's maxima.
    func computeScales(_ maxima: ChannelMaxCollector, alpha: Double) throws {
        for (g, width, ms, names) in groups {
            var act = [Float](repeating: 0, count: width)
            for m in ms {
                guard let x = maxima.maxima(m.site) else { continue }
                for j in 0..<width { act[j] = max(act[j], x[j]) }
            }
            let w = try columnMaxima(g.readers, width: width)
            let s = Smoothing.scales(actMax: act, weightMax: w, alpha: alpha)
            entries.append(SmoothingEntry(norm: g.norm, consumers: g.readers, actMax: act, weightMax: w, scales: s))
            for name in names { divisors[name] = s }
        }
    }

    /// max |W[r, j]| over every row r of every reader's weight, per column j.
    func columnMaxima(_ readers: [String], width: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: width)
        for m in readers {
            let name = m + ".weight"
            let v = try store.view(name)
            let format: FloatFormat
            switch v.dtype {
            case .f32: format = .f32
            case .bf16: format = .bf16
            case .f16: format = .f16
            default: throw CalibrationError.smoothing(tensor: name, "is \(v.dtype.rawValue): --smooth reads max |W_j| from unquantized weights (BF16, F16 or F32); calibrate the unquantized model")
            }
            guard v.shape.count == 2, v.shape[1] == width else {
                throw CalibrationError.smoothing(tensor: name, "has shape \(v.info.shapeText); a reader of a \(width)-channel norm output has \(width) columns")
            }
            let rows = v.shape[0]
            var row = [Float](repeating: 0, count: width)
            let base = v.bytes.baseAddress!
            row.withUnsafeMutableBytes { rb in
                for r in 0..<rows {
                    FloatFormat.convert(base + r * width * format.size, from: format, to: rb.baseAddress!, .f32, count: width)
                    let x = rb.bindMemory(to: Float.self)
                    for j in 0..<width where abs(x[j]) > out[j] { out[j] = abs(x[j]) }
                }
            }
        }
        return out
    }
}
