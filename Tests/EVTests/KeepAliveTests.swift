import EV
import Glibc
import Testing
import TestSupport

@Suite("Keep-alive (ev_ref / ev_unref)")
struct KeepAliveTests {
    @Test func aWatcherThatDoesNotKeepTheLoopAliveLetsRunReturn() throws {
        let loop = try Loop()
        let timer = try loop.timer(after: .seconds(60)) { _ in }
        timer.keepAlive = false
        let start = monotonicSeconds()
        #expect(loop.run() == false)
        #expect(monotonicSeconds() - start < 5)
        #expect(timer.isActive, "still active, just not keeping the loop running")
        timer.stop()
    }

    @Test func itStillFiresWhileOtherWatchersKeepTheLoopRunning() throws {
        let loop = try Loop()
        var helperFired = false
        let helper = try loop.timer(after: .milliseconds(10)) { _ in helperFired = true }
        helper.keepAlive = false
        try loop.timer(after: .milliseconds(50)) { _ in }
        loop.run()
        #expect(helperFired)
    }

    @Test func aOneShotTimerThatFiredLeavesTheCountBalanced() throws {
        let loop = try Loop()
        // libev stops a fired one-shot timer itself; the wrapper must restore
        // the reference it removed, or the loop's count would drift.
        for _ in 0..<3 {
            let helper = try loop.timer(after: .milliseconds(1)) { _ in }
            helper.keepAlive = false
            try loop.timer(after: .milliseconds(10)) { _ in }
            loop.run()
        }
        var keeperFired = false
        try loop.timer(after: .milliseconds(10)) { _ in keeperFired = true }
        #expect(runUntilDone(loop), "a count drifted up would keep the loop running")
        #expect(keeperFired, "a count drifted down would end the loop before the keeper fired")
        loop.verify()
    }

    @Test func togglingWhileActiveAndAfterStop() throws {
        let loop = try Loop()
        let timer = try loop.timer(after: .seconds(60)) { _ in }
        timer.keepAlive = false
        timer.keepAlive = true
        timer.keepAlive = false
        #expect(loop.run(.noWait) == false)
        timer.stop()
        timer.keepAlive = true
        #expect(loop.run() == false)
        timer.start()
        #expect(loop.run(.noWait) == true, "started again, it keeps the loop alive")
        timer.stop()
    }
}
