import JSON
import Numerics
import SystemIO

/// One observed input in a histogram file: the |x| histogram of one distinct linear-layer input
/// (the layers reading it are its consumers) and how many tokens reached it.
public struct ObservedInput: Sendable, Equatable {
    public var name: String
    public var consumers: [String]
    public var tokens: Int
    /// A routed expert's input: the tokens the router sent to that expert (in "all" mode every
    /// token reaches it for statistics, so `tokens` counts all of them). nil for other inputs.
    public var routedTokens: Int?
    public var histogram: AbsHistogram

    public init(name: String, consumers: [String], tokens: Int, routedTokens: Int? = nil, histogram: AbsHistogram) {
        self.name = name
        self.consumers = consumers
        self.tokens = tokens
        self.routedTokens = routedTokens
        self.histogram = histogram
    }
}

/// The histogram file (Formats/calibration.md, "Histogram file", version 1): magic, a JSON header,
/// every input's counts as little-endian f64, and an XXH64 of all that. Written by the engine's
/// observers and by the Python collector; `calibrate --from-histograms` reads it.
public struct HistogramFile: Sendable, Equatable {
    public static let magic: [UInt8] = Array("DSHIST01".utf8)
    public static let version = 1
    static let format = "histograms"

    /// The model the histograms were collected on (its folder name or path, as the writer gives it).
    public var model: String
    /// Tokens per window (one batch of the histograms).
    public var ctx: Int
    public var windows: Int
    /// "all" (every token through every routed expert, statistics only) or "routed".
    public var expertMode: String
    public var inputs: [ObservedInput]

    public init(model: String, ctx: Int, windows: Int, expertMode: String, inputs: [ObservedInput]) {
        self.model = model
        self.ctx = ctx
        self.windows = windows
        self.expertMode = expertMode
        self.inputs = inputs
    }

    // MARK: writing

    public func encoded() -> [UInt8] {
        var entries: [JSONValue] = []
        var offset = 0
        for i in inputs {
            let h = i.histogram
            var members: [(String, JSONValue)] = [
                ("name", .string(i.name)),
                ("consumers", .array(i.consumers.map { .string($0) })),
                ("tokens", .int(i.tokens)),
            ]
            if let r = i.routedTokens { members.append(("routed_tokens", .int(r))) }
            entries.append(.object(members + [
                ("bins", .int(h.counts.count)),
                ("initial_bins", .int(h.initialBins)),
                ("bin_width", .double(h.binWidth)),
                ("max", .double(h.maxSeen)),
                ("offset", .int(offset)),
            ]))
            offset += h.counts.count * 8
        }
        let header = JSONValue.object([
            ("format", .string("dsconvert-histograms")),
            ("version", .int(Self.version)),
            ("model", .string(model)),
            ("ctx", .int(ctx)),
            ("windows", .int(windows)),
            ("expert_mode", .string(expertMode)),
            ("inputs", .array(entries)),
        ])
        let json = Array(JSONWriter.compact(header).utf8)
        var out = Self.magic
        out.reserveCapacity(16 + json.count + offset + 8)
        appendLE(UInt64(json.count), to: &out)
        out += json
        for i in inputs {
            for c in i.histogram.counts { appendLE(c.bitPattern, to: &out) }
        }
        let digest = out.withUnsafeBytes { XXH64.hash($0) }
        appendLE(digest, to: &out)
        return out
    }

    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }

    // MARK: reading

    public static func read(_ path: String) throws -> HistogramFile {
        try decode(try Sys.readFile(path, limit: 1 << 40), file: path)
    }

    public static func decode(_ bytes: [UInt8], file: String? = nil) throws(CalibrationFileError) -> HistogramFile {
        func fail(_ k: CalibrationFileError.Kind, input: String? = nil, at offset: Int? = nil, _ m: String) -> CalibrationFileError {
            CalibrationFileError(k, format: format, file: file, input: input, offset: offset, m)
        }
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else {
            throw fail(.badMagic, at: 0, "not a dsconvert histogram file (it does not start with \"DSHIST01\")")
        }
        guard bytes.count >= 24 else { throw fail(.truncated, at: bytes.count, "\(bytes.count) bytes, shorter than magic, header length and checksum") }
        let stored = readLE(bytes, at: bytes.count - 8)
        let actual = bytes.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<(bytes.count - 8)])) }
        let headerLength = readLE(bytes, at: 8)
        guard headerLength <= UInt64(bytes.count - 24) else {
            throw fail(.truncated, at: 8, "header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
        }
        guard stored == actual else {
            throw fail(.checksum, at: bytes.count - 8, "XXH64 \(XXH64.hex(actual)) of the file does not match the stored \(XXH64.hex(stored)): the file is damaged or truncated")
        }
        let dataStart = 16 + Int(headerLength)
        let header: JSONValue
        do {
            header = try JSONParser.parse(Array(bytes[16..<dataStart]))
        } catch {
            throw fail(.header, at: 16 + error.byteOffset, "header: \(error.message)")
        }
        guard header["format"]?.stringValue == "dsconvert-histograms" else { throw fail(.header, at: 16, "header: \"format\" is not \"dsconvert-histograms\"") }
        guard let version = header["version"]?.intValue else { throw fail(.header, at: 16, "header: \"version\" is missing") }
        guard version == Self.version else { throw fail(.unsupportedVersion, at: 16, "version \(version); this dsconvert reads version \(Self.version)") }
        guard let model = header["model"]?.stringValue, let ctx = header["ctx"]?.intValue, ctx > 0,
              let windows = header["windows"]?.intValue, windows >= 0,
              let mode = header["expert_mode"]?.stringValue, mode == "all" || mode == "routed",
              let entries = header["inputs"]?.arrayValue
        else { throw fail(.header, at: 16, "header: model, ctx (> 0), windows (≥ 0), expert_mode (all / routed) and inputs are required") }
        let dataLength = bytes.count - 8 - dataStart
        var inputs: [ObservedInput] = []
        var expected = 0
        var names = Set<String>()
        for e in entries {
            guard let name = e["name"]?.stringValue else { throw fail(.header, at: 16, "header: an input without a name") }
            guard names.insert(name).inserted else { throw fail(.header, input: name, at: 16, "input listed twice") }
            guard let consumers = e["consumers"]?.arrayValue?.compactMap(\.stringValue),
                  let tokens = e["tokens"]?.intValue, tokens >= 0,
                  let bins = e["bins"]?.intValue, bins >= 0,
                  let initial = e["initial_bins"]?.intValue, initial > 0,
                  let width = e["bin_width"]?.doubleValue, let maxSeen = e["max"]?.doubleValue,
                  let offset = e["offset"]?.intValue
            else { throw fail(.header, input: name, at: 16, "header: consumers, tokens, bins, initial_bins, bin_width, max and offset are required") }
            let routed = e["routed_tokens"]
            guard routed == nil || (routed?.intValue ?? -1) >= 0 else {
                throw fail(.header, input: name, at: 16, "header: routed_tokens is a non-negative integer when present")
            }
            guard offset == expected else {
                throw fail(.sizeMismatch, input: name, at: 16, "counts at data offset \(offset); they must follow the previous input's, at \(expected)")
            }
            guard width.isFinite, maxSeen.isFinite, maxSeen >= 0, bins == 0 ? width == 0 : width > 0, bins == 0 || bins >= initial,
                  maxSeen <= Double(bins) * width
            else { throw fail(.badValue, input: name, at: 16, "bin_width \(width), max \(maxSeen), \(bins) bins (initial \(initial)) do not describe a histogram (width > 0 when there are bins, bins ≥ initial_bins, max ≤ bins × width)") }
            expected += bins * 8
            guard expected <= dataLength else {
                throw fail(.sizeMismatch, input: name, at: dataStart + offset, "\(bins) bins need \(bins * 8) bytes at data offset \(offset); the data region holds \(dataLength)")
            }
            var counts = [Double](repeating: 0, count: bins)
            for k in 0..<bins {
                let at = dataStart + offset + 8 * k
                let c = Double(bitPattern: readLE(bytes, at: at))
                guard c.isFinite, c >= 0 else { throw fail(.badValue, input: name, at: at, "bin \(k) holds \(c); counts are finite and non-negative") }
                counts[k] = c
            }
            inputs.append(ObservedInput(name: name, consumers: consumers, tokens: tokens, routedTokens: routed?.intValue,
                                        histogram: AbsHistogram(binWidth: width, counts: counts, maxSeen: maxSeen, initialBins: initial)))
        }
        guard expected == dataLength else {
            throw fail(.sizeMismatch, at: dataStart + expected, "the data region holds \(dataLength) bytes; the header accounts for \(expected)")
        }
        return HistogramFile(model: model, ctx: ctx, windows: windows, expertMode: mode, inputs: inputs)
    }
}

@inline(__always) func appendLE(_ v: UInt64, to out: inout [UInt8]) {
    for s in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
}

@inline(__always) func readLE(_ b: [UInt8], at i: Int) -> UInt64 {
    var v: UInt64 = 0
    for k in 0..<8 { v |= UInt64(b[i + k]) << UInt64(8 * k) }
    return v
}
