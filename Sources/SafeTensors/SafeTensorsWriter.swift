import JSON
import SystemIO

/// Streams one safetensors file to disk.
///
/// The header is computed up front from the tensor list (offsets assigned in the given order),
/// then each tensor's bytes are written in that order, in as many pieces as the caller likes, so
/// the writer never holds more than the piece in hand. Output goes to a temporary beside the
/// destination and is renamed into place by `finish()`; dropping an unfinished writer removes it.
public final class SafeTensorsWriter {
    public let path: String
    public let specs: [TensorSpec]
    /// The complete header block: 8-byte length, JSON, space padding to a multiple of 8.
    public let headerBytes: [UInt8]
    /// Total size of the finished file.
    public let fileSize: Int
    /// Called with every byte range written, in file order (e.g. to compute a checksum).
    public var observer: ((UnsafeRawBufferPointer) -> Void)?

    private let file: AtomicFile
    private var current = 0
    private var writtenInCurrent = 0
    private var started = false

    /// - Parameter metadata: `__metadata__` entries; dsconvert always writes `format: pt`.
    public init(path: String, tensors: [TensorSpec], metadata: [(String, String)]? = [("format", "pt")]) throws {
        self.path = path
        self.specs = tensors
        headerBytes = try SafeTensorsWriter.header(for: tensors, metadata: metadata, file: path)
        fileSize = headerBytes.count + tensors.reduce(0) { $0 + $1.byteCount }
        do {
            file = try AtomicFile(path)
        } catch {
            throw SafeTensorsError.io(error)
        }
    }

    /// The header block for `tensors` in this order.
    public static func header(for tensors: [TensorSpec], metadata: [(String, String)]?, file: String = "<header>") throws -> [UInt8] {
        var members: [(String, JSONValue)] = []
        if let metadata {
            members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) })))
        }
        var offset = 0
        var seen = Set<String>()
        for t in tensors {
            if !seen.insert(t.name).inserted || t.name == "__metadata__" {
                throw SafeTensorsError(.duplicateTensor, file: file, tensor: t.name, "tensor name given twice (or reserved)")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), let size = t.dtype.byteCount(elements: t.elementCount) else {
                throw SafeTensorsError(.invalidShape, file: file, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) has no whole byte size")
            }
            members.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(offset + size)])),
            ])))
            offset += size
        }
        var json = Array(JSONWriter.compact(.object(members)).utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        if Interrupt.requested { file.abort(); throw Interrupted() }
        do {
            try file.write(bytes)
        } catch {
            file.abort()
            throw SafeTensorsError.io(error)
        }
        observer?(bytes)
    }

    private func startIfNeeded() throws {
        if started { return }
        started = true
        try headerBytes.withUnsafeBytes { (b) throws in try emit(b) }
    }

    /// The spec of the tensor whose bytes are expected next, or nil when all are written.
    public var nextTensor: TensorSpec? { current < specs.count ? specs[current] : nil }

    /// Appends bytes of tensor `name`, which must be the next one in order. A tensor may be
    /// written in several pieces; it is complete once its byte size has been reached.
    public func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        try startIfNeeded()
        guard current < specs.count else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "all tensors were already written")
        }
        let spec = specs[current]
        guard spec.name == name else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "written out of order: expected '\(spec.name)' next")
        }
        guard writtenInCurrent + bytes.count <= spec.byteCount else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "\(writtenInCurrent + bytes.count) bytes written, tensor has \(spec.byteCount)")
        }
        try emit(bytes)
        writtenInCurrent += bytes.count
        advancePastCompleted()
    }

    private func advancePastCompleted() {
        while current < specs.count && writtenInCurrent == specs[current].byteCount {
            current += 1
            writtenInCurrent = 0
        }
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (b) throws in try write(name, b) }
    }

    /// Checks every tensor was written in full, then renames the file into place.
    public func finish(durable: Bool = false) throws {
        try startIfNeeded()
        advancePastCompleted()
        if current < specs.count {
            file.abort()
            throw SafeTensorsError(.writerMisuse, file: path, tensor: specs[current].name, "finished before this tensor was written in full")
        }
        do {
            try file.commit(durable: durable)
        } catch {
            throw SafeTensorsError.io(error)
        }
    }

    /// Removes the temporary without writing anything under the final name.
    public func abort() { file.abort() }
}
