import Checkpoint
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
    /// index and config.json are the conversion's own business and are skipped).
    static func scan(_ input: String) throws -> Listing {
        var listing = Listing(copy: [], notCopied: [])
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
