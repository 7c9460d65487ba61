import EV
import Epoll
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

/// The one thread model, on both loops: a loop on a thread, a group of them,
/// work handed to a loop from any thread, and the checked loop-bound box.
@Suite("Threads, groups and cross-thread work on both loops")
struct ThreadModelTests {
    /// Runs `body` with a group of `count` loops of `kind`.
    func withGroup(_ kind: LoopKind, loops count: Int, _ body: (AnyGroup) throws -> Void) throws {
        switch kind {
        case .libev: try body(AnyGroup(try EventLoopGroup<Loop>(loops: count) { try Loop() }))
        case .epoll: try body(AnyGroup(try EventLoopGroup<EpollLoop>(loops: count) { try EpollLoop() }))
        }
    }

    @Test(arguments: LoopKind.allCases)
    func executeHandsTheClosureItsLoop(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 1) { group in
            let seen = LockedValue<[String]>([])
            let done = LockedValue(false)
            try group.executeOnEach { loopName, isCurrent in
                seen.withLock { $0.append("\(loopName) current=\(isCurrent)") }
                done.withLock { $0 = true }
            }
            #expect(waitUntil { done.withLock { $0 } })
            #expect(seen.withLock { $0 } == ["\(kind == .libev ? "Loop" : "EpollLoop") current=true"])
            try group.shutdown(5)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func scheduledWorkRunsOnceOrIsCancelledFromAnyThread(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 1) { group in
            let ran = LockedValue<[String]>([])
            let start = monotonicSeconds()
            let kept = group.schedule(0.05) { ran.withLock { $0.append("kept") } }
            let cancelled = group.schedule(30) { ran.withLock { $0.append("cancelled") } }
            // Cancelled from this (non-loop) thread, long before it is due.
            #expect(cancelled.cancel())
            #expect(!cancelled.cancel(), "a second cancel does nothing")
            #expect(waitUntil { ran.withLock { $0 } == ["kept"] })
            #expect(monotonicSeconds() - start >= 0.045)
            #expect(!kept.cancel(), "too late: it has run")
            usleep(100_000)
            #expect(ran.withLock { $0 } == ["kept"])
            try group.shutdown(5)
        }
    }

    /// Work scheduled on a loop that has closed is refused with the loop's
    /// closed error (as `execute` is), and work a closing loop drops says so
    /// through its handle - it used to vanish, its handle saying neither
    /// cancelled nor anything else.
    @Test(arguments: LoopKind.allCases)
    func scheduledWorkOnAClosedLoopIsRefusedAndWorkDroppedByTheCloseIsReported(_ kind: LoopKind) throws {
        let loop = try kind.make()
        let executor = loop.executor
        let ran = LockedValue(0)
        // Armed: the loop ran the job that starts its timer.
        let armed = try executor.schedule(after: .seconds(60)) { _ in ran.withLock { $0 += 1 } }
        _ = loop.runUntil(timeout: 0.05) { false }
        // Queued: submitted, not yet taken by the loop (it does not run again).
        let queued = try executor.schedule(after: .seconds(60)) { _ in ran.withLock { $0 += 1 } }
        let cancelled = try executor.schedule(after: .seconds(60)) { _ in ran.withLock { $0 += 1 } }
        #expect(cancelled.cancel())
        #expect(armed.outcome == .pending && queued.outcome == .pending)
        loop.close()
        #expect(armed.outcome == .dropped, "\(kind): \(armed.outcome)")
        #expect(queued.outcome == .dropped, "\(kind): \(queued.outcome)")
        #expect(cancelled.outcome == .cancelled)
        #expect(!armed.cancel(), "dropped work cannot be cancelled")
        do {
            _ = try executor.schedule(after: .seconds(1)) { _ in ran.withLock { $0 += 1 } }
            Issue.record("\(kind): a closed loop took work")
        } catch {
            #expect(kind.isLoopClosed(error), "\(kind): \(error)")
        }
        #expect(ran.withLock { $0 } == 0)
    }

    @Test(arguments: LoopKind.allCases)
    func nextGoesRoundAndAnyPrefersTheCurrentLoop(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 3) { group in
            let picks = (0..<6).map { _ in group.nextIndex() }
            #expect(Set(picks) == [0, 1, 2] && picks[0] != picks[1], "\(picks)")
            // On loop 2, any() is loop 2, every time.
            let onLoop = LockedValue<[Int]>([])
            let anyIndex = group.anyIndex
            try group.onLoop(2) { onLoop.withLock { $0 = (0..<5).map { _ in anyIndex() } } }
            #expect(waitUntil { !onLoop.withLock { $0 }.isEmpty })
            #expect(onLoop.withLock { $0 } == [2, 2, 2, 2, 2])
            try group.shutdown(5)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func listenersShareOnePortOnePerLoop(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 2) { group in
            let listeners = try group.listeners()
            defer { listeners.forEach { $0.close() } }
            let ports = try listeners.map { try $0.localAddress().port }
            #expect(listeners.count == 2 && ports[0] == ports[1] && ports[0] != 0, "\(ports)")
            try group.shutdown(5)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aGracefulShutdownRunsTheHandlersLetsWorkFinishAndJoins(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 2) { group in
            let log = LockedValue<[String]>([])
            group.onGracefulShutdown { log.withLock { $0.append("handler") } }
            // Work that outlives the handlers: a timer 0.2 s out on each loop.
            try group.executeOnEach { _, _ in }
            group.scheduleOnEach(0.2) { log.withLock { $0.append("finished") } }
            let start = monotonicSeconds()
            try group.shutdown(5)
            let elapsed = monotonicSeconds() - start
            #expect(log.withLock { $0 }.sorted() == ["finished", "finished", "handler", "handler"], "\(log.withLock { $0 })")
            #expect(elapsed >= 0.15 && elapsed < 4, "\(elapsed) s")
            let again = caughtError { try group.shutdown(1) }
            #expect(again?.code == .loopClosed)
            #expect(again?.description.contains("shut down already") == true)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aGracefulShutdownStopsWhatDoesNotFinishInTime(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 1) { group in
            group.scheduleOnEach(60) {}
            let start = monotonicSeconds()
            let late = caughtError { try group.shutdown(0.3) }
            #expect(late?.code == .shutdownTimedOut)
            #expect(late?.description.contains("1 loop still had work after 300 ms") == true, "\(String(describing: late))")
            #expect(monotonicSeconds() - start < 3)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aLoopBoundValueIsReachedOnItsLoopOnly(_ kind: LoopKind) throws {
        try withGroup(kind, loops: 1) { group in
            let result = LockedValue<Int?>(nil)
            try group.withBoundCounter { bound in
                // On the loop: fine.
                result.withLock { $0 = bound.value.count }
            }
            #expect(waitUntil { result.withLock { $0 } == 7 })
            try group.shutdown(5)
        }
    }

    @Test func aLoopBoundValueTouchedOffItsLoopTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let thread = try LoopThread()
            let bound = LockedValue<LoopBound<Counter>?>(nil)
            try thread.executor.execute { loop in bound.withLock { $0 = LoopBound(Counter(), loop: loop.executor) } }
            while bound.withLock({ $0 }) == nil { usleep(1000) }
            _ = bound.withLock { $0 }!.value // not on the loop: traps
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("LoopBound<Counter>: the value was touched off its loop's thread"), "\(text)")
        }
    }

    @Test func aLoopBoundBoxIsOneValueForEveryClosureThatCapturesIt() throws {
        let loop = try Loop()
        let (sum, lines) = try loop.run { executor in
            let sum = LoopBoundBox(0, loop: executor)
            let lines = LoopBoundBox([String](), loop: executor)
            await withTaskGroup(of: Void.self) { group in
                for task in 0..<3 {
                    group.addTask(executorPreference: executor) {
                        for step in 0..<100 {
                            sum.value += 1
                            lines.value.append("\(task).\(step)")
                            await Task.yield()
                        }
                    }
                }
            }
            return (sum.value, lines.value)
        }
        #expect(sum == 300)
        #expect(lines.count == 300 && Set(lines).count == 300)
    }

    /// The executor's loop-thread state is checked at its doors, not trusted:
    /// running its queued work from another thread traps with a message.
    @Test func theExecutorsLoopThreadStateTouchedOffItsLoopTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let thread = try LoopThread()
            thread.executor.runBatches() // not on the loop: traps
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("loop-thread state was touched off the loop's thread"), "\(text)")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aTaskOnTheLoopReachesItsLoopThroughRunningLoop(_ kind: LoopKind) throws {
        func check<L: EventLoop>(_ loop: L) throws -> (same: Bool, waited: Double) {
            let id = ObjectIdentifier(loop)
            let result = try loop.run { executor in
                let running = executor.runningLoop
                // A watcher made from async code, on the loop the task runs on.
                let start = monotonicSeconds()
                await withCheckedContinuation { continuation in
                    _ = running.schedule(after: .milliseconds(50)) { continuation.resume() }
                }
                return (ObjectIdentifier(running) == id, monotonicSeconds() - start)
            }
            loop.close()
            return result
        }
        let (same, waited) = kind == .libev ? try check(try Loop()) : try check(try EpollLoop())
        #expect(same, "\(kind): runningLoop is the loop that runs the task")
        #expect(waited >= 0.04, "\(kind): the timer made through it fired after \(waited) s")
    }

    @Test func aSerialExecutorAttachedTwiceTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let thread = try LoopThread()
            let serial = LoopSerialExecutor()
            serial.attach(thread.executor)
            serial.attach(thread.executor) // its sink would change under other threads: traps
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("LoopSerialExecutor: attached a second time"), "\(text)")
        }
    }

    @Test func runningLoopOffItsLoopTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let thread = try LoopThread()
            _ = thread.executor.runningLoop // not on the loop: traps
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("loop-thread state was touched off the loop's thread"), "\(text)")
        }
    }

    @Test func aLoopBoundBoxTouchedOffItsLoopTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let thread = try LoopThread()
            let box = LockedValue<LoopBoundBox<Int>?>(nil)
            try thread.executor.execute { loop in box.withLock { $0 = LoopBoundBox(1, loop: loop.executor) } }
            while box.withLock({ $0 }) == nil { usleep(1000) }
            box.withLock { $0 }!.value += 1 // not on the loop: traps
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("the value was touched off its loop's thread"), "\(text)")
        }
    }
}

/// Loop-bound test state.
final class Counter {
    var count = 7
}

/// An ``EventLoopGroup`` of either loop, as the tests drive it.
struct AnyGroup {
    let executeOnEach: (@escaping @Sendable (String, Bool) -> Void) throws -> Void
    let schedule: (Double, @escaping @Sendable () -> Void) -> ScheduledWork
    let scheduleOnEach: (Double, @escaping @Sendable () -> Void) -> Void
    let nextIndex: () -> Int
    let anyIndex: @Sendable () -> Int
    let onLoop: (Int, @escaping @Sendable () -> Void) throws -> Void
    let listeners: () throws -> [SocketDescriptor]
    let onGracefulShutdown: (@escaping @Sendable () -> Void) -> Void
    let shutdown: (Double) throws -> Void
    let withBoundCounter: (@escaping @Sendable (LoopBound<Counter>) -> Void) throws -> Void

    init<L: EventLoop>(_ group: EventLoopGroup<L>) {
        let executors = group.executors
        func index(of executor: L.Executor) -> Int { executors.firstIndex { $0 === executor }! }
        executeOnEach = { work in
            for executor in executors { try executor.execute { loop in work("\(type(of: loop))", executor.isCurrent) } }
        }
        schedule = { seconds, work in try! group.next().schedule(after: .seconds(seconds)) { _ in work() } }
        scheduleOnEach = { seconds, work in for executor in executors { _ = try? executor.schedule(after: .seconds(seconds)) { _ in work() } } }
        nextIndex = { index(of: group.next()) }
        anyIndex = { executors.firstIndex { $0 === group.any() }! }
        onLoop = { number, work in try executors[number].execute { _ in work() } }
        listeners = { try group.listeners(on: SocketAddress(parsing: "0")) }
        onGracefulShutdown = { handler in group.onGracefulShutdown { _ in handler() } }
        shutdown = { timeout in try group.syncShutdownGracefully(timeout: .seconds(timeout)) }
        withBoundCounter = { body in
            try executors[0].execute { loop in body(LoopBound(Counter(), loop: loop.executor)) }
        }
    }
}
