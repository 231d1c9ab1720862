import Calibration
import Checkpoint
import Engine
import Eval
import SystemIO

/// One `dsconvert calibrate` pass over a text: the text is tokenized once with the model's
/// tokenizer (no special tokens), cut into windows of `context` ids (window k is
/// ids[k·C ..< (k+1)·C]; a partial last window is dropped), and the first `samples` windows
/// (all of them when nil) run through the engine `batch` at a time with a HistogramCollector,
/// each window one batch of every histogram.
public struct CalibrationPass {
    public struct Options: Sendable {
        public var context = 256
        /// Windows to use; nil: every full window of the text.
        public var samples: Int?
        /// Windows per forward call.
        public var batch = 1
        public var experts: ExpertObservation = .allExperts
        /// An input whose raw rows to keep (CalibrationResult.dumped).
        public var dumpInput: String?
        /// SmoothQuant's α (`--smooth`): a first pass measures max |X_j| per channel of every norm
        /// output, s follows (Smoothing), and the histograms are those of X / s.
        public var smooth: Double?
        public init() {}
    }

    public struct Result {
        public var histograms: HistogramFile
        /// Windows run, and the full windows the text holds.
        public var windows: Int
        public var windowsAvailable: Int
        /// `samples` was given and the text holds fewer windows.
        public var shortOf: Int?
        public var textTokens: Int
        public var seconds: Double
        public var dumped: [(window: Int, rows: Int, width: Int, values: [Float])]
        public var tokens: Int { histograms.ctx * windows }
        /// `smooth`: one entry per smoothed norm output, the inputs left as they are (no norm
        /// before them) with the reason, and the first pass's seconds.
        public var smoothing: [SmoothingEntry] = []
        public var notSmoothed: [(name: String, reason: String)] = []
        public var channelSeconds = 0.0
    }

    public let model: EvalModel
    public let options: Options
    public let pool: WorkerPool

    public init(model: EvalModel, options: Options, pool: WorkerPool) {
        self.model = model
        self.options = options
        self.pool = pool
    }

    /// The windows of `text` this pass runs.
    public func windows(of text: String, file: String) throws -> (windows: [[Int]], available: Int, textTokens: Int) {
        let ids = model.tokenizer.encode(text, addSpecialTokens: false)
        let c = options.context
        let available = ids.count / c
        guard available > 0 else { throw CalibrationError.textTooShort(file: file, tokens: ids.count, context: c) }
        let n = min(options.samples ?? available, available)
        return ((0..<n).map { k in ids[k * c ..< (k + 1) * c].map { Int($0) } }, available, ids.count)
    }

    /// Runs the pass; `progress` sees the tokens as they run. `label` names the model in the file.
    public func run(textFile: String, label: String, progress: EvalObserver? = nil) throws -> Result {
        let text = try Evaluation.readText(textFile)
        let (ws, available, textTokens) = try windows(of: text, file: textFile)
        let c = options.context
        let cache = KVCache(config: model.model.config, batch: options.batch, capacity: c)
        /// Runs every window through the engine with `observer`.
        func pass(_ what: String, _ observer: ActivationObserver, windowBase: (Int) -> Void, check: () throws -> Void) throws -> Double {
            progress?.begin(what, tokens: ws.count * c)
            let t0 = MonotonicClock.seconds()
            var k = 0
            while k < ws.count {
                let b = min(options.batch, ws.count - k)
                let batchCache = b == options.batch ? cache : KVCache(config: model.model.config, batch: b, capacity: c)
                batchCache.reset()
                windowBase(k)
                _ = try model.model.forward(Array(ws[k ..< k + b]), cache: batchCache, logits: .last, pool: pool, observer: observer)
                try check()
                k += b
                progress?.advance(tokens: b * c)
            }
            progress?.end()
            return MonotonicClock.seconds() - t0
        }
        var plan: SmoothingPlan?
        var channelSeconds = 0.0
        if let alpha = options.smooth {
            let p = try SmoothingPlan(model: model, experts: options.experts)
            let maxima = ChannelMaxCollector(experts: SmoothingPlan.measureMode, sites: p.sites)
            channelSeconds = try pass("channel maxima", maxima, windowBase: { maxima.windowBase = $0 }, check: {
                try maxima.checkFinite(consumers: { n in p.consumers[n] ?? [] })
            })
            try p.computeScales(maxima, alpha: alpha)
            plan = p
        }
        let collector = try HistogramCollector(model: model.model, experts: options.experts, dump: options.dumpInput, divisors: plan?.divisors ?? [:])
        let seconds = try pass("calibration", collector, windowBase: { collector.windowBase = $0 }, check: { try collector.checkFinite() })
        let file = HistogramFile(model: label, ctx: c, windows: ws.count, expertMode: options.experts.rawValue, inputs: collector.observedInputs())
        let short = options.samples.flatMap { $0 > available ? $0 : nil }
        var r = Result(histograms: file, windows: ws.count, windowsAvailable: available, shortOf: short,
                       textTokens: textTokens, seconds: seconds, dumped: collector.dumped)
        if let plan {
            r.smoothing = plan.entries
            r.notSmoothed = plan.notSmoothed
            r.channelSeconds = channelSeconds
        }
        return r
    }
}
