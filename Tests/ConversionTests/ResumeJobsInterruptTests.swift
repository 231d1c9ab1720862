import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors
import SystemIO

final class ResumeJobsInterruptTests: XCTestCase {
    let shards = CV.deepseekShards

    override func tearDown() {
        Interrupt.reset()
        super.tearDown()
    }

    /// A re-run converts only what is missing or does not verify, and the result is the bytes of a
    /// clean run.
    func testResume() throws {
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        let out = tmp.sub("out")
        let state = out + "/.dsconvert"

        // An unfinished directory: job 0 of 2 converts shards 1, 3, 5 and leaves its records.
        let r0 = try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0)
        XCTAssertEqual(r0.converted, [shards[0], shards[2], shards[4]])
        XCTAssertFalse(r0.finalized)
        XCTAssertEqual(try CV.files(state), ["job-0-of-2.lock", "lock", "model-00001-of-00005.safetensors.json", "model-00003-of-00005.safetensors.json",
                                             "model-00005-of-00005.safetensors.json", "plan.json"])
        XCTAssertFalse(CV.exists(out + "/config.json"), "the directory is completed only at the end")

        // A shard deleted, its record kept: only that shard is converted again.
        try FileManager.default.removeItem(atPath: out + "/" + shards[2])
        let obs = RecordingObserver()
        let r1 = try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0, observer: obs)
        XCTAssertEqual(r1.converted, [shards[2]])
        XCTAssertEqual(r1.skipped, [shards[0], shards[4]])
        XCTAssertEqual(obs.skipped, [shards[0], shards[4]])
        XCTAssertEqual(Set(obs.tensors), Set(try SafeTensorsHeader.read(path: CV.deepseek + "/" + shards[2]).tensorNames))

        // One byte of a recorded shard changed (same size, same record): the checksum finds it.
        var bytes = try CV.bytes(out + "/" + shards[4])
        bytes[bytes.count / 2] ^= 0x01
        try CV.write(bytes, to: out + "/" + shards[4])
        let r2 = try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0)
        XCTAssertEqual(r2.converted, [shards[4]])
        XCTAssertEqual(r2.skipped, [shards[0], shards[2]])
        for i in [0, 2, 4] { XCTAssertEqual(try CV.bytes(out + "/" + shards[i]), try CV.bytes(clean + "/" + shards[i]), shards[i]) }

        // A job with other settings than the folder was planned with refuses to start, naming both.
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, out, try QuantizationScheme(format: .fp8, blockSize: 64), jobs: 2, jobIndex: 0)) { error in
            guard case ConversionError.settingsConflict = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("fp8 block 128x128") && "\(error)".contains("fp8 block 64x64"), "\(error)")
        }

        // The single-process run finishes the rest and completes the directory.
        let r6 = try CV.quantize(CV.deepseek, out)
        XCTAssertEqual(r6.converted, [shards[1], shards[3]])
        XCTAssertEqual(r6.skipped, [shards[0], shards[2], shards[4]])
        XCTAssertTrue(r6.finalized)
        try CV.assertSameDirectory(out, clean)
        XCTAssertEqual(try CV.files(state), try CV.files(clean + "/.dsconvert"), "only what a completed folder keeps")
        XCTAssertEqual(try CV.bytes(state + "/manifest.json"), try CV.bytes(clean + "/.dsconvert/manifest.json"))
    }

    /// config.json's dtype decides the bytes (the compressed-tensors scales are stored in it), so
    /// it is part of the settings digest: a job after `torch_dtype` changed refuses to join the
    /// folder, a single run starts it over (reusing nothing), and the result is the bytes of a
    /// clean run from the changed input. A change the settings summary does not show (another
    /// config field, written into the output config.json) changes the digest all the same.
    func testConfigDtypeIsPartOfTheSettings() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in"), out = tmp.sub("out")
        try CV.copyDirectory(CV.deepseek, to: input)
        let channel = CV.scheme(.fp8, .channel)
        func setConfig(_ key: String, _ value: JSONValue) throws {
            try CV.writeJSON(try CV.json(input + "/config.json").setting(key, value), to: input + "/config.json")
        }
        try setConfig("torch_dtype", .string("bfloat16"))
        let bf16Digest = try PlanBuilder.quantize(Checkpoint(path: input), scheme: channel, ignore: [], shardSize: nil).settingsDigestHex
        try CV.quantize(input, out, channel, jobs: 2, jobIndex: 0)

        try setConfig("torch_dtype", .string("float16"))
        let f16 = try PlanBuilder.quantize(Checkpoint(path: input), scheme: channel, ignore: [], shardSize: nil)
        XCTAssertNotEqual(f16.settingsDigestHex, bf16Digest)
        XCTAssertThrowsError(try CV.quantize(input, out, channel, jobs: 2, jobIndex: 1)) { error in
            guard case let ConversionError.settingsConflict(_, planned, _, requested, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(planned.contains("BF16") && requested.contains("F16"), "\(error)")
            XCTAssertEqual((error as? ConversionError)?.code, "conversion.settings_conflict")
        }
        XCTAssertEqual(try CV.files(out).filter { $0.hasSuffix(".safetensors") }, [shards[0], shards[2], shards[4]], "the refused job wrote nothing")
        let obs = RecordingObserver()
        let r = try CV.quantize(input, out, channel, observer: obs)
        XCTAssertEqual(r.skipped, [], "shards made with the BF16 config are not reused")
        XCTAssertTrue(obs.notes.contains { $0.contains("starting over") }, "\(obs.notes)")
        let clean = tmp.sub("clean")
        try CV.quantize(input, clean, channel)
        try CV.assertSameDirectory(out, clean)
        XCTAssertEqual(try CV.tensors(out)["model.layers.0.mlp.down_proj.weight_scale"]?.dtype, .f16)

        // Another config field: same summary, another digest.
        try setConfig("max_position_embeddings", .int(1234))
        let other = try PlanBuilder.quantize(Checkpoint(path: input), scheme: channel, ignore: [], shardSize: nil)
        XCTAssertEqual(other.settings, f16.settings)
        XCTAssertNotEqual(other.settingsDigestHex, f16.settingsDigestHex)
        // Nothing that varies between machines enters it: a copy of the input elsewhere agrees.
        try CV.copyDirectory(input, to: tmp.sub("elsewhere"))
        XCTAssertEqual(try PlanBuilder.quantize(Checkpoint(path: tmp.sub("elsewhere")), scheme: channel, ignore: [], shardSize: nil).settingsDigestHex,
                       other.settingsDigestHex)
        // --json reports it.
        let cli = try CLI.expect(["quantize", "--fp8", "--granularity", "channel", input, tmp.sub("cli"), "--json"], status: 0)
        XCTAssertEqual(try JSONParser.parse(cli.stdout)["settings_digest"]?.stringValue, other.settingsDigestHex)
        // Each option that changes bytes changes it too.
        let ckpt = try Checkpoint(path: input)
        let variants = try [
            PlanBuilder.quantize(ckpt, scheme: CV.scheme(.fp8, .tensor), ignore: [], shardSize: nil),
            PlanBuilder.quantize(ckpt, scheme: channel, ignore: ["q_proj"], shardSize: nil),
            PlanBuilder.quantize(ckpt, scheme: channel, ignore: [], shardSize: 1 << 30),
            PlanBuilder.quantize(ckpt, scheme: QuantizationScheme(format: .fp8, granularity: .channel, weightOnly: true), ignore: [], shardSize: nil),
            PlanBuilder.quantize(ckpt, scheme: QuantizationScheme(format: .fp8, blockSize: 64), ignore: [], shardSize: nil),
        ].map(\.settingsDigestHex)
        XCTAssertEqual(Set(variants + [other.settingsDigestHex]).count, variants.count + 1, "\(variants)")
    }

    /// Shards made with other settings than the plan (a job on a host where nothing stopped it)
    /// are named by merge-index, which writes nothing.
    func testMergeIndexNamesShardsWithOtherSettings() throws {
        let tmp = try CVTempDir()
        let a = tmp.sub("a"), b = tmp.sub("b")
        try CV.quantize(CV.deepseek, a, jobs: 2, jobIndex: 0)
        try CV.quantize(CV.deepseek, a, jobs: 2, jobIndex: 1)
        let other = try QuantizationScheme(format: .fp8, blockSize: 64)
        try CV.quantize(CV.deepseek, b, other, jobs: 2, jobIndex: 1)
        for f in [shards[3], ".dsconvert/" + shards[3] + ".json"] {
            try FileManager.default.removeItem(atPath: a + "/" + f)
            try FileManager.default.copyItem(atPath: b + "/" + f, toPath: a + "/" + f)
        }
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: a)) { error in
            guard case let ConversionError.settingsMismatch(_, names, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(names, [shards[3]])
            XCTAssertTrue("\(error)".contains("64x64") && "\(error)".contains("128x128"), "\(error)")
        }
        XCTAssertFalse(CV.exists(a + "/config.json"))
        XCTAssertFalse(CV.exists(a + "/model.safetensors.index.json"))
        // Its job run again with the planned options redoes exactly that shard.
        let r = try CV.quantize(CV.deepseek, a, jobs: 2, jobIndex: 1)
        XCTAssertEqual(r.converted, [shards[3]])
        try DirectoryFinisher.finish(outputDirectory: a)
        try CV.quantize(CV.deepseek, tmp.sub("clean"))
        try CV.assertSameDirectory(a, tmp.sub("clean"))
    }

    /// A second writer into a folder is refused at once (exit 1, `conversion.output_locked`),
    /// whichever kind: while a single run holds `.dsconvert/lock` (held here by the test process,
    /// which conflicts like another process would), nothing else starts; while job 0 of 2 runs,
    /// job 1 of 2 works beside it but a second job 0, a single run and merge-index are refused.
    /// Nothing the refused runs could touch changes.
    func testSecondWriterIsRefused() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0)
        func snapshot() throws -> [String: [UInt8]] {
            var m: [String: [UInt8]] = [:]
            for dir in [out, out + "/.dsconvert"] {
                for n in try CV.files(dir) where !n.hasPrefix(".dsconvert") { m[dir + "/" + n] = try CV.bytes(dir + "/" + n) }
            }
            return m
        }
        let before = try snapshot()
        func assertRefused(_ body: @autoclosure () throws -> Any, _ what: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), what, line: line) { error in
                guard case ConversionError.locked = error else { return XCTFail("\(what): \(error)", line: line) }
                XCTAssertEqual((error as? ConversionError)?.code, "conversion.output_locked", line: line)
            }
        }
        func assertUnchanged(line: UInt = #line) throws {
            let now = try snapshot()
            XCTAssertEqual(now.keys.sorted(), before.keys.sorted(), line: line)
            XCTAssertTrue(now == before, "a refused run changed a file", line: line)
        }

        // A single run (or merge-index) holds the folder.
        guard case let .acquired(single) = try FileLock.acquire(out + "/.dsconvert/lock", .exclusive) else { return XCTFail("lock") }
        assertRefused(try CV.quantize(CV.deepseek, out), "single run")
        assertRefused(try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 1), "job")
        assertRefused(try DirectoryFinisher.finish(outputDirectory: out), "merge-index")
        let cli = try CLI.expect(["quantize", "--fp8", CV.deepseek, out, "--json"], status: 1, code: "conversion.output_locked")
        XCTAssertTrue(cli.stderr.contains(".dsconvert/lock") && cli.stderr.contains("another dsconvert run"), cli.stderr)
        try assertUnchanged()
        single.release()

        // Job 0 of 2 is running (shared folder lock, its own job lock).
        guard case let .acquired(shared) = try FileLock.acquire(out + "/.dsconvert/lock", .shared),
              case let .acquired(job0) = try FileLock.acquire(out + "/.dsconvert/job-0-of-2.lock", .exclusive) else { return XCTFail("lock") }
        assertRefused(try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0), "the same job again")
        assertRefused(try CV.quantize(CV.deepseek, out), "single run during the jobs")
        assertRefused(try DirectoryFinisher.finish(outputDirectory: out), "merge-index during the jobs")
        try assertUnchanged()
        let j1 = try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 1)
        XCTAssertEqual(j1.converted, [shards[1], shards[3]], "another job runs beside it")
        job0.release()
        shared.release()

        try DirectoryFinisher.finish(outputDirectory: out)
        XCTAssertEqual(try CV.files(out + "/.dsconvert"), ["lock", "manifest.json"], "job locks go, the folder lock stays")
        try CV.quantize(CV.deepseek, tmp.sub("clean"))
        try CV.assertSameDirectory(out, tmp.sub("clean"))
    }

    /// On a file system that refuses `flock` (ENOLCK / EOPNOTSUPP, injected here), a run warns
    /// and converts as usual; jobs with conflicting settings are still refused, by the digest.
    func testUnsupportedLocksWarnAndTheDigestStillGuards() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out"), jobs = tmp.sub("jobs")
        FaultInjection.install([FaultInjection.Rule(.lock, .error(ENOLCK), pathContains: "/.dsconvert/", times: nil)])
        defer { FaultInjection.clear() }
        let obs = RecordingObserver()
        try CV.quantize(CV.deepseek, out, observer: obs)
        XCTAssertTrue(obs.notes.contains { $0.contains("cannot lock") && $0.contains(".dsconvert/lock") }, "\(obs.notes)")
        try CV.quantize(CV.deepseek, jobs, jobs: 2, jobIndex: 0)
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, jobs, CV.scheme(.int8), jobs: 2, jobIndex: 1)) { error in
            guard case ConversionError.settingsConflict = error else { return XCTFail("\(error)") }
        }
        try CV.quantize(CV.deepseek, jobs, jobs: 2, jobIndex: 1)
        try DirectoryFinisher.finish(outputDirectory: jobs)
        XCTAssertGreaterThan(FaultInjection.firedCounts[0], 4)
        FaultInjection.clear()
        try CV.quantize(CV.deepseek, tmp.sub("clean"))
        try CV.assertSameDirectory(out, tmp.sub("clean"))
        try CV.assertSameDirectory(jobs, tmp.sub("clean"))
    }

    /// Two processes into one folder: while the first is converting (stopped with SIGSTOP in the
    /// middle of its shard, so the timing is the test's), a second `quantize` — here with other
    /// settings — is refused with exit 1 and touches nothing; resumed, the first finishes with
    /// the bytes of a clean run. Jobs of one array in two processes run side by side.
    func testTwoProcessesIntoOneFolder() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in"), out = tmp.sub("out"), jobs = tmp.sub("jobs")
        try CV.writeConstantCheckpoint(ModelBlueprint(kind: .llama, scale: 8, layers: 2), to: input, shards: 2)
        let exe = try CLI.executable()

        /// Starts `dsconvert args` and stops it (SIGSTOP) once its first temporary exists in `dir`.
        func startAndStopMidway(_ args: [String], watching dir: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date(timeIntervalSinceNow: 60)
            while p.isRunning && Date() < deadline {
                if !CV.temporaries(dir).isEmpty {
                    kill(p.processIdentifier, SIGSTOP)
                    return p
                }
                usleep(200)
            }
            if p.isRunning { p.terminate() }
            XCTFail("\(args) finished (exit \(p.terminationStatus)) before it could be caught converting")
            throw CocoaError(.userCancelled)
        }
        func resumeAndWait(_ p: Process) -> Int32 {
            kill(p.processIdentifier, SIGCONT)
            p.waitUntilExit()
            return p.terminationStatus
        }

        let first = try startAndStopMidway(["quantize", "--fp8", input, out, "--quiet"], watching: out)
        let inFlight = CV.temporaries(out)
        let second = try CLI.expect(["quantize", "--int8", input, out, "--json"], status: 1, code: "conversion.output_locked")
        XCTAssertTrue(second.stderr.contains("another dsconvert run"), second.stderr)
        XCTAssertEqual(CV.temporaries(out), inFlight, "the second run removed nothing of the first's")
        XCTAssertEqual(resumeAndWait(first), 0)
        try CV.quantize(input, tmp.sub("clean"))
        try CV.assertSameDirectory(out, tmp.sub("clean"))

        // Jobs 0 and 1 of 2 at once: job 1 completes while job 0 is stopped mid-shard, a second
        // job 0 and merge-index are refused, and merge-index after both gives the single run's bytes.
        let job0 = try startAndStopMidway(["quantize", "--fp8", input, jobs, "--jobs", "2", "--job-index", "0", "--quiet"], watching: jobs)
        try CLI.expect(["quantize", "--fp8", input, jobs, "--jobs", "2", "--job-index", "1", "--quiet"], status: 0)
        try CLI.expect(["quantize", "--fp8", input, jobs, "--jobs", "2", "--job-index", "0", "--json"], status: 1, code: "conversion.output_locked")
        try CLI.expect(["merge-index", jobs, "--json"], status: 1, code: "conversion.output_locked")
        XCTAssertEqual(resumeAndWait(job0), 0)
        try CLI.expect(["merge-index", jobs, "--quiet"], status: 0)
        try CV.assertSameDirectory(jobs, tmp.sub("clean"))
    }

    /// Ctrl-C (simulated with `Interrupt.request()` after the k-th tensor): the run throws, no
    /// shard under its final name is partial, no temporary is left, and a re-run completes the
    /// directory with the bytes of a clean run, converting only what is missing.
    func testInterruptionAndResume() throws {
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        for k in [1, 2, 11, 60, 138] {
            let out = tmp.sub("out-\(k)")
            let obs = RecordingObserver()
            obs.afterTensor = { n in if n == k { Interrupt.request() } }
            XCTAssertThrowsError(try CV.quantize(CV.deepseek, out, observer: obs), "k=\(k)") { error in
                XCTAssertTrue(error is Interrupted, "k=\(k): \(error)")
            }
            Interrupt.reset()
            XCTAssertEqual(CV.temporaries(out), [], "k=\(k)")
            XCTAssertFalse(CV.exists(out + "/config.json"))
            XCTAssertFalse(CV.exists(out + "/model.safetensors.index.json"))
            var present: [String] = []
            for s in shards where CV.exists(out + "/" + s) {
                present.append(s)
                let bytes = try CV.bytes(out + "/" + s)
                XCTAssertEqual(bytes, try CV.bytes(clean + "/" + s), "k=\(k): \(s) is under its final name but not complete")
                let rec = try XCTUnwrap(ResumeRecord.read(out + "/.dsconvert/" + s + ".json"), "k=\(k): \(s) has no record")
                XCTAssertEqual(rec.size, bytes.count)
                XCTAssertEqual(rec.xxh3, bytes.withUnsafeBytes { XXH3.hash($0) })
            }
            XCTAssertLessThan(present.count, shards.count, "k=\(k): interrupted before the end")

            let r = try CV.quantize(CV.deepseek, out)
            XCTAssertEqual(r.skipped, present, "k=\(k)")
            XCTAssertEqual(r.converted, shards.filter { !present.contains($0) }, "k=\(k)")
            try CV.assertSameDirectory(out, clean, "k=\(k)")
        }
    }

    /// `--jobs 3` (each job in turn) + merge-index = a single-process run, byte for byte; merge-index
    /// before every job has finished names what is missing.
    func testJobsAndMergeIndex() throws {
        let tmp = try CVTempDir()
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        let out = tmp.sub("out")
        let expected = [[shards[0], shards[3]], [shards[1], shards[4]], [shards[2]]]

        let j0 = try CV.quantize(CV.deepseek, out, jobs: 3, jobIndex: 0)
        XCTAssertEqual(j0.converted, expected[0])
        XCTAssertFalse(j0.finalized)
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case let ConversionError.incomplete(_, missing) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(missing, [shards[1], shards[2], shards[4]])
            XCTAssertTrue("\(error)".contains(shards[2]), "\(error)")
        }
        let j2 = try CV.quantize(CV.deepseek, out, jobs: 3, jobIndex: 2)
        XCTAssertEqual(j2.converted, expected[2])
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case let ConversionError.incomplete(_, missing) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(missing, [shards[1], shards[4]])
        }
        let j1 = try CV.quantize(CV.deepseek, out, jobs: 3, jobIndex: 1)
        XCTAssertEqual(j1.converted, expected[1])

        // merge-index verifies every shard's checksum: a changed byte is refused, with one piece
        // of advice (the same as docs/distributed.md's): re-run the job that wrote the shard,
        // which notices the mismatch and rewrites it; nothing is to be deleted.
        var bytes = try CV.bytes(out + "/" + shards[3])
        bytes[100] ^= 0x80
        try CV.write(bytes, to: out + "/" + shards[3])
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case let ConversionError.corruptShard(path, message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix(shards[3]))
            XCTAssertTrue(message.contains("run job index 0 of the 3 jobs again") && message.contains("nothing needs deleting"), message)
            XCTAssertFalse(message.contains("delete it"), message)
        }
        XCTAssertFalse(CV.exists(out + "/config.json"), "nothing written")
        let again = try CV.quantize(CV.deepseek, out, jobs: 3, jobIndex: 0)
        XCTAssertEqual(again.converted, [shards[3]], "the job rewrites exactly the damaged shard")
        XCTAssertEqual(again.skipped, [shards[0]])
        let guide = String(decoding: try CV.bytes(CV.root + "/docs/distributed.md"), as: UTF8.self)
            .split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(guide.contains("re-run the job that owns the shard"), "docs/distributed.md gives the same advice")
        XCTAssertFalse(guide.contains("delete it and run"), "docs/distributed.md gives the same advice")

        let result = try DirectoryFinisher.finish(outputDirectory: out)
        XCTAssertEqual(result.shards, 5)
        try CV.assertSameDirectory(out, clean)
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case ConversionError.notAConversionDirectory = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, tmp.sub("x"), jobs: 2, jobIndex: 2)) { error in
            guard case ConversionError.invalidOptions = error else { return XCTFail("\(error)") }
        }
    }

    /// Jobs of a job array run at the same time in one directory: starting a job must not delete
    /// another job's temporary that is still being written (its rename would then fail), only its
    /// own leftovers; merge-index clears what killed runs left — dsconvert temporaries only.
    func testJobLeavesOtherJobsTemporariesAlone() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try FileManager.default.createDirectory(atPath: out + "/.dsconvert", withIntermediateDirectories: true)
        // Job 1 (another process, on another host) is writing shard 2 and its record; job 0 left a
        // temporary of shard 1 when killed. Names in dsconvert's format, written out by hand.
        let inFlight = out + "/.dsconvert-tmp-otherhost-999999-0-0badc0de-" + shards[1]
        let inFlightRecord = out + "/.dsconvert/.dsconvert-tmp-otherhost-999999-1-0badc0df-" + shards[1] + ".json"
        let leftover = out + "/.dsconvert-tmp-myhost-999998-3-00000001-" + shards[0]
        for p in [inFlight, inFlightRecord, leftover] { try CV.write([1, 2, 3], to: p) }

        try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0)
        XCTAssertTrue(CV.exists(inFlight), "job 0 deleted job 1's file in flight")
        XCTAssertTrue(CV.exists(inFlightRecord), "job 0 deleted job 1's record in flight")
        XCTAssertFalse(CV.exists(leftover), "job 0's own leftover is removed")

        // Job 1 completes normally; merge-index then leaves no temporary behind.
        try FileManager.default.removeItem(atPath: inFlightRecord)
        try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 1)
        try CV.write([1], to: out + "/.dsconvert-tmp-h0-999997-0-ffffffff-config.json")
        try DirectoryFinisher.finish(outputDirectory: out)
        XCTAssertEqual(CV.temporaries(out), [])
        let clean = tmp.sub("clean")
        try CV.quantize(CV.deepseek, clean)
        try CV.assertSameDirectory(out, clean)
    }

    /// merge-index with the input folder moved away checks it before anything else and writes
    /// nothing: the error names the input folder (and the plan that records it); with the folder
    /// back in place the merge completes as usual.
    func testMergeIndexNamesAMissingInputAndWritesNothing() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in"), moved = tmp.sub("moved"), out = tmp.sub("out")
        try CV.copyDirectory(CV.deepseek, to: input)
        try CV.quantize(input, out, jobs: 2, jobIndex: 0)
        try CV.quantize(input, out, jobs: 2, jobIndex: 1)
        try FileManager.default.moveItem(atPath: input, toPath: moved)
        let realInput = (moved as NSString).resolvingSymlinksInPath.replacingOccurrences(of: "/moved", with: "/in")
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case let ConversionError.inputUnavailable(path, plan, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, realInput)
            XCTAssertTrue(plan.hasSuffix(".dsconvert/plan.json"), plan)
            XCTAssertTrue("\(error)".contains("input folder") && "\(error)".contains(realInput), "\(error)")
        }
        let r = try CLI.expect(["merge-index", out, "--json"], status: 1, code: "conversion.input_missing")
        XCTAssertEqual(r.error?["file"]?.stringValue, realInput, r.stdout)
        XCTAssertEqual(try CV.modelFiles(out), shards, "no index, config or copies written")

        try FileManager.default.moveItem(atPath: moved, toPath: input)
        try DirectoryFinisher.finish(outputDirectory: out)
        try CV.quantize(input, tmp.sub("clean"))
        try CV.assertSameDirectory(out, tmp.sub("clean"))
    }

    /// An input file that changes between the jobs and merge-index makes the shards made from it
    /// stale: merge-index names them, and re-running their job redoes exactly those.
    func testMergeIndexNoticesChangedInputs() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in"), out = tmp.sub("out")
        try CV.copyDirectory(CV.deepseek, to: input)
        try CV.quantize(input, out, jobs: 2, jobIndex: 0)
        try CV.quantize(input, out, jobs: 2, jobIndex: 1)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: input + "/" + shards[3])
        XCTAssertThrowsError(try DirectoryFinisher.finish(outputDirectory: out)) { error in
            guard case let ConversionError.incomplete(_, missing) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(missing, [shards[3]])
        }
        let r = try CV.quantize(input, out, jobs: 2, jobIndex: 1)
        XCTAssertEqual(r.converted, [shards[3]])
        XCTAssertEqual(r.skipped, [shards[1]])
        try DirectoryFinisher.finish(outputDirectory: out)
        let clean = tmp.sub("clean")
        try CV.quantize(input, clean)
        try CV.assertSameDirectory(out, clean)
    }
}
