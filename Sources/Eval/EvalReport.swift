import Foundation
import JSON

/// Everything one evaluation measured, as JSON (`dsconvert eval --json`) and as the text blocks
/// llama-perplexity prints (its names where they exist: PPL(Q) is the candidate, PPL(base) the
/// reference).
public struct EvalReport: Sendable {
    public let candidatePath: String
    public let referencePath: String?
    public let options: Evaluation.Options
    /// The candidate's run; with a shared tokenizer it holds the reference's log-likelihoods and
    /// the per-token comparison too.
    public var perplexity: PerplexityResult?
    /// The reference's own run when the tokenizers differ (`allowTokenizerMismatch`).
    public var referencePerplexity: PerplexityResult?
    public var candidateChoices: MultipleChoiceResult?
    public var referenceChoices: MultipleChoiceResult?
    /// Whether the models were compared token by token (a reference with the same tokenizer).
    public var tokenizersCompared = false
    /// Tokens the multiple-choice passes ran (both models).
    public var choiceTokens = 0
    public var seconds = 0.0

    public init(candidatePath: String, referencePath: String?, options: Evaluation.Options) {
        self.candidatePath = candidatePath
        self.referencePath = referencePath
        self.options = options
    }

    public var candidatePerplexity: (value: Double, error: Double)? {
        perplexity.map { PerplexityResult.perplexity($0.candidateLogP) }
    }

    public var referencePerplexityValue: (value: Double, error: Double)? {
        if let lp = perplexity?.referenceLogP { return PerplexityResult.perplexity(lp) }
        return referencePerplexity.map { PerplexityResult.perplexity($0.candidateLogP) }
    }

    /// Token-by-token comparison (same windows, same ids).
    public var comparison: PerplexityComparison? { tokenizersCompared ? perplexity?.comparison : nil }

    /// ppl(cand) / ppl(ref), also without the token-by-token comparison.
    public var perplexityRatio: Double? {
        guard let c = candidatePerplexity, let r = referencePerplexityValue else { return nil }
        return c.value / r.value
    }

    public var tokensRun: Int {
        var n = 0
        let models = referencePath == nil ? 1 : 2
        if let p = perplexity { n += p.windows * p.context * (referencePerplexity == nil ? models : 1) }
        if let p = referencePerplexity { n += p.windows * p.context }
        return n + choiceTokens
    }

    static let klQuantiles: [(String, Double)] = [("99.9%", 0.999), ("99.0%", 0.99), ("95.0%", 0.95), ("90.0%", 0.90),
                                                   ("Median", 0.5), ("10.0%", 0.10), (" 5.0%", 0.05), (" 1.0%", 0.01), (" 0.1%", 0.001)]
    static let dpQuantiles: [(String, Double)] = [("99.9%", 0.999), ("99.0%", 0.99), ("95.0%", 0.95), ("90.0%", 0.90), ("75.0%", 0.75),
                                                   ("Median", 0.5), ("25.0%", 0.25), ("10.0%", 0.10), (" 5.0%", 0.05), (" 1.0%", 0.01), (" 0.1%", 0.001)]

    // MARK: JSON

    public var json: JSONValue {
        func model(_ path: String, logP: [Double]?, _ mc: MultipleChoiceResult?) -> JSONValue {
            let p = logP.map(PerplexityResult.perplexity)
            return .object([
                ("path", .string(path)),
                ("perplexity", p.map { .double($0.value) } ?? .null),
                ("perplexity_error", p.map { .double($0.error) } ?? .null),
                ("tokens", logP.map { .int($0.count) } ?? .null),
                ("mc_accuracy", mc.map { .double($0.accuracy.fraction) } ?? .null),
                ("mc_accuracy_norm", mc.map { .double($0.accuracyNormalized.fraction) } ?? .null),
                ("mc_items", mc.map { .int($0.scores.count) } ?? .null),
            ])
        }
        var members: [(String, JSONValue)] = [
            ("candidate", model(candidatePath, logP: perplexity?.candidateLogP, candidateChoices)),
            ("reference", referencePath.map { path in
                model(path, logP: perplexity?.referenceLogP ?? referencePerplexity?.candidateLogP, referenceChoices)
            } ?? .null),
        ]
        var comp: [(String, JSONValue)] = []
        if let r = perplexity, let c = comparison {
            let kq = r.kl.percentiles([0.5, 0.9, 0.95, 0.99, 0.999])
            let dq = r.deltaP.percentiles([0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999])
            comp += [
                ("kl_mean", .double(r.kl.mean)), ("kl_mean_error", .double(r.kl.meanError)),
                ("kl_median", .double(kq[0])), ("kl_p90", .double(kq[1])), ("kl_p95", .double(kq[2])),
                ("kl_p99", .double(kq[3])), ("kl_p999", .double(kq[4])), ("kl_max", .double(r.kl.maximum)),
                ("top1_agreement", .double(r.top1.fraction)), ("top1_agreement_error", .double(r.top1.error)),
                ("ppl_ratio", .double(c.ratio)), ("ppl_ratio_error", .double(c.ratioError)),
                ("ln_ppl_ratio", .double(c.logRatio)), ("ln_ppl_ratio_error", .double(c.logRatioError)),
                ("ppl_difference", .double(c.difference)), ("ppl_difference_error", .double(c.differenceError)),
                ("ln_ppl_correlation", .double(c.correlation)),
                ("delta_p_mean", .double(r.deltaP.mean)), ("delta_p_mean_error", .double(r.deltaP.meanError)),
                ("delta_p_rms", .double(r.deltaP.rms)), ("delta_p_rms_error", .double(r.deltaP.rmsError)),
                ("delta_p_min", .double(r.deltaP.minimum)), ("delta_p_p01", .double(dq[1])), ("delta_p_p05", .double(dq[2])),
                ("delta_p_median", .double(dq[3])), ("delta_p_p95", .double(dq[4])), ("delta_p_p99", .double(dq[5])),
                ("delta_p_max", .double(r.deltaP.maximum)),
            ]
        } else if let ratio = perplexityRatio {
            comp.append(("ppl_ratio", .double(ratio)))
        }
        if let c = candidateChoices, let r = referenceChoices {
            comp.append(("mc_accuracy_delta", .double(c.accuracy.fraction - r.accuracy.fraction)))
            comp.append(("mc_accuracy_norm_delta", .double(c.accuracyNormalized.fraction - r.accuracyNormalized.fraction)))
        }
        members.append(("comparison", referencePath == nil ? .null : .object(comp)))
        members.append(("tokenizers_compared", .bool(tokenizersCompared)))
        members.append(("scheme", .string(options.scheme.rawValue)))
        members.append(("context", .int(options.context)))
        members.append(("windows", perplexity.map { .int($0.windows) } ?? .null))
        members.append(("seconds", .double(seconds)))
        members.append(("tokens_run", .int(tokensRun)))
        members.append(("tokens_per_second", .double(seconds > 0 ? Double(tokensRun) / seconds : 0)))
        return .object(members)
    }

    // MARK: Text

    /// The blocks llama-perplexity prints (`Final estimate: PPL = …` alone; with a reference its
    /// `--kl-divergence` statistics), then multiple choice.
    public var text: String {
        var out: [String] = []
        func f(_ format: String, _ args: CVarArg...) { out.append(String(format: format, arguments: args)) }
        if let r = perplexity {
            f("%d windows of %d tokens (%@ scheme), %d scored tokens", r.windows, r.context, r.scheme.rawValue, r.tokens)
            if let c = comparison {
                out.append("")
                out.append("====== Perplexity statistics ======")
                f("Mean PPL(Q)                   : %10.6f ± %10.6f", c.candPerplexity, c.candPerplexityError)
                f("Mean PPL(base)                : %10.6f ± %10.6f", c.refPerplexity, c.refPerplexityError)
                f("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%", 100 * c.correlation)
                f("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f", c.logRatio, c.logRatioError)
                f("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f", c.ratio, c.ratioError)
                f("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f", c.difference, c.differenceError)
                out.append("")
                out.append("====== KL divergence statistics ======")
                f("Mean    KLD: %10.6f ± %10.6f", r.kl.mean, r.kl.meanError)
                f("Maximum KLD: %10.6f", r.kl.maximum)
                let kq = r.kl.percentiles(Self.klQuantiles.map(\.1))
                for ((name, _), v) in zip(Self.klQuantiles, kq) { f("%@%@KLD: %10.6f", name, name == "Median" ? "  " : "   ", v) }
                f("Minimum KLD: %10.6f", r.kl.minimum)
                out.append("")
                out.append("====== Token probability statistics ======")
                f("Mean    Δp: %6.3f ± %5.3f %%", 100 * r.deltaP.mean, 100 * r.deltaP.meanError)
                f("Maximum Δp: %6.3f%%", 100 * r.deltaP.maximum)
                let dq = r.deltaP.percentiles(Self.dpQuantiles.map(\.1))
                for ((name, _), v) in zip(Self.dpQuantiles, dq) { f("%@%@Δp: %6.3f%%", name, name == "Median" ? "  " : "   ", 100 * v) }
                f("Minimum Δp: %6.3f%%", 100 * r.deltaP.minimum)
                f("RMS Δp    : %6.3f ± %5.3f %%", 100 * r.deltaP.rms, 100 * r.deltaP.rmsError)
                f("Same top p: %6.3f ± %5.3f %%", 100 * r.top1.fraction, 100 * r.top1.error)
            } else {
                if let p = candidatePerplexity { f("Final estimate: PPL = %.4f +/- %.5f  (candidate)", p.value, p.error) }
                if let p = referencePerplexityValue {
                    f("Final estimate: PPL = %.4f +/- %.5f  (reference, its own tokenizer)", p.value, p.error)
                    if let ratio = perplexityRatio { f("PPL(Q)/PPL(base): %.6f (tokenizers differ: no per-token comparison)", ratio) }
                }
            }
        }
        if let c = candidateChoices {
            out.append("")
            out.append("====== Multiple choice ======")
            f("%d items", c.scores.count)
            func row(_ name: String, _ m: MultipleChoiceResult) {
                let a = m.accuracy, n = m.accuracyNormalized
                f("%@ acc     : %7.3f ± %5.3f %%   acc_norm: %7.3f ± %5.3f %%", name, 100 * a.fraction, 100 * a.error, 100 * n.fraction, 100 * n.error)
            }
            row("Q   ", c)
            if let r = referenceChoices {
                row("base", r)
                f("Q − base acc : %+7.3f %%         acc_norm: %+7.3f %%", 100 * (c.accuracy.fraction - r.accuracy.fraction),
                  100 * (c.accuracyNormalized.fraction - r.accuracyNormalized.fraction))
            }
        }
        return out.joined(separator: "\n") + "\n"
    }
}
