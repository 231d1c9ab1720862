/// Problems with a conversion run as a whole.
public enum ConversionError: Error, CustomStringConvertible, Sendable {
    case invalidOptions(String)
    case outputIsInput(String)
    case incomplete(directory: String, missing: [String])
    case notAConversionDirectory(String)
    case corruptShard(path: String, String)

    public var description: String {
        switch self {
        case let .invalidOptions(m): return m
        case let .outputIsInput(d): return "\(d): the output directory must not be the input directory"
        case let .incomplete(d, missing):
            let shown = missing.prefix(8).joined(separator: ", ")
            return "\(d): \(missing.count) output shard(s) are not complete yet (\(shown)\(missing.count > 8 ? ", …" : "")); run the remaining jobs (or the same command again) first"
        case let .notAConversionDirectory(d):
            return "\(d): no \(ResumeRecord.directoryName)/plan.json here; merge-index completes a directory that `quantize`/`dequantize --jobs N` wrote into"
        case let .corruptShard(p, m): return "\(p): \(m)"
        }
    }
}
