import EV
import Glibc
import TestSupport

/// Runs `loop` one iteration at a time until `condition` holds or `timeout`
/// seconds pass. A tick timer that does not keep the loop alive bounds each
/// wait, so a missing event fails the test instead of hanging it.
///
/// - Returns: whether `condition` became true.
@discardableResult
func runLoop(_ loop: Loop, until condition: () -> Bool, timeout: Double = 10) -> Bool {
    let deadline = monotonicSeconds() + timeout
    let tick = try! loop.timer(after: .milliseconds(10), repeat: .milliseconds(10)) { _ in }
    tick.keepAlive = false
    defer { tick.stop() }
    while !condition() {
        if monotonicSeconds() > deadline { return false }
        loop.run(.once)
    }
    return true
}

/// Runs `loop` for `seconds` and returns; for checking that something does *not* happen.
func runLoop(_ loop: Loop, for seconds: Double) {
    let end = monotonicSeconds() + seconds
    _ = runLoop(loop, until: { monotonicSeconds() >= end }, timeout: seconds + 5)
}

/// Runs `loop` until it has no active watcher left, failing after `timeout` seconds.
///
/// - Returns: false if the watchdog had to break the loop.
@discardableResult
func runUntilDone(_ loop: Loop, timeout: Double = 10) -> Bool {
    var timedOut = false
    let watchdog = try! loop.timer(after: .seconds(timeout)) { timer in
        timedOut = true
        timer.loop?.break(.all)
    }
    watchdog.keepAlive = false
    loop.run()
    watchdog.stop()
    return !timedOut
}

/// A class whose deinit the tests can observe with a weak reference.
final class Token {}
