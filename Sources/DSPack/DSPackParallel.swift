import JSON

/// Formats/dspack.md §6: the parallel plan a pack was cut for and the rank it is, from its
/// metadata; and the check that a set of packs is exactly the ranks of one plan (what a
/// deployment copies to its hosts, and what `dsconvert verify DIR` checks before serving).
public struct DSPackParallel: Equatable, Sendable {
    public var worldSize: Int, rank: Int
    public var tpSize: Int, tpRank: Int
    public var ppSize: Int, ppRank: Int
    public var epSize: Int, epRank: Int

    /// `metadata.parallel`, or nil when it is absent or any of its eight integers is missing.
    public init?(metadata: JSONValue) {
        guard let p = metadata["parallel"] else { return nil }
        func int(_ k: String) -> Int? { p[k]?.intValue }
        guard let w = int("world_size"), let r = int("rank"), let t = int("tp_size"), let tr = int("tp_rank"),
              let s = int("pp_size"), let sr = int("pp_rank"), let e = int("ep_size"), let er = int("ep_rank") else { return nil }
        worldSize = w; rank = r; tpSize = t; tpRank = tr; ppSize = s; ppRank = sr; epSize = e; epRank = er
    }

    /// What is wrong with this rank on its own (§6's arithmetic), or nil.
    public var problem: String? {
        guard tpSize >= 1, ppSize >= 1, epSize >= 1 else { return "tp_size \(tpSize), pp_size \(ppSize), ep_size \(epSize): each must be at least 1" }
        guard worldSize == tpSize * ppSize else { return "world_size \(worldSize) is not tp_size × pp_size = \(tpSize * ppSize)" }
        guard (0..<tpSize).contains(tpRank), (0..<ppSize).contains(ppRank) else { return "tp_rank \(tpRank) / pp_rank \(ppRank) outside tp_size \(tpSize) / pp_size \(ppSize)" }
        guard rank == ppRank * tpSize + tpRank else { return "rank \(rank) is not pp_rank × tp_size + tp_rank = \(ppRank * tpSize + tpRank)" }
        let wantEP = epSize > 1 ? tpRank % epSize : 0
        guard epRank == wantEP else { return "ep_rank \(epRank), expected \(wantEP) (expert parallelism shares the tensor-parallel ranks)" }
        return nil
    }

    /// The problems of `packs` read as the ranks of one sharded model: every pack names a plan,
    /// all the same plan, each rank valid and present exactly once. Empty when they are.
    public static func checkRanks(_ packs: [(path: String, metadata: JSONValue)]) -> [DSPackError] {
        var errors: [DSPackError] = []
        func fail(_ path: String, _ m: String) { errors.append(DSPackError(.planMismatch, file: path, "plan_mismatch: " + m)) }
        var ranks: [(String, DSPackParallel)] = []
        for (path, m) in packs {
            guard let p = DSPackParallel(metadata: m) else { fail(path, "metadata.parallel is missing or incomplete (§6)"); continue }
            if let why = p.problem { fail(path, why); continue }
            ranks.append((path, p))
        }
        guard let (firstPath, first) = ranks.first else { return errors }
        var seen: [Int: String] = [:]
        for (path, p) in ranks {
            if (p.worldSize, p.tpSize, p.ppSize, p.epSize) != (first.worldSize, first.tpSize, first.ppSize, first.epSize) {
                fail(path, "cut for TP \(p.tpSize) × PP \(p.ppSize) (EP \(p.epSize)), but \(firstPath) for TP \(first.tpSize) × PP \(first.ppSize) (EP \(first.epSize))")
                continue
            }
            if let other = seen[p.rank] { fail(path, "rank \(p.rank) again (also \(other))") } else { seen[p.rank] = path }
        }
        let missing = (0..<first.worldSize).filter { seen[$0] == nil }
        if !missing.isEmpty, errors.isEmpty {
            fail(firstPath, "the plan has \(first.worldSize) ranks; missing rank\(missing.count == 1 ? "" : "s") \(missing.prefix(8).map(String.init).joined(separator: ", "))\(missing.count > 8 ? ", …" : "")")
        }
        return errors
    }
}
