/// Receives progress from a conversion (the CLI draws a bar or prints log lines from these).
/// Called from the converting thread only.
public protocol ConversionObserver: AnyObject {
    /// The work this run will do: output shards, tensors and input bytes (after jobs filtering).
    func started(shards: Int, tensors: Int, inputBytes: Int)
    /// An output shard that was already complete and verified.
    func skipped(shard: String, tensors: Int, inputBytes: Int)
    /// One tensor done (`inputBytes` read for it).
    func tensorDone(_ name: String, inputBytes: Int)
    /// One output shard renamed into place.
    func shardDone(_ name: String, bytes: Int)
    /// A plain message for the log.
    func note(_ message: String)
}

/// Ignores everything.
public final class SilentObserver: ConversionObserver {
    public init() {}
    public func started(shards: Int, tensors: Int, inputBytes: Int) {}
    public func skipped(shard: String, tensors: Int, inputBytes: Int) {}
    public func tensorDone(_ name: String, inputBytes: Int) {}
    public func shardDone(_ name: String, bytes: Int) {}
    public func note(_ message: String) {}
}
