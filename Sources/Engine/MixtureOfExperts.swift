import EngineKernels

#if canImport(Glibc)
import Glibc
#endif

/// DeepSeek-V3's MoE block: a sigmoid router with `noaux_tc` grouped top-k, the correction bias
/// used for selection only, normalised and scaled top-k weights, routed SwiGLU experts and shared
/// experts added for every token.
final class MixtureOfExperts: @unchecked Sendable {
    let router: Linear
    let bias: [Float]
    let experts: [MLP]
    let shared: MLP?
    let spec: TransformerConfig.Experts

    init(_ r: WeightReader, prefix: String, config c: TransformerConfig) throws {
        let e = c.experts!
        spec = e
        router = try r.linear(prefix + ".gate", e.routed, c.hidden)
        bias = try r.vector(prefix + ".gate.e_score_correction_bias", e.routed)
        experts = try (0..<e.routed).map {
            try MLP(r, prefix: prefix + ".experts.\($0)", hidden: c.hidden, intermediate: e.intermediate)
        }
        shared = e.shared > 0 ? try MLP(r, prefix: prefix + ".shared_experts", hidden: c.hidden, intermediate: e.intermediate * e.shared) : nil
    }

    /// The experts and weights chosen for one token from its router logits.
    static func route(_ logits: UnsafePointer<Float>, bias: [Float], spec e: TransformerConfig.Experts) -> [(expert: Int, weight: Float)] {
        let n = e.routed
        var scores = [Float](repeating: 0, count: n), choice = scores
        for i in 0..<n {
            scores[i] = 1 / (1 + expf(-logits[i]))
            choice[i] = scores[i] + bias[i]
        }
        let size = n / e.groups
        var groupScore = [Float](repeating: 0, count: e.groups)
        for g in 0..<e.groups {
            if size == 1 {
                groupScore[g] = choice[g]
                continue
            }
            var a = -Float.infinity, b = -Float.infinity
            for i in g * size..<(g + 1) * size {
                let v = choice[i]
                if v > a { b = a; a = v } else if v > b { b = v }
            }
            groupScore[g] = a + b
        }
        let keptGroups = topK(groupScore, e.groupsKept)
        var masked = [Float](repeating: -.infinity, count: n)
        for g in keptGroups { for i in g * size..<(g + 1) * size { masked[i] = choice[i] } }
        let chosen = topK(masked, e.perToken)
        var weights = chosen.map { scores[$0] }
        if e.normalize {
            let sum = weights.reduce(0, +) + 1e-20
            weights = weights.map { $0 / sum }
        }
        return zip(chosen, weights).map { ($0, $1 * e.scaling) }
    }

    /// Indices of the k largest values (earlier index first among equals).
    static func topK(_ v: [Float], _ k: Int) -> [Int] {
        Array(v.indices.sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }.prefix(k))
    }

    /// `seen` (calibration) observes the shared experts' and the routed experts' inputs; in
    /// `.allExperts` mode every token also passes through every routed expert's gate/up for
    /// statistics only, after the routed computation, which is left as it is.
    func forward(_ h: Matrix, pool: WorkerPool, into out: Matrix, observing seen: LayerObservation? = nil) {
        let m = h.rows, hidden = h.cols, k = spec.perToken
        let logits = Matrix(rows: m, cols: spec.routed, uninitialized: ())
        router.apply(h.data, rows: m, ldx: hidden, into: logits.data, ldy: logits.cols, pool: pool)
        var assigned = [[(token: Int, slot: Int, weight: Float)]](repeating: [], count: spec.routed)
        for t in 0..<m {
            for (slot, c) in MixtureOfExperts.route(logits.row(t), bias: bias, spec: spec).enumerated() {
                assigned[c.expert].append((t, slot, c.weight))
            }
        }
        let routedOnly = seen?.observer.experts == .routedOnly
        if let seen {
            for (e, list) in assigned.enumerated() {
                var perWindow = [Int](repeating: 0, count: seen.batch)
                for a in list { perWindow[a.token / seen.tokens] += 1 }
                for (b, n) in perWindow.enumerated() { seen.observer.routed(layer: seen.layer, expert: e, window: b, tokens: n) }
            }
            if shared != nil || !routedOnly { seen.all(.mlpInput(layer: seen.layer), h.data, width: hidden, ld: hidden) }
        }
        // Every (token, slot) row is written by the expert the slot routes to.
        let slots = Matrix(rows: m * k, cols: hidden, uninitialized: ())
        // Busiest experts first, so the workers finish together (each expert's output goes to its
        // own slot rows: the order changes no result).
        let active = assigned.indices.filter { !assigned[$0].isEmpty }.sorted { (assigned[$0].count, $1) > (assigned[$1].count, $0) }
        pool.run(active.count) { item, w in
            let e = active[item], list = assigned[e]
            let x = Matrix(rows: list.count, cols: hidden, uninitialized: ()), y = Matrix(rows: list.count, cols: hidden, uninitialized: ())
            for (i, a) in list.enumerated() { x.row(i).update(from: h.row(a.token), count: hidden) }
            var hiddenSeen: ((UnsafePointer<Float>, Int) -> Void)?
            if routedOnly, let seen {
                let sources = list.map(\.token), width = self.experts[e].intermediate
                seen.gathered(.expertInput(layer: seen.layer, expert: e), sources: sources, x.data, width: hidden, ld: hidden)
                hiddenSeen = { g, ld in seen.gathered(.expertHidden(layer: seen.layer, expert: e), sources: sources, g, width: width, ld: ld) }
            }
            self.experts[e].forwardSerial(x.data, rows: list.count, ldx: hidden, into: y.data, ldo: hidden, scratch: pool.scratch(w), hidden: hiddenSeen)
            for (i, a) in list.enumerated() {
                let dst = slots.row(a.token * k + a.slot), src = y.row(i)
                for j in 0..<hidden { dst[j] = src[j] * a.weight }
            }
        }
        if let seen, !routedOnly {
            pool.run(experts.count) { e, w in
                let g = self.experts[e].hiddenSerial(h.data, rows: m, ldx: hidden, scratch: pool.scratch(w))
                seen.all(.expertHidden(layer: seen.layer, expert: e), g.data, width: g.cols, ld: g.cols)
            }
        }
        let sh = shared.map { _ in Matrix(rows: m, cols: hidden, uninitialized: ()) }
        if let shared, let sh {
            shared.forward(h.data, rows: m, ldx: hidden, into: sh.data, ldo: hidden, pool: pool,
                           hidden: seen.map { o in { g, ld in o.all(.mlpHidden(layer: o.layer), g, width: shared.intermediate, ld: ld) } })
        }
        // Per token: 0, + each slot in order, + the shared experts' output (the same order however
        // the rows are split).
        pool.forRows(m, width: hidden * (k + 1)) { rr in
            for t in rr {
                let o = out.row(t)
                o.update(repeating: 0, count: hidden)
                for s in 0..<k { ek_axpy(Int32(hidden), 1, slots.row(t * k + s), o) }
                if let sh { ek_axpy(Int32(hidden), 1, sh.row(t), o) }
            }
        }
    }
}
