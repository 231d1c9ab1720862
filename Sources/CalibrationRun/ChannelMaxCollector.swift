import Engine
import Foundation

/// SmoothQuant's first pass (`calibrate --smooth`): max |X_j| per channel j of every observed
/// input that a norm's output is (the sites of `sites`), over every token that reaches it. Other
/// sites are ignored. Like HistogramCollector, calls for one site never overlap, so each site's
/// maxima are touched by one thread at a time.
public final class ChannelMaxCollector: ActivationObserver, @unchecked Sendable {
    public let experts: ExpertObservation

    final class Slot {
        var maxima: [Float]
        init(width: Int) { maxima = [Float](repeating: 0, count: width) }
    }

    private let slots: [ObservedSite: Slot]
    private let names: [ObservedSite: String]
    private let nonFinite = NonFiniteSighting()
    /// The global index of window 0 of the current forward call.
    public var windowBase = 0

    /// `sites`: the observed inputs to measure, with their width (channels) and name.
    public init(experts: ExpertObservation, sites: [(site: ObservedSite, name: String, width: Int)]) {
        self.experts = experts
        slots = Dictionary(uniqueKeysWithValues: sites.map { ($0.site, Slot(width: $0.width)) })
        names = Dictionary(uniqueKeysWithValues: sites.map { ($0.site, $0.name) })
    }

    public func observe(_ site: ObservedSite, window: Int, rows: Int, width: Int, _ x: UnsafePointer<Float>, ld: Int) {
        guard let slot = slots[site], rows > 0 else { return }
        precondition(width == slot.maxima.count, "observed width \(width) of \(names[site]!) is not its norm's \(slot.maxima.count)")
        var bad = false
        slot.maxima.withUnsafeMutableBufferPointer { m in
            for r in 0..<rows {
                let row = x + r * ld
                for j in 0..<width {
                    let a = abs(row[j])
                    // A NaN fails every comparison: caught below by the row's check.
                    if a > m[j] { m[j] = a }
                    if !a.isFinite { bad = true }
                }
            }
        }
        if bad { nonFinite.record(site, window: windowBase + window) }
    }

    public func routed(layer: Int, expert: Int, window: Int, tokens: Int) {}

    /// Throws `CalibrationError.nonFinite` naming the input when one was seen.
    public func checkFinite(consumers: (String) -> [String]) throws {
        guard let bad = nonFinite.seen, let name = names[bad.site] else { return }
        throw CalibrationError.nonFinite(input: name, consumers: consumers(name), window: bad.window)
    }

    /// The maxima of `site` (nil for a site not measured).
    public func maxima(_ site: ObservedSite) -> [Float]? { slots[site]?.maxima }
}
