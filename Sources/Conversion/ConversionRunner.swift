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

    public init(outputDirectory: String, jobs: Int = 1, jobIndex: Int = 0, durable: Bool = false, force: Bool = false) {
        self.outputDirectory = outputDirectory
        self.jobs = jobs
        self.jobIndex = jobIndex
        self.durable = durable
        self.force = force
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

        if options.jobs == 1 {
            folder.removeAllTemporaries(shards: plan.shards.map(\.name))
        } else {
            // The other jobs of a job array may be writing into this directory right now: remove
            // only the leftovers of this job's own shards (and of their records), never another
            // job's temporary that is still being written. `merge-index` clears the rest.
            for shard in mine { folder.removeTemporaries(of: shard.name) }
        }
        // The plan owns what it writes, what the user let it replace, and what earlier runs wrote.
        let planFile = PlanFile(plan, inputDirectory: try Sys.realPath(checkpoint.directory),
                                files: writes + foreign + owned.filter { folder.holds($0) })
        if options.jobs == 1 {
            try planFile.write(folder)
        } else if try !planFile.create(folder) {
            // Another job planned the folder first (perhaps just now, on another host).
            if let first = try PlanFile.read(folder), first.settingsDigest != plan.settingsDigestHex { throw conflict(first) }
        }

        observer.started(shards: mine.count, tensors: mine.reduce(0) { $0 + $1.tensors.count }, inputBytes: mine.reduce(0) { $0 + $1.inputBytes })
        var report = ConversionReport()
        let converter = ShardConverter(store: checkpoint.weights, format: plan.format)
        let files = checkpoint.weights.files
        var verified = Set<String>()
        for shard in mine {
            let path = out + "/" + shard.name
            if shard.name.contains("/") { try Sys.makeDirectory(folder.directory(of: shard.name)) }
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
                report.skipped.append(shard.name)
                verified.insert(shard.name)
                continue
            }
            Sys.unlink(recordPath)
            let (size, hash) = try converter.convert(shard, to: path, durable: options.durable, observer: observer)
            try ResumeRecord(shard: shard.name, settings: plan.settings, settingsDigest: plan.settingsDigestHex,
                             jobIndex: options.jobIndex, jobs: options.jobs, inputs: inputs, size: size, xxh3: hash).write(outputDirectory: out)
            observer.shardDone(shard.name, bytes: size)
            report.converted.append(shard.name)
            report.inputBytes += shard.inputBytes
            report.outputBytes += size
            verified.insert(shard.name)
        }
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
        report.seconds = MonotonicClock.seconds() - start
        return report
    }

    private func conflict(_ planned: PlanFile) -> ConversionError {
        .settingsConflict(directory: options.outputDirectory, planned: planned.settings, plannedDigest: planned.settingsDigest,
                          requested: plan.settings, requestedDigest: plan.settingsDigestHex)
    }
}

