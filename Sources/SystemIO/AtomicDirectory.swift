#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output folder that only appears under its final name when it is complete: the folder
/// analogue of `AtomicFile`.
///
/// Files go into `DIR/.dsconvert-tmp-HOST-PID-N-RANDOM-NAME/` (a `TemporaryName`) beside the
/// destination; `commit()` renames the folder into place, which succeeds only when nothing or an
/// empty folder is there. `abort()` removes exactly the files registered with `created(_:)` and
/// then the folder itself (rmdir, so a file someone else put there is never deleted).
public final class AtomicDirectory {
    public let path: String
    public let temporaryPath: String
    private var names: [String] = []
    private var done = false

    public init(_ path: String) throws {
        self.path = path
        temporaryPath = AtomicFile.temporarySibling(of: path)
        if mkdir(temporaryPath, 0o755) != 0 { throw IOError("mkdir", path: temporaryPath, errno: errno) }
    }

    /// The path of `name` inside the temporary folder.
    public func file(_ name: String) -> String { temporaryPath + "/" + name }

    /// Records that `name` (a plain file name) was written into the folder, so `abort()` removes it.
    public func created(_ name: String) { names.append(name) }

    /// Renames the folder into place.
    public func commit() throws {
        precondition(!done, "AtomicDirectory committed twice")
        try Sys.rename(temporaryPath, path)
        done = true
    }

    /// Removes the files recorded with `created(_:)` and the folder (if it is then empty).
    public func abort() {
        guard !done else { return }
        for n in names { Sys.unlink(file(n)) }
        Sys.removeDirectory(temporaryPath)
        done = true
    }

    deinit { abort() }
}
