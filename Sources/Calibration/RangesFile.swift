import JSON
import SystemIO

/// The range chosen for one observed input.
public struct InputRange: Sendable, Equatable {
    public var name: String
    public var consumers: [String]
    public var tokens: Int
    /// A routed expert's input: the tokens the router sent to the expert (ObservedInput).
    public var routedTokens: Int?
    public var amax: Double
    /// The histogram bin the search chose (nil for min-max).
    public var bin: Int?

    public init(name: String, consumers: [String], tokens: Int, routedTokens: Int? = nil, amax: Double, bin: Int?) {
        self.name = name
        self.consumers = consumers
        self.tokens = tokens
        self.routedTokens = routedTokens
        self.amax = amax
        self.bin = bin
    }
}

/// ranges.json (Formats/calibration.md, "ranges.json", version 1): what `calibrate` writes and
/// `quantize --act static --ranges` reads.
public struct RangesFile: Sendable, Equatable {
    public static let version = 1
    static let format = "ranges"

    public var model: String
    /// kl, percentile, mse or minmax.
    public var method: String
    public var target: CalibrationTarget
    /// The percentile used (only with method percentile).
    public var percentile: Double?
    public var ctx: Int
    public var windows: Int
    public var expertMode: String
    public var inputs: [InputRange]
    /// SmoothQuant (`calibrate --smooth ALPHA`): α, and one entry per smoothed norm output; the
    /// ranges of those outputs' inputs are then those of the smoothed activations X / s.
    public var smoothAlpha: Double?
    public var smoothing: [SmoothingEntry]

    public init(model: String, method: String, target: CalibrationTarget, percentile: Double?, ctx: Int, windows: Int, expertMode: String, inputs: [InputRange],
                smoothAlpha: Double? = nil, smoothing: [SmoothingEntry] = []) {
        self.model = model
        self.method = method
        self.target = target
        self.percentile = percentile
        self.ctx = ctx
        self.windows = windows
        self.expertMode = expertMode
        self.inputs = inputs
        self.smoothAlpha = smoothAlpha
        self.smoothing = smoothing
    }

    public static let methods = ["kl", "percentile", "mse", "minmax"]

    public func json() -> JSONValue {
        func floats(_ v: [Float]) -> JSONValue { .array(v.map { .double(Double($0)) }) }
        var smooth: [(String, JSONValue)] = []
        if let a = smoothAlpha {
            smooth = [("smooth_alpha", .double(a)), ("smoothing", .array(smoothing.map { e in
                .object([("norm", .string(e.norm)), ("consumers", .array(e.consumers.map { .string($0) })),
                         ("act_max", floats(e.actMax)), ("weight_max", floats(e.weightMax)), ("scales", floats(e.scales))])
            }))]
        }
        return .object([
            ("format", .string("dsconvert-ranges")),
            ("version", .int(Self.version)),
            ("model", .string(model)),
            ("method", .string(method)),
            ("target", .string(target.rawValue)),
            ("percentile", percentile.map { .double($0) } ?? .null),
            ("ctx", .int(ctx)),
            ("windows", .int(windows)),
            ("expert_mode", .string(expertMode)),
            ("inputs", .array(inputs.map { r in
                var members: [(String, JSONValue)] = [
                    ("name", .string(r.name)),
                    ("consumers", .array(r.consumers.map { .string($0) })),
                    ("tokens", .int(r.tokens)),
                ]
                if let t = r.routedTokens { members.append(("routed_tokens", .int(t))) }
                return .object(members + [
                    ("amax", .double(r.amax)),
                    ("bin", r.bin.map { .int($0) } ?? .null),
                ])
            })),
        ] + smooth)
    }

    public func encoded() -> [UInt8] { Array(JSONWriter.pretty(json()).utf8) }

    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }

    public static func read(_ path: String) throws -> RangesFile {
        try decode(try Sys.readFile(path, limit: 1 << 30), file: path)
    }

    public static func decode(_ bytes: [UInt8], file: String? = nil) throws(CalibrationFileError) -> RangesFile {
        func fail(_ k: CalibrationFileError.Kind, input: String? = nil, at offset: Int? = nil, _ m: String) -> CalibrationFileError {
            CalibrationFileError(k, format: format, file: file, input: input, offset: offset, m)
        }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw fail(.header, at: error.byteOffset, error.message) }
        guard v["format"]?.stringValue == "dsconvert-ranges" else { throw fail(.badMagic, "\"format\" is not \"dsconvert-ranges\"") }
        guard let version = v["version"]?.intValue else { throw fail(.header, "\"version\" is missing") }
        guard version == Self.version else { throw fail(.unsupportedVersion, "version \(version); this dsconvert reads version \(Self.version)") }
        guard let model = v["model"]?.stringValue,
              let method = v["method"]?.stringValue, methods.contains(method),
              let target = v["target"]?.stringValue.flatMap(CalibrationTarget.init(rawValue:)),
              let ctx = v["ctx"]?.intValue, let windows = v["windows"]?.intValue,
              let mode = v["expert_mode"]?.stringValue, mode == "all" || mode == "routed",
              let entries = v["inputs"]?.arrayValue
        else { throw fail(.header, "model, method (kl / percentile / mse / minmax), target (int8 / fp8), ctx, windows, expert_mode (all / routed) and inputs are required") }
        let percentile = v["percentile"]?.doubleValue
        if method == "percentile" {
            guard let p = percentile, p > 0, p <= 100 else { throw fail(.badValue, "method percentile needs \"percentile\" in (0, 100]") }
        }
        var inputs: [InputRange] = []
        var names = Set<String>()
        for e in entries {
            guard let name = e["name"]?.stringValue else { throw fail(.header, "an input without a name") }
            guard names.insert(name).inserted else { throw fail(.header, input: name, "input listed twice") }
            guard let consumers = e["consumers"]?.arrayValue?.compactMap(\.stringValue),
                  let tokens = e["tokens"]?.intValue, let amax = e["amax"]?.doubleValue
            else { throw fail(.header, input: name, "consumers, tokens and amax are required") }
            guard amax.isFinite, amax > 0 else { throw fail(.badValue, input: name, "amax \(amax); a range is finite and positive") }
            let routed = e["routed_tokens"]
            guard routed == nil || (routed?.intValue ?? -1) >= 0 else { throw fail(.header, input: name, "routed_tokens is a non-negative integer when present") }
            inputs.append(InputRange(name: name, consumers: consumers, tokens: tokens, routedTokens: routed?.intValue, amax: amax, bin: e["bin"]?.intValue))
        }
        var alpha: Double?
        var smoothing: [SmoothingEntry] = []
        if let a = v["smooth_alpha"], a != .null {
            guard let x = a.doubleValue, x.isFinite, x >= 0, x <= 1 else { throw fail(.badValue, "\"smooth_alpha\" is a number from 0 to 1") }
            alpha = x
            guard let entries = v["smoothing"]?.arrayValue else { throw fail(.header, "\"smooth_alpha\" needs the \"smoothing\" list") }
            var norms = Set<String>()
            for e in entries {
                guard let norm = e["norm"]?.stringValue else { throw fail(.header, "a smoothing entry without a norm") }
                guard norms.insert(norm).inserted else { throw fail(.header, input: norm, "smoothing entry listed twice") }
                guard let consumers = e["consumers"]?.arrayValue?.compactMap(\.stringValue), !consumers.isEmpty else {
                    throw fail(.header, input: norm, "smoothing: \"consumers\" (the modules reading the norm's output) is required")
                }
                /// An f32 vector whose every element is finite and (for s) positive.
                func vector(_ key: String, positive: Bool) throws(CalibrationFileError) -> [Float] {
                    guard let a = e[key]?.arrayValue else { throw fail(.header, input: norm, "smoothing: \"\(key)\" (a list of numbers) is required") }
                    var out: [Float] = []
                    out.reserveCapacity(a.count)
                    for (j, x) in a.enumerated() {
                        guard let d = x.doubleValue, Float(d).isFinite, positive ? Float(d) > 0 : d >= 0 else {
                            let shown: String
                            if case let .number(t) = x { shown = t } else { shown = "\(x)" }
                            throw fail(.badValue, input: norm, "smoothing \(key)[\(j)] is \(shown); it must be a finite \(positive ? "positive" : "non-negative") f32")
                        }
                        out.append(Float(d))
                    }
                    return out
                }
                let s = try vector("scales", positive: true)
                let am = try vector("act_max", positive: false), wm = try vector("weight_max", positive: false)
                guard !s.isEmpty, am.count == s.count, wm.count == s.count else {
                    throw fail(.sizeMismatch, input: norm, "smoothing: scales (\(s.count)), act_max (\(am.count)) and weight_max (\(wm.count)) must have one value per channel each")
                }
                smoothing.append(SmoothingEntry(norm: norm, consumers: consumers, actMax: am, weightMax: wm, scales: s))
            }
        } else if v["smoothing"] != nil && v["smoothing"] != .null {
            throw fail(.header, "\"smoothing\" needs \"smooth_alpha\"")
        }
        return RangesFile(model: model, method: method, target: target, percentile: percentile, ctx: ctx, windows: windows, expertMode: mode, inputs: inputs,
                          smoothAlpha: alpha, smoothing: smoothing)
    }
}
