import SystemIO

/// The locks that keep two runs from writing into one output folder at once.
///
/// `OUT/.dsconvert/lock` is taken exclusively by a single run and by merge-index, and shared by
/// the jobs of a job array, each of which also takes `OUT/.dsconvert/job-I-of-N.lock`
/// exclusively: jobs on different shards run side by side, while a second run of the same job,
/// a single run or merge-index during the jobs is refused at once (never waits). The lock
/// files stay when the folder completes (deleting a lock file another process may be about to
/// lock would let two runs in), and the kernel releases the locks when a run exits or crashes.
///
/// Locks hold on one host (and across NFS v4 clients); where the file system refuses `flock`
/// altogether, the run warns and goes on, and the settings digest in `plan.json` still keeps
/// jobs with conflicting settings apart.
final class FolderLock {
    static let name = "lock"
    private var held: [FileLock] = []

    private init() {}

    static func jobLockName(index: Int, of jobs: Int) -> String { "job-\(index)-of-\(jobs).lock" }

    /// True for the per-job lock files (removed when the folder completes, under the exclusive lock).
    static func isJobLock(_ name: String) -> Bool {
        guard name.hasPrefix("job-"), name.hasSuffix(".lock") else { return false }
        let parts = name.dropFirst(4).dropLast(5).split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[1] == "of" && Int(parts[0]) != nil && Int(parts[2]) != nil
    }

    /// Locks `folder` for a run of job `jobIndex` of `jobs` (a single run when `jobs` is 1) or,
    /// with `jobs` nil, for merge-index. `.dsconvert/` must exist.
    static func acquire(_ folder: OutputFolder, jobs: Int?, jobIndex: Int, observer: ConversionObserver) throws -> FolderLock {
        let lock = FolderLock()
        let main = folder.state + "/" + name
        let isJob = (jobs ?? 1) > 1
        switch try FileLock.acquire(main, isJob ? .shared : .exclusive) {
        case let .acquired(l): lock.held.append(l)
        case .busy:
            throw ConversionError.locked(directory: folder.path, lockFile: main, isJob
                ? "a dsconvert run that needs the folder to itself (a run without jobs, or merge-index) is writing into it"
                : "another dsconvert run (a single run, a job of a job array, or merge-index) is writing into this folder")
        case let .unsupported(e):
            warnUnsupported(main, e, observer)
            return lock
        }
        if let jobs, isJob {
            let job = folder.state + "/" + jobLockName(index: jobIndex, of: jobs)
            switch try FileLock.acquire(job, .exclusive) {
            case let .acquired(l): lock.held.append(l)
            case .busy:
                throw ConversionError.locked(directory: folder.path, lockFile: job,
                                             "job index \(jobIndex) of \(jobs) jobs is already running into this folder")
            case let .unsupported(e): warnUnsupported(job, e, observer)
            }
        }
        return lock
    }

    private static func warnUnsupported(_ path: String, _ e: Int32, _ observer: ConversionObserver) {
        observer.note("warning: cannot lock \(path) (\(IOError("flock", path: path, errno: e).reason)): this file system does not support locks, so a second run into this folder is not detected; jobs with conflicting settings still are (settings digest)")
    }

    /// Releases every lock now (otherwise when the object goes away or the process exits).
    func release() {
        for l in held.reversed() { l.release() }
        held.removeAll()
    }
}
