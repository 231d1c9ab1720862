import Checkpoint
import Glibc
import DSPack
import SafeTensors
import SystemIO

/// The files beside the weights that a completed output gets a copy of (tokenizer, generation
/// config, code, …), and those it does not (subfolders and other weight formats).
///
/// Every file to be copied is opened (not read) when the listing is made, so a file that cannot
/// be copied — unreadable, a FIFO or device, a dangling symlink, a symlink loop — fails the run
/// before any shard is converted rather than after hours of work.
enum SideFiles {
    struct Listing: Sendable, Equatable {
        /// Names to copy, sorted.
        var copy: [String]
        /// Names left out (subfolders with a trailing `/`), sorted.
        var notCopied: [String]
    }

    /// Lists and checks the top-level entries of `input` (hidden files, safetensors files, the
    /// index and config.json are the conversion's own business and are skipped). A .dspack input
    /// has its embedded files instead (config.json aside), checked against their XXH3-64 now.
    static func scan(_ input: String) throws -> Listing {
        var listing = Listing(copy: [], notCopied: [])
        if DSPackFile.isPack(path: input) {
            let pack = try DSPackFile(path: input)
            listing.copy = pack.sideFileNames.filter { $0 != ModelConfig.fileName }
            for n in listing.copy { _ = try pack.sideFile(n) }
            return listing
        }
        for name in try Sys.listDirectory(input) where !name.hasPrefix(".") {
            if name.hasSuffix(".safetensors") || name == SafeTensorsIndex.fileName || name == ModelConfig.fileName { continue }
            let path = input + "/" + name
            if let st = try? Sys.stat(path), st.isDirectory {
                listing.notCopied.append(name + "/")
            } else if DirectoryFinisher.isOtherWeightFormat(name) {
                listing.notCopied.append(name)
            } else {
                try Sys.checkReadable(path)
                listing.copy.append(name)
            }
        }
        return listing
    }
}

extension SideFiles {
    /// The bytes of side file `name` of `input` (a folder, or a pack that embeds it).
    static func read(_ name: String, of input: String) throws -> [UInt8] {
        if DSPackFile.isPack(path: input) {
            guard let b = try DSPackFile(path: input).sideFile(name) else {
                throw IOError("read", path: input + "#" + name, errno: ENOENT, detail: "not embedded in the pack")
            }
            return b
        }
        return try Sys.readFile(input + "/" + name, limit: 1 << 40)
    }

    /// Copies side file `name` of `input` to `destination` (atomically).
    static func copy(_ name: String, of input: String, to destination: String) throws {
        if DSPackFile.isPack(path: input) {
            try AtomicFile.write(try read(name, of: input), to: destination)
        } else {
            try Sys.copyFile(from: input + "/" + name, to: destination)
        }
    }
}
