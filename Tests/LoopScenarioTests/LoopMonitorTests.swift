import EV
import Epoll
@_spi(EventLoops) import EventCore
import Glibc
import Testing
import TestSupport

/// Issue "At home in the Swift server ecosystem": a loop you can see into -
/// each loop's ``LoopMonitor`` measures its time blocked in the kernel and
/// running, its delay (a probe timer's lateness) and names every callback
/// or task step that held it over the threshold, as asyncio's debug mode
/// does. Every assertion is one the scheduling cannot break: a callback
/// that sleeps 150 ms takes at least 150 ms however loaded the machine is.
@Suite("The loop monitor")
struct LoopMonitorTests {
    @Test(arguments: LoopKind.allCases)
    func aSlowCallbackTimerOrTaskStepIsNamedAndAQuickOneIsNot(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try slowCallbacks(Loop())
        case .epoll: try slowCallbacks(EpollLoop())
        }
    }

    func slowCallbacks<L: EventLoop>(_ loop: L) throws {
        let reports = LockedValue<[SlowCallback]>([])
        loop.monitor.start(LoopMonitorOptions(slowCallbackThreshold: .milliseconds(50), probeInterval: nil) { report in
            reports.withLock { $0.append(report) }
        })
        let (a, b) = try makeSocketPair()
        defer { close(a); close(b) }
        // A readiness callback, a timer and a task step, each 150 ms long.
        var readinessRan = false
        let watch = try loop.watchReadiness(FileDescriptor(rawValue: b), .read) { _ in
            var byte: UInt8 = 0
            _ = read(b, &byte, 1)
            sleepBlocking(.milliseconds(150))
            readinessRan = true
        }
        _ = write(a, "x", 1)
        var timerRan = false
        _ = loop.schedule(after: .milliseconds(1)) {
            sleepBlocking(.milliseconds(150))
            timerRan = true
        }
        #expect(loop.runUntil { readinessRan && timerRan })
        watch.cancel()
        try loop.run { _ in
            sleepBlocking(.milliseconds(150)) // the task's one step holds the loop
        }
        let seen = reports.withLock { $0 }
        let sources = seen.map(\.source)
        #expect(seen.count >= 3 && loop.monitor.statistics.slowCallbacks == UInt64(seen.count), "\(seen)")
        #expect(seen.allSatisfy { $0.duration >= .milliseconds(150) || !$0.source.contains("descriptor") }, "\(seen)")
        #expect(sources.contains { $0.contains("descriptor \(b)") }, "the readiness callback, by its descriptor: \(sources)")
        #expect(sources.contains { $0.localizedCaseInsensitiveContains("timer") }, "the timer: \(sources)")
        #expect(sources.contains { $0.contains("task") }, "the task's step: \(sources)")
        #expect(seen.first?.description.contains("held the loop for") == true)
        // Over a threshold of 10 s, the same work is not slow.
        reports.withLock { $0 = [] }
        loop.monitor.start(LoopMonitorOptions(slowCallbackThreshold: .seconds(10), probeInterval: nil) { report in
            reports.withLock { $0.append(report) }
        })
        var quickRan = false
        _ = loop.schedule(after: .zero) {
            sleepBlocking(.milliseconds(150))
            quickRan = true
        }
        #expect(loop.runUntil { quickRan })
        #expect(reports.withLock { $0 }.isEmpty && loop.monitor.statistics.slowCallbacks == 0)
        loop.monitor.stop()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func blockedRunningAndDelayAreMeasuredAndTheProbeKeepsNothingRunning(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try timeAndDelay(Loop())
        case .epoll: try timeAndDelay(EpollLoop())
        }
    }

    func timeAndDelay<L: EventLoop>(_ loop: L) throws {
        #expect(loop.monitor.statistics == LoopStatistics(), "nothing measured before it starts")
        loop.monitor.start(LoopMonitorOptions(probeInterval: .milliseconds(5)))
        // 300 ms of waiting for a timer, then 200 ms of a callback that
        // blocks, then 50 ms more (the late probe runs then).
        var done = false
        _ = loop.schedule(after: .milliseconds(300)) {
            sleepBlocking(.milliseconds(200))
            _ = loop.schedule(after: .milliseconds(50)) { done = true }
        }
        // The probe does not keep the loop running: runUntilDone returns once the timer has run.
        loop.runUntilDone()
        #expect(done)
        let statistics = loop.monitor.statistics
        #expect(statistics.iterations > 1, "\(statistics)")
        #expect(statistics.running >= .milliseconds(200), "the blocking callback ran: \(statistics.running)")
        #expect(statistics.blocked >= .milliseconds(100), "the loop waited for the timer: \(statistics.blocked)")
        #expect(statistics.blocked + statistics.running >= .milliseconds(500), "\(statistics)")
        #expect(statistics.utilization > 0 && statistics.utilization < 1)
        // The probe due while the callback blocked ran at least ~195 ms late.
        #expect(statistics.delay.count > 1 && statistics.delay.maximum >= .milliseconds(150), "\(statistics.delay)")
        #expect(statistics.delay.percentile(1) == statistics.delay.maximum)
        #expect(statistics.delay.percentile(0.5) <= statistics.delay.percentile(0.99))
        // Stopped, it measures nothing more.
        loop.monitor.stop()
        _ = loop.schedule(after: .milliseconds(50)) {}
        loop.runUntilDone()
        #expect(loop.monitor.statistics == statistics)
        loop.close()
    }

    @Test func theHistogramsBucketsAndPercentiles() {
        var histogram = LatencyHistogram()
        #expect(histogram.percentile(0.99) == .zero && histogram.mean == .zero)
        for _ in 0..<98 { histogram.record(.microseconds(2)) }
        histogram.record(.milliseconds(7))
        histogram.record(.seconds(30))
        histogram.record(.milliseconds(-3)) // a negative delay counts as none
        #expect(histogram.count == 101 && histogram.maximum == .seconds(30))
        #expect(histogram.counts.first == 99 && histogram.counts.last == 1)
        #expect(histogram.percentile(0.5) == .nanoseconds(2500), "the bound of its bucket")
        #expect(histogram.percentile(0.99) == .milliseconds(10))
        #expect(histogram.percentile(1) == .seconds(30))
    }
}
