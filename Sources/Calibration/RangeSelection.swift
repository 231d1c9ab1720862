import Numerics

/// Turns histograms into ranges with one method (Formats/calibration.md): the step
/// `calibrate` and `calibrate --from-histograms` share.
public enum RangeSelection {
    public enum Method: String, Sendable, CaseIterable {
        case kl, percentile, mse, minmax
    }

    /// An input the method could not give a range for, and why.
    public struct Skipped: Sendable, Equatable {
        public var name: String
        public var reason: String
    }

    public static func ranges(_ file: HistogramFile, method: Method, target: CalibrationTarget, percentile: Double = 99.99) -> (RangesFile, [Skipped]) {
        var out: [InputRange] = []
        var skipped: [Skipped] = []
        // The searches are independent per input: run them on Parallel.threads (--threads), keep
        // the file's order.
        let picks = UnsafeMutableBufferPointer<(bin: Int?, amax: Double)?>.allocate(capacity: file.inputs.count)
        picks.initialize(repeating: nil)
        defer { picks.deallocate() }
        Parallel.forEach(file.inputs.count) { k in
            let h = file.inputs[k].histogram
            switch method {
            case .kl: picks[k] = AmaxSearch.entropy(h, target: target).map { ($0.bin, $0.amax) }
            case .mse: picks[k] = AmaxSearch.mse(h, target: target).map { ($0.bin, $0.amax) }
            case .percentile: picks[k] = AmaxSearch.percentile(h, percentile).map { ($0.bin, $0.amax) }
            case .minmax: picks[k] = h.maxSeen > 0 ? (nil, h.maxSeen) : nil
            }
        }
        for (k, i) in file.inputs.enumerated() {
            let h = i.histogram
            guard let pick = picks[k], pick.amax > 0 else {
                let why = h.counts.isEmpty ? "no non-zero value was observed"
                    : "\(h.counts.count) bins: \(method.rawValue) needs more than 128 (the searches start at bin 128) or a positive range"
                skipped.append(Skipped(name: i.name, reason: why))
                continue
            }
            out.append(InputRange(name: i.name, consumers: i.consumers, tokens: i.tokens, routedTokens: i.routedTokens, amax: pick.amax, bin: pick.bin))
        }
        let ranges = RangesFile(model: file.model, method: method.rawValue, target: target,
                                percentile: method == .percentile ? percentile : nil,
                                ctx: file.ctx, windows: file.windows, expertMode: file.expertMode, inputs: out)
        return (ranges, skipped)
    }
}
