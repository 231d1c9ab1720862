import ArgumentParser
import Checkpoint

/// How a command opens its checkpoint: `--verify`, for every command that reads one.
struct LoadOptions: ParsableArguments {
    @Flag(name: .long, help: "Check every tensor's XXH3-64 (and every zero gap) of a .dspack input on all cores before using it; fails naming the corrupted tensor (exit 4). Without it only the header digest is checked. Safetensors inputs hold no checksums.")
    var verify = false

    /// Opens `path` (a folder, .safetensors file or .dspack) with `--verify` applied.
    func checkpoint(_ path: String) throws -> Checkpoint { try Checkpoint(path: path, verify: verify) }
}
