import EV
import Epoll
@_spi(EventLoops) import EventCore
import EventLoopServices
import Glibc
import Logging
import MetricsTestKit
import ServiceLifecycle
import Testing
import TestSupport

/// Issue "At home in the Swift server ecosystem": a loop group runs as a
/// swift-service-lifecycle service and reports its loops to swift-metrics
/// (through swift-metrics' own test backend, `TestMetrics`).
@Suite("The loops in ServiceLifecycle and swift-metrics")
struct LoopServicesTests {
    @Test(arguments: LoopKind.allCases)
    func aLoopGroupIsAServiceThatShutsDownGracefully(_ kind: LoopKind) async throws {
        switch kind {
        case .libev: try await gracefulService(EventLoopGroup(loops: 2) { try Loop() })
        case .epoll: try await gracefulService(EventLoopGroup(loops: 2) { try EpollLoop() })
        }
    }

    func gracefulService<L: EventLoop>(_ loops: EventLoopGroup<L>) async throws {
        let handled = LockedValue(0)
        let finished = LockedValue(0)
        loops.onGracefulShutdown { loop in
            handled.withLock { $0 += 1 }
            // Work the graceful shutdown waits for: a timer 200 ms later.
            _ = loop.schedule(after: .milliseconds(200)) { finished.withLock { $0 += 1 } }
        }
        let group = ServiceGroup(services: [LoopGroupService(loops, forcefulSignals: [])], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: .milliseconds(50))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(handled.withLock { $0 } == 2, "each loop's handler ran")
        #expect(finished.withLock { $0 } == 2, "each loop ran until its work was done")
        await #expect(throws: EventLoopError.self, "the group is shut down") { try await loops.shutdownGracefully() }
    }

    /// Work that would hold a graceful shutdown for an hour, and a service
    /// that would wait that hour: cancelled, the group ends all the same
    /// (a wall-clock bound would measure the test pool's scheduling instead:
    /// under make test, async tests waited minutes for a thread).
    @Test(.timeLimit(.minutes(10)))
    func aCancelledServiceStopsTheLoopsAtOnce() async throws {
        let loops = try EventLoopGroup(loops: 1) { try EpollLoop() }
        let fired = LockedValue(false)
        try loops.executors[0].execute { loop in _ = loop.schedule(after: .seconds(3600)) { fired.withLock { $0 = true } } }
        let group = ServiceGroup(services: [LoopGroupService(loops, shutdownTimeout: .seconds(3600), forcefulSignals: [])],
                                 logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(50))
        running.cancel()
        _ = await running.result
        #expect(!fired.withLock { $0 }, "the loop was stopped, not run down")
        await #expect(throws: EventLoopError.self, "the group is shut down") { try await loops.shutdownGracefully() }
    }

    @Test(arguments: LoopKind.allCases)
    func theLoopsMonitorsAreReportedToSwiftMetrics(_ kind: LoopKind) async throws {
        let metrics = TestMetrics()
        switch kind {
        case .libev: try await report(EventLoopGroup(loops: 2) { try Loop() }, metrics)
        case .epoll: try await report(EventLoopGroup(loops: 2) { try EpollLoop() }, metrics)
        }
    }

    func report<L: EventLoop>(_ loops: EventLoopGroup<L>, _ metrics: TestMetrics) async throws {
        // A threshold no callback of the reporter or the probe comes near,
        // even preempted on a loaded machine; a callback three times over it.
        try LoopMetrics.report(loops, interval: .milliseconds(20),
                               options: LoopMonitorOptions(slowCallbackThreshold: .milliseconds(250)), factory: metrics)
        let slowDone = LockedValue(false)
        try loops.executors[1].execute { loop in
            _ = loop.schedule(after: .milliseconds(10)) {
                sleepBlocking(.milliseconds(750))
                slowDone.withLock { $0 = true }
            }
        }
        while !slowDone.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
        // The executor's queue: 200 closures queued by a callback on loop 0
        // (so on its thread: its local queue) wait there together, and the
        // next round of the turn takes them at once. Nothing holds the loop
        // meanwhile: a callback that waited for this task would be a slow one
        // whenever the task is late (seen under make stress-test).
        let ran = LockedValue(0)
        let executor = loops.executors[0]
        try executor.execute { _ in
            for _ in 0..<200 { try? executor.execute { _ in ran.withLock { $0 += 1 } } }
        }
        while ran.withLock({ $0 }) < 200 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100)) // a report after it
        try await loops.shutdownGracefully()
        for loop in ["0", "1"] {
            #expect(metrics.counterTotal(label: "loop_iterations_total", dimensions: [("loop", loop)]) > 0)
            let utilization = try metrics.expectGauge("loop_utilization", [("loop", loop)])
            #expect(utilization.values.allSatisfy { (0...1).contains($0) } && !utilization.values.isEmpty)
            let delay = try metrics.expectGauge("loop_delay_seconds", [("loop", loop), ("quantile", "0.99")])
            #expect(!delay.values.isEmpty && delay.values.allSatisfy { $0 >= 0 })
        }
        let peak = try metrics.expectGauge("loop_queue_depth_max", [("loop", "0")])
        #expect((peak.values.max() ?? 0) >= 200, "\(peak.values)")
        for loop in ["0", "1"] {
            #expect(!(try metrics.expectGauge("loop_queue_depth", [("loop", loop)])).values.isEmpty)
            let watchers = try metrics.expectGauge("loop_active_watchers", [("loop", loop)])
            #expect(!watchers.values.isEmpty && watchers.values.allSatisfy { $0 >= 0 }, "\(watchers.values)")
        }
        #expect(metrics.counterTotal(label: "loop_slow_callbacks_total", dimensions: [("loop", "1")]) == 1)
        #expect(metrics.counterTotal(label: "loop_slow_callbacks_total", dimensions: [("loop", "0")]) == 0)
        // The 750 ms callback also made loop 1's probe late: its largest delay shows it.
        let maximum = try metrics.expectGauge("loop_delay_seconds", [("loop", "1"), ("quantile", "max")])
        #expect((maximum.values.max() ?? 0) >= 0.25, "\(maximum.values)")
    }
}
