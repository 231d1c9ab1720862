import Foundation

/// A proportion with its binomial standard error sqrt(p(1 − p) / (n − 1)), as llama.cpp reports
/// "Same top p".
public struct Agreement: Sendable {
    public private(set) var hits = 0, count = 0
    public init() {}
    public mutating func record(_ hit: Bool) { count += 1; if hit { hits += 1 } }
    public var fraction: Double { Double(hits) / Double(count) }
    public var error: Double {
        guard count > 1 else { return .nan }
        let p = fraction
        return (p * (1 - p) / Double(count - 1)).squareRoot()
    }
}
