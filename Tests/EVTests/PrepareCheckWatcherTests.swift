import EV
import Glibc
import Testing
import TestSupport

@Suite("PrepareWatcher and CheckWatcher")
struct PrepareCheckWatcherTests {
    @Test func prepareRunsBeforeBlockingAndCheckAfterWakingUp() throws {
        let loop = try Loop()
        var log: [String] = []
        let prepare = loop.prepare { _ in log.append("prepare") }
        let check = loop.check { _ in log.append("check") }
        // The second timer starts in the first one's callback, so it fires in
        // a later iteration however late the loop runs (two timers due 20 ms
        // apart fired in one iteration when the loop was held longer than that).
        var second: TimerWatcher?
        try loop.timer(after: .milliseconds(20)) { _ in
            log.append("timer")
            second = try? loop.timer(after: .milliseconds(20)) { _ in log.append("timer2") }
        }
        prepare.keepAlive = false
        check.keepAlive = false
        #expect(runUntilDone(loop))
        prepare.stop()
        check.stop()
        #expect(second != nil)
        // Each iteration: prepare, (block), check, then the iteration's callbacks.
        let firstTimer = try #require(log.firstIndex(of: "timer"))
        #expect(Array(log[(firstTimer - 2)...firstTimer]) == ["prepare", "check", "timer"])
        let secondTimer = try #require(log.firstIndex(of: "timer2"))
        #expect(Array(log[(secondTimer - 2)...secondTimer]) == ["prepare", "check", "timer2"])
        #expect(log.first == "prepare")
    }

    @Test func prepareAndCheckRunOncePerIteration() throws {
        let loop = try Loop()
        var prepares = 0
        var checks = 0
        let prepare = loop.prepare { _ in prepares += 1 }
        let check = loop.check { _ in checks += 1 }
        prepare.keepAlive = false
        check.keepAlive = false
        let before = loop.iteration
        var ticks = 0
        try loop.timer(after: .milliseconds(1), repeat: .milliseconds(1)) { timer in
            ticks += 1
            if ticks == 10 { timer.stop() }
        }
        loop.run()
        let iterations = Int(loop.iteration - before)
        #expect(prepares == iterations)
        #expect(checks == iterations)
        #expect(iterations >= 10)
        prepare.stop()
        check.stop()
    }
}
