import Diagnostics

/// Problems with a conversion run as a whole.
public enum ConversionError: DiagnosticError {
    case invalidOptions(String)
    case outputIsInput(String)
    case incomplete(directory: String, missing: [String])
    case notAConversionDirectory(String)
    case corruptShard(path: String, String)
    /// A state file dsconvert wrote (`.dsconvert/plan.json`, a resume record) cannot be read.
    case invalidStateFile(path: String, String)
    /// A file the run must copy or read cannot be, found before anything is converted.
    case unreadableInput(path: String, String)
    /// The output folder already holds files, named relative to it, that the run would replace
    /// or remove and that no dsconvert run wrote (a user's own files).
    case wouldOverwrite(directory: String, files: [String])
    /// A job of a job array was started with other settings than those the folder was planned
    /// with (by the first job): settings in words and digests, planned first.
    case settingsConflict(directory: String, planned: String, plannedDigest: String, requested: String, requestedDigest: String)
    /// The input folder recorded in the plan (`plan`) is gone or cannot be listed.
    case inputUnavailable(input: String, plan: String, reason: String)
    /// Another run holds the folder's lock (`lockFile`); `holder` says who that can be.
    case locked(directory: String, lockFile: String, String)
    /// merge-index found shards whose records carry another settings digest than the plan.
    case settingsMismatch(directory: String, shards: [String], planned: String, found: [String])

    public var category: ErrorCategory {
        switch self {
        case .invalidOptions: return .usage
        case .outputIsInput, .incomplete, .notAConversionDirectory, .invalidStateFile, .wouldOverwrite,
             .settingsConflict, .settingsMismatch, .locked: return .output
        case .corruptShard: return .verification
        case .unreadableInput, .inputUnavailable: return .input
        }
    }

    public var code: String {
        switch self {
        case .invalidOptions: return "usage.invalid_option"
        case .outputIsInput: return "conversion.output_is_input"
        case .incomplete: return "conversion.incomplete"
        case .notAConversionDirectory: return "conversion.not_a_conversion_directory"
        case .corruptShard: return "conversion.checksum_mismatch"
        case .invalidStateFile: return "conversion.invalid_state_file"
        case .unreadableInput: return "conversion.unreadable_input"
        case .wouldOverwrite: return "conversion.would_overwrite"
        case .settingsConflict: return "conversion.settings_conflict"
        case .settingsMismatch: return "conversion.settings_mismatch"
        case .locked: return "conversion.output_locked"
        case .inputUnavailable: return "conversion.input_missing"
        }
    }

    public var file: String? {
        switch self {
        case .invalidOptions: return nil
        case let .outputIsInput(d), let .incomplete(d, _), let .notAConversionDirectory(d), let .corruptShard(d, _),
             let .invalidStateFile(d, _), let .unreadableInput(d, _), let .wouldOverwrite(d, _),
             let .settingsConflict(d, _, _, _, _), let .settingsMismatch(d, _, _, _), let .locked(d, _, _),
             let .inputUnavailable(d, _, _):
            return d
        }
    }

    public var message: String {
        switch self {
        case let .invalidOptions(m): return m
        case .outputIsInput: return "the output directory must not be the input directory"
        case let .incomplete(_, missing):
            let shown = missing.prefix(8).joined(separator: ", ")
            return "\(missing.count) output shard(s) are not complete yet (\(shown)\(missing.count > 8 ? ", …" : "")); run the remaining jobs (or the same command again) first"
        case .notAConversionDirectory:
            return "no \(ResumeRecord.directoryName)/plan.json here; merge-index completes a directory that `quantize`/`dequantize --jobs N` wrote into"
        case let .corruptShard(_, m), let .invalidStateFile(_, m), let .unreadableInput(_, m): return m
        case let .wouldOverwrite(_, files):
            let shown = files.prefix(5).joined(separator: ", ")
            return "already holds \(files.count) file(s) this conversion would replace or remove, and no dsconvert run wrote them (\(shown)\(files.count > 5 ? ", …" : "")); move them away or convert into an empty folder"
        case let .settingsConflict(_, planned, pd, requested, rd):
            let what = planned == requested ? "the same options but another config.json or input layout (settings digest \(pd) planned, \(rd) now)"
                : "planned: \(planned) (digest \(pd)); this job: \(requested) (digest \(rd))"
            return "this folder is being converted with other settings: \(what); give every job the same options and input, or convert into another folder (a run without jobs starts the folder over with its own settings)"
        case let .inputUnavailable(_, plan, reason):
            return "the input folder of this conversion (recorded in \(plan)) cannot be read: \(reason); merge-index copies the tokenizer and other files from it and checks the shards' inputs: put it back at that path, nothing was written"
        case let .locked(_, lockFile, holder):
            let name = lockFile.split(separator: "/").suffix(2).joined(separator: "/")
            return "\(holder) (it holds \(name)); wait for it to finish, or convert into another folder"
        case let .settingsMismatch(_, shards, planned, found):
            let shown = shards.prefix(8).joined(separator: ", ")
            return "\(shards.count) shard(s) were made with other settings than the folder's plan (\(shown)\(shards.count > 8 ? ", …" : "")): planned \(planned); found \(Array(Set(found)).sorted().joined(separator: " / ")); run their jobs again with the planned options (they redo those shards), then merge-index"
        }
    }
}
