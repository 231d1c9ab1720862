import SystemIO

/// One safetensors file, memory-mapped, with zero-copy access to every tensor's bytes.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let header: SafeTensorsHeader
    public let mapping: MappedFile

    /// Validates the header, then maps the file. The file must still have the size the header
    /// describes when it is mapped.
    public init(path: String, header: SafeTensorsHeader? = nil) throws {
        self.path = path
        let h = try header ?? SafeTensorsHeader.read(path: path)
        self.header = h
        do {
            mapping = try MappedFile(path: path)
        } catch {
            throw SafeTensorsError.io(error)
        }
        if mapping.size != h.fileSize {
            throw SafeTensorsError(.truncated, file: path, "file changed size: header describes \(h.fileSize) bytes, file has \(mapping.size)")
        }
    }

    public var tensors: [TensorInfo] { header.tensors }

    /// The tensor's bytes, or an error naming the file and tensor when it is not there.
    public func tensor(_ name: String) throws -> TensorView {
        guard let info = header.info(name) else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "no such tensor in this file")
        }
        return view(info)
    }

    public func view(_ info: TensorInfo) -> TensorView {
        let start = header.dataStart + info.dataOffsets.lowerBound
        return TensorView(info: info, bytes: mapping.bytes(start..<start + info.byteCount), file: path, owner: self)
    }

    /// File byte range of a tensor's data.
    public func fileRange(_ info: TensorInfo) -> Range<Int> {
        let start = header.dataStart + info.dataOffsets.lowerBound
        return start..<start + info.byteCount
    }
}
