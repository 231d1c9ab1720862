import Numerics
import Diagnostics
import Conversion
import Eval
import Foundation
import SystemIO

/// Progress for long runs on standard error: a redrawn bar on a terminal (tensors, bytes, GB/s,
/// ETA), plain log lines otherwise (one per shard, plus one at least every 10 s).
final class TerminalProgress: ConversionObserver {
    let isTTY = Sys.isTerminal(2)
    let quiet: Bool
    var totalBytes = 0
    var totalTensors = 0
    var doneBytes = 0
    var doneTensors = 0
    var skippedBytes = 0
    var start = MonotonicClock.seconds()
    var lastDraw = 0.0
    var lastLog = 0.0
    let verb: String

    init(verb: String, quiet: Bool) {
        self.verb = verb
        self.quiet = quiet
    }

    private func emit(_ s: String) {
        FileHandle.standardError.write(s.data(using: .utf8)!)
    }

    func started(shards: Int, tensors: Int, inputBytes: Int) {
        totalBytes = inputBytes
        totalTensors = tensors
        start = MonotonicClock.seconds()
        if !quiet { emit("\(verb) \(tensors) tensors in \(shards) shard\(shards == 1 ? "" : "s") (\(formatBytes(inputBytes)))\n") }
    }

    func skipped(shard: String, tensors: Int, inputBytes: Int) {
        doneBytes += inputBytes
        skippedBytes += inputBytes
        doneTensors += tensors
        line("\(shard): already complete and verified, skipped")
    }

    func tensorDone(_ name: String, inputBytes: Int) {
        doneBytes += inputBytes
        doneTensors += 1
        let now = MonotonicClock.seconds()
        if isTTY && !quiet && now - lastDraw > 0.1 {
            lastDraw = now
            draw(now)
        } else if !isTTY && !quiet && now - lastLog > 10 {
            lastLog = now
            emit(status(now) + "\n")
        }
    }

    func shardDone(_ name: String, bytes: Int) {
        line("\(name): written (\(formatBytes(bytes)))")
    }

    func note(_ message: String) { line(message) }

    func finish() {
        if isTTY && !quiet { draw(MonotonicClock.seconds()); emit("\n") }
    }

    private func line(_ text: String) {
        guard !quiet else { return }
        // Names in notes come from the input (file and tensor names): no control characters.
        let s = Diagnostic.escaped(text, keepWhitespace: true)
        if isTTY { emit("\r\u{1B}[2K" + s + "\n"); draw(MonotonicClock.seconds()) } else { emit(s + "\n") }
    }

    private func status(_ now: Double) -> String {
        let elapsed = max(now - start, 1e-9)
        let rate = Double(doneBytes - skippedBytes) / elapsed
        let remaining = rate > 0 ? Double(totalBytes - doneBytes) / rate : 0
        let pct = totalBytes > 0 ? 100 * Double(doneBytes) / Double(totalBytes) : 100
        return String(format: "%5.1f%%  %d/%d tensors  %@ / %@  %.2f GB/s  ETA %@", pct, doneTensors, totalTensors,
                      formatBytes(doneBytes), formatBytes(totalBytes), rate / 1e9, duration(remaining))
    }

    private func draw(_ now: Double) {
        let width = 28
        let frac = totalBytes > 0 ? min(1, Double(doneBytes) / Double(totalBytes)) : 1
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        emit("\r\u{1B}[2K" + bar + " " + status(now))
    }
}

func duration(_ s: Double) -> String {
    if !s.isFinite || s < 0 { return "--" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

/// Byte progress of `synth`, `pack`, `unpack` and `decompress` on standard error: a redrawn bar
/// (percent, bytes, GB/s, ETA) on a terminal at most every 0.2 s, a log line at least every 10 s
/// otherwise. Silent when `quiet`.
final class ByteProgressBar {
    private let verb: String
    private let quiet: Bool
    private let isTTY: Bool
    private let start = MonotonicClock.seconds()
    private var lastDraw = 0.0, lastLog: Double
    private var done = 0, total = 0
    private let logInterval: Double
    private let sink: (String) -> Void

    init(verb: String, quiet: Bool, terminal: Bool = Sys.isTerminal(2), logInterval: Double = 10,
         sink: @escaping (String) -> Void = { FileHandle.standardError.write($0.data(using: .utf8)!) }) {
        self.verb = verb
        self.quiet = quiet
        self.isTTY = terminal
        self.logInterval = logInterval
        self.sink = sink
        lastLog = start
    }

    /// What the bar and the log lines print: `pack  42.0%  1.2 GB / 2.9 GB  1.35 GB/s  ETA 0m01s`.
    static func status(verb: String, done: Int, total: Int, elapsed: Double) -> String {
        let rate = Double(done) / max(elapsed, 1e-9)
        let remaining = rate > 0 ? Double(max(total - done, 0)) / rate : .infinity
        let pct = total > 0 ? 100 * Double(done) / Double(total) : 100
        return String(format: "%@ %5.1f%%  %@ / %@  %.2f GB/s  ETA %@", verb, pct, formatBytes(done), formatBytes(total), rate / 1e9, duration(remaining))
    }

    func update(_ done: Int, _ total: Int) {
        self.done = done
        self.total = total
        guard !quiet else { return }
        let now = MonotonicClock.seconds()
        if isTTY {
            guard now - lastDraw > 0.2 else { return }
            lastDraw = now
            emit("\r\u{1B}[2K" + Self.status(verb: verb, done: done, total: total, elapsed: now - start))
        } else if now - lastLog >= logInterval {
            lastLog = now
            emit(Self.status(verb: verb, done: done, total: total, elapsed: now - start) + "\n")
        }
    }

    /// Clears the bar; the command's own summary line (stdout) says what was done and how fast.
    func finish() {
        if isTTY && !quiet { emit("\r\u{1B}[2K") }
    }

    private func emit(_ s: String) { sink(s) }
}

/// Progress of `eval` on standard error: per phase a redrawn bar (tokens, tokens/s, ETA) on a
/// terminal, a log line at least every 10 s otherwise, and one line when the phase ends.
final class TokenProgress: EvalObserver {
    private let isTTY = Sys.isTerminal(2)
    private let quiet: Bool
    private var phase = ""
    private var total = 0, done = 0
    private var start = 0.0, lastDraw = 0.0, lastLog = 0.0

    init(quiet: Bool) { self.quiet = quiet }

    private func emit(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }

    func begin(_ phase: String, tokens: Int) {
        self.phase = phase
        total = tokens
        done = 0
        start = MonotonicClock.seconds()
        lastLog = start
        if !quiet && !isTTY { emit("\(phase): \(grouped(tokens)) tokens to run\n") }
    }

    func advance(tokens: Int) {
        done += tokens
        guard !quiet else { return }
        let now = MonotonicClock.seconds()
        if isTTY && now - lastDraw > 0.1 {
            lastDraw = now
            draw(now)
        } else if !isTTY && now - lastLog > 10 {
            lastLog = now
            emit(status(now) + "\n")
        }
    }

    func end() {
        guard !quiet else { return }
        let now = MonotonicClock.seconds()
        if isTTY { draw(now); emit("\n") } else { emit(status(now) + "\n") }
    }

    private func status(_ now: Double) -> String {
        let elapsed = max(now - start, 1e-9)
        let rate = Double(done) / elapsed
        let remaining = rate > 0 ? Double(total - done) / rate : .infinity
        let pct = total > 0 ? 100 * Double(done) / Double(total) : 100
        return String(format: "%@: %5.1f%%  %@/%@ tokens  %.0f tokens/s  ETA %@", phase, pct, grouped(done), grouped(total), rate, duration(remaining))
    }

    private func draw(_ now: Double) {
        let width = 28
        let frac = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(frac * Double(width))
        emit("\r\u{1B}[2K" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + " " + status(now))
    }
}
