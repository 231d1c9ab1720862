import JSON
import SystemIO

/// Streams one safetensors file to disk.
///
/// The header is computed up front from the tensor list (offsets assigned in the given order),
/// then each tensor's bytes are written in that order, in as many pieces as the caller likes, so
/// the writer never holds more than the piece in hand. Output goes to a temporary beside the
/// destination and is renamed into place by `finish()`; dropping an unfinished writer removes it.
public final class SafeTensorsWriter: TensorFileWriter {
    public let path: String
    public let specs: [TensorSpec]
    /// The complete header block: 8-byte length, JSON, space padding to a multiple of 8.
    public let headerBytes: [UInt8]
    /// Total size of the finished file.
    public let fileSize: Int
    /// Called with every byte range written, in file order (e.g. to compute a checksum).
    public var observer: ((UnsafeRawBufferPointer) -> Void)?
    /// Called with a tensor's index in `specs` once its last byte is written.
    public var tensorCompleted: ((Int) -> Void)?

    private let file: AtomicFile
    private var current = 0
    private var writtenInCurrent = 0
    private var started = false
    private enum State { case open, finished, aborted }
    private var state = State.open

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
        do {
            try file.reserve(fileSize)
        } catch {
            file.abort()
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
            // Element count and offsets with overflow checks (TensorSpec.elementCount would trap).
            var elements: Int? = 1
            for d in t.shape {
                guard d >= 0, let e = elements else { elements = nil; break }
                let (m, overflow) = e.multipliedReportingOverflow(by: d)
                elements = overflow ? nil : m
            }
            guard let elements, let size = t.dtype.byteCount(elements: elements) else {
                throw SafeTensorsError(.invalidShape, file: file, tensor: t.name, "\(t.dtype.rawValue) \(t.shape) has no whole, representable byte size")
            }
            let (end, overflow) = offset.addingReportingOverflow(size)
            if overflow {
                throw SafeTensorsError(.invalidShape, file: file, tensor: t.name, "data offsets overflow: the tensors hold more than \(Int.max) bytes")
            }
            members.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(end)])),
            ])))
            offset = end
        }
        var json = JSONWriter.compactBytes(.object(members))
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        if Interrupt.requested { abort(); throw Interrupted() }
        do {
            try file.write(bytes)
        } catch {
            abort()
            throw SafeTensorsError.io(error)
        }
        observer?(bytes)
    }

    /// Throws unless the writer can still take bytes (not finished, not aborted).
    private func checkOpen(_ tensor: String?) throws {
        switch state {
        case .open: return
        case .finished: throw SafeTensorsError(.writerMisuse, file: path, tensor: tensor, "the file was already finished")
        case .aborted: throw SafeTensorsError(.writerMisuse, file: path, tensor: tensor, "the writer was aborted (after an error or on request); nothing was written under this name")
        }
    }

    private func startIfNeeded() throws {
        if started { return }
        started = true
        try headerBytes.withUnsafeBytes { (b) throws in try emit(b) }
    }

    /// The spec of the tensor whose bytes are expected next (zero-size tensors, which need no
    /// bytes, are passed over), or nil when all are written.
    public var nextTensor: TensorSpec? {
        var i = current
        if writtenInCurrent == 0 { while i < specs.count && specs[i].byteCount == 0 { i += 1 } }
        return i < specs.count ? specs[i] : nil
    }

    /// Appends bytes of tensor `name`, which must be the next one in order. A tensor may be
    /// written in several pieces; it is complete once its byte size has been reached. Zero-size
    /// tensors may be written (with no bytes) in their place, or left out.
    public func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        try checkOpen(name)
        try startIfNeeded()
        if writtenInCurrent == 0, current < specs.count, specs[current].name != name {
            // Pass over zero-size tensors the caller did not write, up to `name`.
            var i = current
            while i < specs.count && specs[i].byteCount == 0 && specs[i].name != name { i += 1 }
            if i < specs.count && specs[i].name == name {
                for k in current..<i { tensorCompleted?(k) }
                current = i
            }
        }
        guard current < specs.count else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "all tensors were already written")
        }
        let spec = specs[current]
        guard spec.name == name else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "written out of order: expected '\((nextTensor ?? spec).name)' next")
        }
        guard writtenInCurrent + bytes.count <= spec.byteCount else {
            throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "\(writtenInCurrent + bytes.count) bytes written, tensor has \(spec.byteCount)")
        }
        try emit(bytes)
        writtenInCurrent += bytes.count
        if writtenInCurrent == spec.byteCount {
            tensorCompleted?(current)
            current += 1
            writtenInCurrent = 0
        }
    }

    /// Several pieces, adjacent in memory, in one write: checked as `write` checks each piece
    /// (nothing is written when one fails), then emitted at once.
    public func write(run pieces: [(name: String, count: Int)], _ bytes: UnsafeRawBufferPointer) throws {
        try checkOpen(pieces.first?.name)
        precondition(pieces.reduce(0) { $0 + $1.count } == bytes.count, "a run's pieces must add up to its bytes")
        var cur = current, inCur = writtenInCurrent
        var completed: [Int] = []
        for (name, count) in pieces {
            if inCur == 0, cur < specs.count, specs[cur].name != name {
                var i = cur
                while i < specs.count && specs[i].byteCount == 0 && specs[i].name != name { i += 1 }
                if i < specs.count && specs[i].name == name {
                    completed += Array(cur..<i)
                    cur = i
                }
            }
            guard cur < specs.count else {
                throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "all tensors were already written")
            }
            let spec = specs[cur]
            guard spec.name == name else {
                var e = cur
                if inCur == 0 { while e < specs.count && specs[e].byteCount == 0 { e += 1 } }
                throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "written out of order: expected '\((e < specs.count ? specs[e] : spec).name)' next")
            }
            guard inCur + count <= spec.byteCount else {
                throw SafeTensorsError(.writerMisuse, file: path, tensor: name, "\(inCur + count) bytes written, tensor has \(spec.byteCount)")
            }
            inCur += count
            if inCur == spec.byteCount {
                completed.append(cur)
                cur += 1
                inCur = 0
            }
        }
        try startIfNeeded()
        try emit(bytes)
        current = cur
        writtenInCurrent = inCur
        for k in completed { tensorCompleted?(k) }
    }

    private func advancePastCompleted() {
        while current < specs.count && writtenInCurrent == specs[current].byteCount {
            tensorCompleted?(current)
            current += 1
            writtenInCurrent = 0
        }
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (b) throws in try write(name, b) }
    }

    /// Checks every tensor was written in full, then renames the file into place.
    /// Fails (removing the temporary) when a tensor is missing or incomplete, or when the writer
    /// was already finished or aborted.
    public func finish(durable: Bool = false) throws {
        try checkOpen(nil)
        try startIfNeeded()
        advancePastCompleted()
        if current < specs.count {
            abort()
            throw SafeTensorsError(.writerMisuse, file: path, tensor: specs[current].name, "finished before this tensor was written in full")
        }
        do {
            try file.commit(durable: durable)
        } catch {
            abort()
            throw SafeTensorsError.io(error)
        }
        state = .finished
    }

    /// Removes the temporary without writing anything under the final name (no effect once
    /// finished).
    public func abort() {
        guard state == .open else { return }
        file.abort()
        state = .aborted
    }
}

/// The safetensors file format for the writer seam.
public struct SafeTensorsFormat: TensorFileFormat {
    /// `__metadata__` entries of every file written (dsconvert writes `format: pt`).
    public var metadata: [(String, String)]?

    public init(metadata: [(String, String)]? = [("format", "pt")]) {
        self.metadata = metadata
    }

    public var name: String { "safetensors" }
    public var fileExtension: String { "safetensors" }

    public func fileSize(of tensors: [TensorSpec]) throws -> Int {
        try SafeTensorsWriter.header(for: tensors, metadata: metadata).count + tensors.reduce(0) { $0 + $1.byteCount }
    }

    public func makeSizer() -> TensorFileSizer { SafeTensorsSizer(metadata: metadata) }

    public func makeWriter(path: String, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try SafeTensorsWriter(path: path, tensors: tensors, metadata: metadata)
    }
}

/// The size of a safetensors file as tensors are appended, computed exactly as
/// `SafeTensorsWriter` lays the file out (8-byte length, compact JSON object with `__metadata__`
/// first and one member per tensor, space padding to a multiple of 8) in O(1) per tensor.
struct SafeTensorsSizer: TensorFileSizer {
    private var json: Int
    private var data = 0
    private var count = 0

    init(metadata: [(String, String)]?) {
        json = 2
        if let metadata {
            json += Self.memberLength("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))
            count = 1
        }
    }

    static func memberLength(_ key: String, _ value: JSONValue) -> Int {
        JSONWriter.compactLength(.object([(key, value)])) - 2  // without the braces
    }

    mutating func append(_ s: TensorSpec) {
        if count > 0 { json += 1 }  // the comma
        json += Self.memberLength(s.name, .object([
            ("dtype", .string(s.dtype.rawValue)),
            ("shape", .array(s.shape.map { .int($0) })),
            ("data_offsets", .array([.int(data), .int(data + s.byteCount)])),
        ]))
        data += s.byteCount
        count += 1
    }

    var fileSize: Int { 8 + (json + 7) / 8 * 8 + data }
}
