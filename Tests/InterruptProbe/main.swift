#if canImport(Glibc)
import Glibc
#endif
import SystemIO

// A test helper (InterruptTests runs it): installs dsconvert's signal handling, opens
// `count` AtomicFiles in DIR, commits every third and aborts every third + 1 (so the handler's
// table holds only the rest), prints `ready N` with the number still registered, and then sleeps
// forever: it reports the first signal (`requested SIG`) but never acts on it, so only the
// handler's second-signal path can end it, which is what the test observes.
let args = CommandLine.arguments
guard args.count == 3, let count = Int(args[2]), count >= 0 else {
    fputs("usage: InterruptProbe DIR COUNT\n", stderr)
    exit(64)
}
let dir = args[1]
Interrupt.install()
var open: [AtomicFile] = []
do {
    for i in 0..<count {
        let f = try AtomicFile("\(dir)/file-\(i).bin")
        try f.write(Array("payload \(i)\n".utf8))
        switch i % 3 {
        case 0: try f.commit()
        case 1: f.abort()
        default: open.append(f)
        }
    }
} catch {
    fputs("InterruptProbe: \(error)\n", stderr)
    exit(1)
}
print("ready \(Interrupt.registeredCount)")
fflush(stdout)
var reported = false
while true {
    // Polled rather than pause(2): a signal arriving just before pause would be missed.
    usleep(2_000)
    if Interrupt.requested && !reported {
        reported = true
        print("requested \(Interrupt.signalNumber)")
        fflush(stdout)
    }
}
