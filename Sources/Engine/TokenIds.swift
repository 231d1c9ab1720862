import SafeTensors
import Tensors

/// Token ids stored in a safetensors file (int32 or int64, shape [B, T] or [T]), the input of
/// `dsconvert forward`.
public enum TokenIds {
    public static func read(path: String, key: String) throws -> [[Int]] {
        let store = try SafeTensorsCheckpoint(path: path)
        guard let info = store.info(key) else {
            let names = store.tensorNames.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
            throw EngineError.input("no tensor '\(key)' (it has \(names))", file: path)
        }
        guard info.dtype == .i32 || info.dtype == .i64 else {
            throw EngineError.input("tensor '\(key)' is \(info.dtype.rawValue); token ids must be I32 or I64", file: path)
        }
        guard (1...2).contains(info.shape.count), info.elementCount > 0 else {
            throw EngineError.input("tensor '\(key)' has shape \(info.shapeText); token ids must be [B, T] or [T] and not empty", file: path)
        }
        let shape = info.shape.count == 1 ? [1, info.shape[0]] : info.shape
        let v = try store.view(key)
        let p = v.bytes.baseAddress!
        let wide = info.dtype == .i64
        let flat: [Int] = (0..<info.elementCount).map {
            wide ? Int(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) : Int(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))
        }
        return (0..<shape[0]).map { Array(flat[$0 * shape[1]..<($0 + 1) * shape[1]]) }
    }
}
