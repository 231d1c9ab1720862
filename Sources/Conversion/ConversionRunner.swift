import Dispatch
import JSON
import Checkpoint
import Quantization
import SafeTensors
import SystemIO

/// Options of a conversion run.
public struct ConversionOptions: Sendable {
    public var outputDirectory: String
    /// Split the output shards into `jobs` disjoint sets (round robin) and convert only set
    /// `jobIndex`; `merge-index` completes the directory afterwards.
    public var jobs: Int = 1
    public var jobIndex: Int = 0
    /// fsync each shard before renaming it.
    public var durable: Bool = false
    /// Replace (or, for a stale index, remove) files in the output folder that no dsconvert run
    /// wrote; without it such files stop the run before anything is written.
    public var force: Bool = false
    /// How many output files are written at once (each by its own converter, reading and
    /// writing in parallel with the others); 1 writes them one after another.
    public var concurrentFiles: Int = 1

    public init(outputDirectory: String, jobs: Int = 1, jobIndex: Int = 0, durable: Bool = false, force: Bool = false, concurrentFiles: Int = 1) {
        self.outputDirectory = outputDirectory
        self.jobs = jobs
        self.jobIndex = jobIndex
        self.durable = durable
        self.force = force
        self.concurrentFiles = concurrentFiles
    }
}

/// What a run did.
public struct ConversionReport: Sendable {
    public var converted: [String] = []
    public var skipped: [String] = []
    public var inputBytes = 0
    public var outputBytes = 0
    public var seconds = 0.0
    /// True when the directory was completed (index, config, copies written).
    public var finalized = false
    public var copiedFiles: [String] = []
    public var notCopied: [String] = []
}

/// Runs a `ConversionPlan`: converts this job's output shards (skipping ones a previous run
/// finished and that still verify), then, for a single job, completes the directory.
public final class ConversionRunner {
    let checkpoint: Checkpoint
    let plan: ConversionPlan
    let options: ConversionOptions
    let observer: ConversionObserver

    public init(checkpoint: Checkpoint, plan: ConversionPlan, options: ConversionOptions, observer: ConversionObserver = SilentObserver()) {
        self.checkpoint = checkpoint
        self.plan = plan
        self.options = options
        self.observer = observer
    }

    /// The output shards job `index` of `jobs` converts (round robin over the plan's order).
    public static func shards(of plan: ConversionPlan, jobs: Int, index: Int) -> [OutputShardPlan] {
        plan.shards.enumerated().filter { $0.offset % jobs == index }.map(\.element)
    }

    public func run() throws -> ConversionReport {
        let start = MonotonicClock.seconds()
        let out = options.outputDirectory
        guard options.jobs >= 1, options.jobIndex >= 0, options.jobIndex < options.jobs else {
            throw ConversionError.invalidOptions("--job-index must be in 0..<\(max(options.jobs, 1)) (got \(options.jobIndex) with --jobs \(options.jobs))")
        }
        try checkpoint.weights.requireWhole()
        let strays = checkpoint.weights.unindexedFiles
        if !strays.isEmpty {
            observer.note("warning: \(checkpoint.directory) holds \(strays.count) .safetensors file(s) that \(SafeTensorsIndex.fileName) does not name, which are not converted: \(strays.prefix(5).joined(separator: ", "))\(strays.count > 5 ? ", …" : "")")
        }
        // The files to be copied at the end are checked now, before any shard is converted.
        let side = try SideFiles.scan(checkpoint.directory)
        try Sys.makeDirectory(out)
        if try Sys.realPath(out) == Sys.realPath(checkpoint.directory) { throw ConversionError.outputIsInput(out) }
        let folder = OutputFolder(out)
        // The lock first: everything below reads and writes state no other run may change meanwhile.
        try Sys.makeDirectory(folder.state)
        let lock = try FolderLock.acquire(folder, jobs: options.jobs, jobIndex: options.jobIndex, observer: observer)
        defer { lock.release() }
        let owned = folder.ownedFiles()
        PhaseTrace.mark("output folder locked")

        // Settings: the folder's plan (made by the first run into it) names the settings digest
        // every job must share; a single run owns the folder alone and may start it over.
        let planned = try PlanFile.read(folder)
        if let planned, planned.settingsDigest != plan.settingsDigestHex {
            if options.jobs > 1 { throw conflict(planned) }
            observer.note("\(out) was being converted with other settings (\(planned.settings)); starting over with \(plan.settings)")
        }
        let mine = ConversionRunner.shards(of: plan, jobs: options.jobs, index: options.jobIndex)

        // Files of the user's own are never replaced without consent: everything this conversion
        // writes (or, for an index a single-file output must not keep, removes) that is already
        // here and that no dsconvert run wrote stops it now, before anything is written.
        let folders = DirectoryFinisher.folders(of: plan.shards.map(\.name))
        // A pack embeds config.json and the side files: nothing is written beside it.
        let embeds = plan.format.embedsModelFiles
        let writes = plan.shards.map(\.name) + DirectoryFinisher.finishingFiles(folders: folders, writesIndex: plan.writesIndex,
                                                                                hasConfig: plan.config != nil && !embeds, copies: embeds ? [] : side.copy)
            + plan.extraFiles.map(\.name)
        let foreign = folder.foreign(writes + (plan.writesIndex ? [] : folders.map { OutputLayout.join($0, SafeTensorsIndex.fileName) }), owned: owned)
        if !foreign.isEmpty && !options.force { throw ConversionError.wouldOverwrite(directory: out, files: foreign) }
        PhaseTrace.mark("foreign files checked")

        if options.jobs == 1 {
            folder.removeAllTemporaries(shards: plan.shards.map(\.name))
        } else {
            // The other jobs of a job array may be writing into this directory right now: remove
            // only the leftovers of this job's own shards (and of their records), never another
            // job's temporary that is still being written. `merge-index` clears the rest.
            for shard in mine { folder.removeTemporaries(of: shard.name) }
        }
        // The plan owns what it writes, what the user let it replace, and what earlier runs wrote.
        PhaseTrace.mark("temporaries removed")
        let planFile = PlanFile(plan, inputDirectory: try Sys.realPath(checkpoint.directory),
                                files: writes + foreign + owned.filter { folder.holds($0) })
        if options.jobs == 1 {
            try planFile.write(folder)
        } else if try !planFile.create(folder) {
            // Another job planned the folder first (perhaps just now, on another host).
            if let first = try PlanFile.read(folder), first.settingsDigest != plan.settingsDigestHex { throw conflict(first) }
        }

        PhaseTrace.mark("plan.json written")
        observer.started(shards: mine.count, tensors: mine.reduce(0) { $0 + $1.tensors.count }, inputBytes: mine.reduce(0) { $0 + $1.inputBytes })
        var report = ConversionReport()
        // Output folders first: the workers below only create files.
        for dir in Set(mine.filter { $0.name.contains("/") }.map { folder.directory(of: $0.name) }).sorted() { try Sys.makeDirectory(dir) }
        let outcomes = try convertFiles(mine, into: out)
        var verified = Set<String>()
        for outcome in outcomes {
            switch outcome {
            case let .skipped(name):
                report.skipped.append(name)
                verified.insert(name)
            case let .converted(name, inputBytes, size):
                report.converted.append(name)
                report.inputBytes += inputBytes
                report.outputBytes += size
                verified.insert(name)
            }
        }
        PhaseTrace.mark("output files written")
        if options.jobs == 1 {
            // The plan this run wrote (a single run holds the folder alone, so it is still the file's).
            let fin = try DirectoryFinisher.finish(outputDirectory: out, alreadyVerified: verified, observer: observer, lockHeld: true, planned: planFile,
                                                   shardTensors: Dictionary(plan.shards.map { ($0.name, $0.tensors.flatMap(\.outputs)) }, uniquingKeysWith: { a, _ in a }))
            report.finalized = true
            report.copiedFiles = fin.copied
            report.notCopied = fin.notCopied
        } else {
            observer.note("job \(options.jobIndex + 1) of \(options.jobs) done; run `dsconvert merge-index \(out)` after every job has finished")
        }
        PhaseTrace.mark("folder finished (index, config, copies)")
        report.seconds = MonotonicClock.seconds() - start
        return report
    }

    /// What became of one output file.
    enum FileOutcome: Sendable {
        case skipped(String)
        case converted(String, inputBytes: Int, size: Int)
    }

    /// Converts (or skips, when a previous run finished it and it still verifies) each of
    /// `shards`, `options.concurrentFiles` at a time; outcomes in the order of `shards`. The first
    /// error stops the other workers at their next tensor and is the one thrown.
    private func convertFiles(_ shards: [OutputShardPlan], into out: String) throws -> [FileOutcome] {
        let workers = max(1, min(options.concurrentFiles, shards.count))
        if workers == 1 {
            let converter = ShardConverter(store: checkpoint.weights, format: plan.format)
            return try shards.map { try convertFile($0, into: out, converter: converter, observer: observer, cancelled: { false }) }
        }
        let shared = SharedProgress(count: shards.count)
        let serialized = SerializedObserver(observer)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let converter = ShardConverter(store: checkpoint.weights, format: plan.format)
            while let k = shared.next() {
                do {
                    shared.record(k, try convertFile(shards[k], into: out, converter: converter, observer: serialized, cancelled: { shared.stopped }))
                } catch {
                    shared.fail(error)
                    return
                }
            }
        }
        if let error = shared.error { throw error }
        return shared.outcomes.map { $0! }
    }

    private func convertFile(_ shard: OutputShardPlan, into out: String, converter: ShardConverter, observer: ConversionObserver,
                             cancelled: () -> Bool) throws -> FileOutcome {
        let path = out + "/" + shard.name
        let files = checkpoint.weights.files
        let inputs = shard.inputShards.map { i -> ResumeRecord.Input in
            let s = files[i]
            return ResumeRecord.Input(name: s.name, size: s.status.size, mtimeNanoseconds: s.status.mtimeNanoseconds)
        }
        let recordPath = ResumeRecord.path(outputDirectory: out, shard: shard.name)
        var record: ResumeRecord?
        do { record = try ResumeRecord.load(recordPath) } catch {
            // Only a record that verifies lets a shard be skipped; this one is replaced.
            observer.note("\(error); \(shard.name) is converted again")
        }
        if let rec = record, rec.settingsDigest == plan.settingsDigestHex, rec.inputs == inputs,
           let st = try? Sys.stat(path), st.size == rec.size,
           let (_, h) = try? ResumeRecord.hashFile(path), h == rec.xxh3 {
            observer.skipped(shard: shard.name, tensors: shard.tensors.count, inputBytes: shard.inputBytes)
            return .skipped(shard.name)
        }
        Sys.unlink(recordPath)
        let (size, hash) = try converter.convert(shard, to: path, durable: options.durable, observer: observer, cancelled: cancelled)
        try ResumeRecord(shard: shard.name, settings: plan.settings, settingsDigest: plan.settingsDigestHex,
                         jobIndex: options.jobIndex, jobs: options.jobs, inputs: inputs, size: size, xxh3: hash).write(outputDirectory: out)
        observer.shardDone(shard.name, bytes: size)
        return .converted(shard.name, inputBytes: shard.inputBytes, size: size)
    }

    private func conflict(_ planned: PlanFile) -> ConversionError {
        .settingsConflict(directory: options.outputDirectory, planned: planned.settings, plannedDigest: planned.settingsDigest,
                          requested: plan.settings, requestedDigest: plan.settingsDigestHex)
    }
}


/// The work queue and results of concurrent file workers.
private final class SharedProgress: @unchecked Sendable {
    private let lock = PThreadLock()
    private var nextIndex = 0
    private let count: Int
    private(set) var outcomes: [ConversionRunner.FileOutcome?]
    private var firstError: Error?

    init(count: Int) {
        self.count = count
        outcomes = Array(repeating: nil, count: count)
    }

    /// The next file to convert, or nil when every file is taken or a worker failed.
    func next() -> Int? {
        lock.withLock {
            guard firstError == nil, nextIndex < count else { return nil }
            defer { nextIndex += 1 }
            return nextIndex
        }
    }

    func record(_ k: Int, _ outcome: ConversionRunner.FileOutcome) { lock.withLock { outcomes[k] = outcome } }

    /// The first failure is kept; the others stopped because of it (`Cancelled`) or came after it.
    func fail(_ error: Error) { lock.withLock { if firstError == nil && !(error is Cancelled) { firstError = error } } }

    var stopped: Bool { lock.withLock { firstError != nil } }
    var error: Error? { lock.withLock { firstError } }
}

/// A worker stopped because another one failed.
struct Cancelled: Error {}

/// Hands an observer's calls over one at a time (it is called from the converting threads).
private final class SerializedObserver: ConversionObserver, @unchecked Sendable {
    private let base: ConversionObserver
    private let lock = PThreadLock()
    init(_ base: ConversionObserver) { self.base = base }
    func started(shards: Int, tensors: Int, inputBytes: Int) { lock.withLock { base.started(shards: shards, tensors: tensors, inputBytes: inputBytes) } }
    func skipped(shard: String, tensors: Int, inputBytes: Int) { lock.withLock { base.skipped(shard: shard, tensors: tensors, inputBytes: inputBytes) } }
    func tensorDone(_ name: String, inputBytes: Int) { lock.withLock { base.tensorDone(name, inputBytes: inputBytes) } }
    func shardDone(_ name: String, bytes: Int) { lock.withLock { base.shardDone(name, bytes: bytes) } }
    func note(_ message: String) { lock.withLock { base.note(message) } }
}
