/// A histogram of |x| grown as NVIDIA's histogram calibrator grows it (pytorch-quantization
/// `calib/histogram.py`, identical in ModelOpt; Formats/calibration.md):
/// the first batch fixes the bin width (its max |x| / `initialBins`), a later batch with a larger
/// max keeps that width and appends bins (ceil(max / width) in all), earlier counts are kept.
/// One batch is one `--ctx` window.
public struct AbsHistogram: Sendable, Equatable {
    public static let defaultBins = 2048
    public let initialBins: Int
    /// Width of one bin; 0 until the first non-empty batch with a positive maximum.
    public private(set) var binWidth: Double = 0
    public private(set) var counts: [Double] = []
    /// The largest |x| seen (min-max calibration reads it).
    public private(set) var maxSeen: Double = 0

    public init(initialBins: Int = AbsHistogram.defaultBins) {
        precondition(initialBins > 0)
        self.initialBins = initialBins
    }

    /// Upper edge of bin i (edges[i] in the reference: i × width).
    public func edge(_ i: Int) -> Double { Double(i) * binWidth }

    /// The largest |x| of a batch, or nil when it holds a NaN or an infinity (the caller names
    /// the layer).
    public static func absMax(_ values: UnsafeBufferPointer<Float>) -> Float? {
        // |x|'s bits (sign cleared) order as |x| does, and a NaN or an infinity has bits ≥
        // 0x7F800000: one integer max (it vectorises) gives both the maximum and the check.
        guard let base = values.baseAddress else { return 0 }
        var mb: UInt32 = 0
        base.withMemoryRebound(to: UInt32.self, capacity: values.count) { u in
            for k in 0..<values.count {
                let a = u[k] & 0x7FFF_FFFF
                mb = a > mb ? a : mb
            }
        }
        return mb < 0x7F80_0000 ? Float(bitPattern: mb) : nil
    }

    /// Adds one batch. Non-finite values are the caller's to reject before (it names the layer).
    public mutating func add(batch values: UnsafeBufferPointer<Float>) {
        var m: Float = 0
        for v in values { m = max(m, abs(v)) }
        add(batch: values, absMax: m)
    }

    /// Adds one batch whose largest |x| (`absMax(values)`) is known.
    public mutating func add(batch values: UnsafeBufferPointer<Float>, absMax m: Float) {
        let batchMax = Double(m)
        if counts.isEmpty {
            guard batchMax > 0 else {
                // An all-zero first batch: the reference's histc over [0, 0] puts every value in bin 0
                // with no usable width; wait for a batch that sets the width, counting nothing here.
                return
            }
            binWidth = batchMax / Double(initialBins)
            counts = [Double](repeating: 0, count: initialBins)
        } else if batchMax > Double(counts.count) * binWidth {
            let n = Int((batchMax / binWidth).rounded(.up))
            counts.append(contentsOf: [Double](repeating: 0, count: max(0, n - counts.count)))
        }
        maxSeen = max(maxSeen, batchMax)
        let top = Double(counts.count) * binWidth
        let last = counts.count - 1
        let perBin = Double(counts.count) / top
        counts.withUnsafeMutableBufferPointer { c in
            for v in values {
                let a = Double(abs(v))
                // torch.histc: bin = floor(x · nbins / (max − min)), x == max into the last bin.
                let b = Int(a * perBin)
                c[b > last ? last : b] += 1
            }
        }
    }

    public mutating func add(batch values: [Float]) {
        values.withUnsafeBufferPointer { add(batch: $0) }
    }

    /// Rebuilds a histogram read from a histogram file (Formats/calibration.md).
    public init(binWidth: Double, counts: [Double], maxSeen: Double, initialBins: Int = AbsHistogram.defaultBins) {
        self.initialBins = initialBins
        self.binWidth = binWidth
        self.counts = counts
        self.maxSeen = maxSeen
    }
}
