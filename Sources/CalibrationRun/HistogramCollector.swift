import Calibration
import Engine
import Foundation

/// The engine's calibration observer: one |x| histogram per observed input (Formats/calibration.md),
/// one batch per window, the tokens that reached each input and the tokens the router sent to
/// each expert. Optionally keeps the raw rows of one input (`dump`), to check the histograms
/// against another implementation. With `divisors` (SmoothQuant's second pass), a site's rows
/// are divided channel by channel (x_j / s_j) before they are counted (and dumped).
///
/// Calls for one site never overlap (ActivationObserver), so each site's slot is touched by one
/// thread at a time; the slot table itself is built up front and only read while observing.
public final class HistogramCollector: ActivationObserver, @unchecked Sendable {
    public let experts: ExpertObservation
    public let inputs: [ObservedLayerInput]

    final class Slot {
        var histogram = AbsHistogram()
        var tokens = 0
        /// Rows copied out when the observer's rows are not contiguous.
        var scratch: [Float] = []
        /// SmoothQuant: s of this site (its rows are divided by it), and room for the quotients.
        var divisor: [Float]?
        var smoothed: [Float] = []
        var dump: [(window: Int, rows: Int, width: Int, values: [Float])]?
    }

    private let slots: [ObservedSite: Slot]
    /// MoE layer → routed tokens per expert.
    private var routedCounts: [Int: [Int]]
    /// Guards `routedCounts`.
    private let lock = NSLock()
    private let nonFinite = NonFiniteSighting()
    /// The global index of window 0 of the current forward call.
    public var windowBase = 0

    /// `dump`: the name of one input whose raw rows are kept (nil: none).
    /// `divisors`: observed input name → s (one per channel) for the inputs to smooth.
    public init(model: Model, experts: ExpertObservation, dump: String? = nil, divisors: [String: [Float]] = [:]) throws {
        self.experts = experts
        inputs = model.observedInputs(experts)
        var s: [ObservedSite: Slot] = [:]
        for i in inputs {
            let slot = Slot()
            slot.divisor = divisors[i.name]
            if i.name == dump { slot.dump = [] }
            s[i.site] = slot
        }
        if let dump, !inputs.contains(where: { $0.name == dump }) {
            throw CalibrationError.unknownInput(dump)
        }
        slots = s
        routedCounts = Dictionary(uniqueKeysWithValues: model.routedExperts.map { ($0.layer, [Int](repeating: 0, count: $0.experts)) })
    }

    public func observe(_ site: ObservedSite, window: Int, rows: Int, width: Int, _ x: UnsafePointer<Float>, ld: Int) {
        guard let slot = slots[site], rows > 0 else { return }
        let n = rows * width
        if ld == width {
            add(UnsafeBufferPointer(start: x, count: n), rows: rows, width: width, to: slot, site: site, window: window)
            return
        }
        if slot.scratch.count < n { slot.scratch = [Float](repeating: 0, count: n) }
        slot.scratch.withUnsafeMutableBufferPointer { s in
            for r in 0..<rows { (s.baseAddress! + r * width).update(from: x + r * ld, count: width) }
        }
        slot.scratch.withUnsafeBufferPointer { s in
            add(UnsafeBufferPointer(rebasing: s[0..<n]), rows: rows, width: width, to: slot, site: site, window: window)
        }
    }

    private func add(_ values: UnsafeBufferPointer<Float>, rows: Int, width: Int, to slot: Slot, site: ObservedSite, window: Int) {
        if let d = slot.divisor {
            precondition(d.count == width, "divisor of \(d.count) channels for an input of width \(width)")
            let n = rows * width
            if slot.smoothed.count < n { slot.smoothed = [Float](repeating: 0, count: n) }
            slot.smoothed.withUnsafeMutableBufferPointer { out in
                d.withUnsafeBufferPointer { s in
                    for r in 0..<rows {
                        for j in 0..<width { out[r * width + j] = values[r * width + j] / s[j] }
                    }
                }
            }
            slot.smoothed.withUnsafeBufferPointer { out in
                addCounted(UnsafeBufferPointer(rebasing: out[0..<n]), rows: rows, width: width, to: slot, site: site, window: window)
            }
            return
        }
        addCounted(values, rows: rows, width: width, to: slot, site: site, window: window)
    }

    private func addCounted(_ values: UnsafeBufferPointer<Float>, rows: Int, width: Int, to slot: Slot, site: ObservedSite, window: Int) {
        guard let m = AbsHistogram.absMax(values) else {
            nonFinite.record(site, window: windowBase + window)
            return
        }
        slot.histogram.add(batch: values, absMax: m)
        slot.tokens += rows
        if slot.dump != nil { slot.dump!.append((windowBase + window, rows, width, Array(values))) }
    }

    public func routed(layer: Int, expert: Int, window: Int, tokens: Int) {
        lock.lock()
        routedCounts[layer]?[expert] += tokens
        lock.unlock()
    }

    /// Throws `CalibrationError.nonFinite` naming the input when one was seen.
    public func checkFinite() throws {
        guard let bad = nonFinite.seen, let input = inputs.first(where: { $0.site == bad.site }) else { return }
        throw CalibrationError.nonFinite(input: input.name, consumers: input.consumers, window: bad.window)
    }

    /// Tokens routed to each expert of `layer` so far (nil for a layer without routed experts).
    public func routedTokens(layer: Int) -> [Int]? { routedCounts[layer] }

    /// What was collected, as a histogram file's inputs, in forward order.
    public func observedInputs() -> [ObservedInput] {
        inputs.map { i in
            let slot = slots[i.site]!
            let routed = i.expert.flatMap { routedCounts[$0.layer]?[$0.index] }
            return ObservedInput(name: i.name, consumers: i.consumers, tokens: slot.tokens, routedTokens: routed, histogram: slot.histogram)
        }
    }

    /// The kept rows of the `dump` input, window by window.
    public var dumped: [(window: Int, rows: Int, width: Int, values: [Float])] {
        slots.values.compactMap(\.dump).first ?? []
    }
}
