import Engine
import SafeTensors
import Tensors
import TestSupport

enum EngineFixtures {
    static var samples: String { STFixtures.samplesDirectory }

    /// Token ids (int32 or int64) as sequences, with their shape ([B, T]).
    static func ids(_ store: TensorStore, _ name: String) throws -> ([[Int]], [Int]) {
        let v = try store.view(name)
        let shape = v.info.shape.count == 1 ? [1, v.info.shape[0]] : v.info.shape
        let n = v.info.elementCount
        let p = v.bytes.baseAddress!
        let flat: [Int] = v.dtype == .i64
            ? (0..<n).map { Int(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            : (0..<n).map { Int(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        return ((0..<shape[0]).map { Array(flat[$0 * shape[1]..<($0 + 1) * shape[1]]) }, shape)
    }

    static func floats(_ store: TensorStore, _ name: String) throws -> [Float] {
        let v = try store.view(name)
        let p = v.bytes.baseAddress!
        return (0..<v.info.elementCount).map { p.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }

    static func maxAbsDifference(_ m: Matrix, _ expected: [Float]) -> Float {
        var worst: Float = 0
        for i in 0..<min(expected.count, m.rows * m.cols) {
            let d = abs(m.data[i] - expected[i])
            if !(d <= worst) { worst = d.isNaN ? .infinity : d }
        }
        return worst
    }
}
