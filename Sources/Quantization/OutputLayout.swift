import Foundation
import Tensors
import SafeTensors

/// How a plan's output tensors are laid out in files: which folder each goes to, how files are
/// cut and named, and whether each folder gets an index. The plan says *what* is written; the
/// layout says *where*, through the file format's own sizer (it never re-derives a header).
///
/// Output names are relative paths (`model-00001-of-00002.safetensors`, or
/// `rank-00003-of-00008/model-00001-of-00002.safetensors` for a layout with folders); resume
/// records, temporaries, jobs and merge-index all work on those names.
public struct OutputLayout: Sendable {
    public enum Chunking: Sendable, Equatable {
        /// One output file per input file, with the input file's name.
        case mirror
        /// Files of at most this many bytes, header included, named `model-{i:05d}-of-{n:05d}`.
        /// A file holding one input tensor's outputs that are larger than the limit is the only
        /// exception.
        case maxFileSize(Int)
        /// One file per folder, named `model.EXT` (a pack: one file per rank).
        case single
    }

    public var format: any TensorFileFormat
    public var chunking: Chunking
    /// The folder (a relative path, "" for the top level) a tensor plan's outputs go to.
    public var folder: @Sendable (TensorPlan) -> String
    /// Names the folder rule in the settings (two layouts with the same name place tensors alike).
    public var folderRule: String

    public init(format: any TensorFileFormat = SafeTensorsFormat(), chunking: Chunking = .mirror,
                folderRule: String = "flat", folder: @escaping @Sendable (TensorPlan) -> String = { _ in "" }) {
        self.format = format
        self.chunking = chunking
        self.folderRule = folderRule
        self.folder = folder
    }

    /// The layout of `--shard-size`: mirror the input files, or cut at `shardSize` bytes.
    public init(shardSize: Int?) {
        self.init(chunking: shardSize.map { .maxFileSize($0) } ?? .mirror)
    }

    /// A stable description, part of the conversion settings.
    public var summary: String {
        let c: String
        switch chunking {
        case .mirror: c = "mirror"
        case let .maxFileSize(n): c = String(n)
        case .single: c = "single"
        }
        return "format=\(format.name); shard-size=\(c); folders=\(folderRule)"
    }

    /// An output name's folder ("" at the top level) and file name.
    public static func split(_ name: String) -> (folder: String, file: String) {
        guard let slash = name.lastIndex(of: "/") else { return ("", name) }
        return (String(name[..<slash]), String(name[name.index(after: slash)...]))
    }

    /// The folder part of an output name ("" at the top level).
    public static func folder(of name: String) -> String { split(name).folder }

    /// Joins a folder and a file name into an output name.
    public static func join(_ folder: String, _ name: String) -> String { folder.isEmpty ? name : folder + "/" + name }

    /// Places `ordered` (tensor plans in store order) into files.
    public func files(_ ordered: [TensorPlan], store: any TensorStore) throws -> [(name: String, tensors: [TensorPlan])] {
        // Folders in order of first appearance, each with its tensors in store order.
        var folders: [String] = []
        var byFolder: [String: [TensorPlan]] = [:]
        for t in ordered {
            let f = folder(t)
            if byFolder[f] == nil { folders.append(f) }
            byFolder[f, default: []].append(t)
        }
        if folders.isEmpty { folders = [""] }
        var out: [(name: String, tensors: [TensorPlan])] = []
        for f in folders {
            let ts = byFolder[f] ?? []
            switch chunking {
            case .mirror:
                var groups: [Int: [TensorPlan]] = [:]
                for t in ts { groups[store.fileIndex(of: t.source)!, default: []].append(t) }
                for i in groups.keys.sorted() {
                    out.append((Self.join(f, renamed(store.files[i].name)), groups[i]!))
                }
            case .single:
                out.append((Self.join(f, "model." + format.fileExtension), ts))
            case let .maxFileSize(limit):
                guard limit > 0 else { throw QuantizationError.invalidOption("the file size limit must be positive") }
                var groups: [[TensorPlan]] = []
                var current: [TensorPlan] = []
                var sizer = format.makeSizer()
                for t in ts {
                    var next = sizer
                    for s in t.outputs { next.append(s) }
                    if !current.isEmpty && next.fileSize > limit {
                        groups.append(current)
                        current = []
                        next = format.makeSizer()
                        for s in t.outputs { next.append(s) }
                    }
                    current.append(t)
                    sizer = next
                }
                if !current.isEmpty || groups.isEmpty { groups.append(current) }
                for (i, g) in groups.enumerated() {
                    out.append((Self.join(f, String(format: "model-%05d-of-%05d.", i + 1, groups.count) + format.fileExtension), g))
                }
            }
        }
        return out
    }

    /// An input file's name with this format's extension.
    func renamed(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), name[name.index(after: dot)...] != format.fileExtension else { return name }
        return name[..<dot] + "." + format.fileExtension
    }

    /// Whether each folder gets an index: never for a format that embeds the model's files (a pack);
    /// otherwise when the input had one, when a folder holds several
    /// files, or when dsconvert chose the names (`model-00001-of-00001` is found only through it).
    public func writesIndex(inputHasIndex: Bool, files: [String]) -> Bool {
        if format.embedsModelFiles { return false }
        if inputHasIndex || chunking != .mirror { return true }
        var seen = Set<String>()
        for f in files where !seen.insert(Self.folder(of: f)).inserted { return true }
        return false
    }
}
