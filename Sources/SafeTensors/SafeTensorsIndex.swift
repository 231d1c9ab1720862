import JSON
import SystemIO

/// `model.safetensors.index.json`: `{"metadata": {..., "total_size": N}, "weight_map": {tensor: file}}`.
public struct SafeTensorsIndex: Sendable {
    public static let fileName = "model.safetensors.index.json"

    /// The `metadata` object's members in order (`total_size` among them).
    public var metadata: [(String, JSONValue)]
    /// tensor name → shard file name, in document order.
    public var weightMap: [(String, String)]

    public init(metadata: [(String, JSONValue)], weightMap: [(String, String)]) {
        self.metadata = metadata
        self.weightMap = weightMap
    }

    public static func read(path: String) throws -> SafeTensorsIndex {
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 512 << 20) } catch { throw SafeTensorsError.io(error) }
        if let fast = bytes.withUnsafeBytes({ FastHeaderScanner.index($0) }),
           Set(fast.weightMap.lazy.map(\.1)).allSatisfy({ !$0.utf8.contains(UInt8(ascii: "/")) && $0 != "." && $0 != ".." && !$0.isEmpty }),
           Set(fast.weightMap.lazy.map(\.0)).count == fast.weightMap.count {
            return SafeTensorsIndex(metadata: fast.metadata, weightMap: fast.weightMap)
        }
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch {
            throw SafeTensorsError(.indexInvalid, file: path, offset: error.byteOffset, "invalid JSON: \(error.message)")
        }
        guard let map = value["weight_map"]?.objectMembers else {
            throw SafeTensorsError(.indexInvalid, file: path, "no \"weight_map\" object")
        }
        var weightMap: [(String, String)] = []
        weightMap.reserveCapacity(map.count)
        for (name, v) in map {
            guard let f = v.stringValue else {
                throw SafeTensorsError(.indexInvalid, file: path, tensor: name, "weight_map value is not a file name")
            }
            // A plain name inside the checkpoint directory: no separators, not "." or "..", and
            // no NUL (which would cut the path short when it is handed to open(2)).
            if f.contains("/") || f == ".." || f == "." || f.isEmpty || f.utf8.contains(0) {
                throw SafeTensorsError(.indexInvalid, file: path, tensor: name, "shard name '\(f)' is not a plain file name")
            }
            weightMap.append((name, f))
        }
        var metadata: [(String, JSONValue)] = []
        if let m = value["metadata"] {
            guard let members = m.objectMembers else {
                throw SafeTensorsError(.indexInvalid, file: path, "\"metadata\" is not an object")
            }
            metadata = members
        }
        return SafeTensorsIndex(metadata: metadata, weightMap: weightMap)
    }

    /// The index as transformers writes it: indent 2, `weight_map` sorted by tensor name,
    /// `total_size` set to `totalSize`.
    public func serialized(totalSize: Int) -> [UInt8] {
        var meta = metadata.filter { $0.0 != "total_size" }
        meta.append(("total_size", .int(totalSize)))
        let sortedMap = weightMap.sorted { $0.0 < $1.0 }
        let value = JSONValue.object([
            ("metadata", .object(meta)),
            ("weight_map", .object(sortedMap.map { ($0.0, .string($0.1)) })),
        ])
        return JSONWriter.prettyBytes(value)
    }
}
