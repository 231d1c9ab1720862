import Engine
import Foundation

/// The first non-finite activation an observer saw: its site and global window, recorded from
/// whichever worker thread meets it (the collectors' calls for different sites run at once),
/// read once the pass is over to name the input in `CalibrationError.nonFinite`.
final class NonFiniteSighting: @unchecked Sendable {
    private let lock = NSLock()
    private var first: (site: ObservedSite, window: Int)?

    func record(_ site: ObservedSite, window: Int) {
        lock.lock()
        if first == nil { first = (site, window) }
        lock.unlock()
    }

    var seen: (site: ObservedSite, window: Int)? {
        lock.lock()
        defer { lock.unlock() }
        return first
    }
}
