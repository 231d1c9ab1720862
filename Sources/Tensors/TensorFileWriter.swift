/// The writer seam: one output file holding a list of tensors declared up front.
///
/// Tensors are written in the declared order, each in as many pieces as the caller likes, so a
/// writer never holds more than the piece in hand. Output goes to a temporary and appears under
/// its final name only in `finish()`; `abort()` (or dropping an unfinished writer) removes the
/// temporary.
public protocol TensorFileWriter: AnyObject {
    /// The final path.
    var path: String { get }
    /// The tensors, in file order.
    var specs: [TensorSpec] { get }
    /// Size of the finished file.
    var fileSize: Int { get }
    /// Called with every byte range written, in file order (e.g. to hash the file).
    var observer: ((UnsafeRawBufferPointer) -> Void)? { get set }
    /// Called once per tensor when its last byte is written, with the tensor's index in `specs`
    /// (e.g. for a per-tensor checksum table).
    var tensorCompleted: ((Int) -> Void)? { get set }
    /// Appends `bytes` to tensor `name`, which must be the tensor in progress or the next one.
    func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws
    /// Writes consecutive pieces whose bytes lie one after another in memory: `bytes` is the
    /// concatenation of the pieces (`count` bytes of tensor `name` each), exactly as `write` of
    /// each piece in turn would lay them out, but in one go (one system call, one observer call).
    /// Nothing is written when a piece is out of order or too large.
    func write(run pieces: [(name: String, count: Int)], _ bytes: UnsafeRawBufferPointer) throws
    /// Completes the file and renames it into place (`durable`: fsync file and directory).
    func finish(durable: Bool) throws
    /// Removes the temporary; the final path is never touched.
    func abort()
}

extension TensorFileWriter {
    /// Piece by piece (a format without a faster way).
    public func write(run pieces: [(name: String, count: Int)], _ bytes: UnsafeRawBufferPointer) throws {
        precondition(pieces.reduce(0) { $0 + $1.count } == bytes.count, "a run's pieces must add up to its bytes")
        var at = 0
        for (name, count) in pieces {
            try write(name, UnsafeRawBufferPointer(rebasing: bytes[at..<(at + count)]))
            at += count
        }
    }
}

/// A file format the converter can write (safetensors, dspack): how big a file of these
/// tensors will be, and a writer for it.
public protocol TensorFileFormat: Sendable {
    /// `safetensors` or `dspack`.
    var name: String { get }
    /// The file-name extension, without the dot.
    var fileExtension: String { get }
    /// The exact size of a file holding `tensors` in this order.
    func fileSize(of tensors: [TensorSpec]) throws -> Int
    /// A running size for a file that tensors are appended to (how layouts cut files at a size
    /// limit without re-deriving the format's header).
    func makeSizer() -> TensorFileSizer
    /// A writer for `tensors` at `path`.
    func makeWriter(path: String, tensors: [TensorSpec]) throws -> TensorFileWriter
    /// A writer for the plan's output `output` (its relative name, e.g.
    /// `rank-00001-of-00002/model.dspack`) at `path`: a format whose files differ by output (a
    /// pack per rank, each embedding its own rank.json) chooses by it; others ignore it.
    func makeWriter(path: String, output: String, tensors: [TensorSpec]) throws -> TensorFileWriter
    /// True for a format whose files carry the model's other files themselves (a .dspack embeds
    /// config.json and the tokenizer): a conversion then writes no index, config.json or copies
    /// beside them.
    var embedsModelFiles: Bool { get }
}

extension TensorFileFormat {
    public var embedsModelFiles: Bool { false }
    public func makeWriter(path: String, output: String, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try makeWriter(path: path, tensors: tensors)
    }
}

/// The size of a file of some format as tensors are appended to it.
public protocol TensorFileSizer {
    mutating func append(_ spec: TensorSpec)
    /// Size of a file holding every tensor appended so far.
    var fileSize: Int { get }
}
