import EV
import Epoll
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

/// Blocking work off the loop, on both loops: asyncio's `run_in_executor`.
@Suite("ThreadPool: blocking work off the loop")
struct ThreadPoolTests {
    @Test(arguments: LoopKind.allCases)
    func aTaskOnTheLoopGetsTheResultBackOnTheLoop(_ kind: LoopKind) throws {
        let pool = ThreadPool(threads: 2)
        defer { pool.shutdown() }
        let (value, workOnLoop, resumedOnLoop) = try kind.run { executor in
            let value = try await pool.run { (21 * 2, executor.isCurrent) }
            return (value.0, value.1, executor.isCurrent)
        }
        #expect(value == 42)
        #expect(!workOnLoop, "\(kind): the work ran on a pool thread")
        #expect(resumedOnLoop, "\(kind): the task came back to its loop")
    }

    @Test(arguments: LoopKind.allCases)
    func tenThousandJobsAtOnceAllRunNeverMoreThanTheThreadsAtATime(_ kind: LoopKind) throws {
        let (sum, most, pending) = try kind.run { executor in
            let pool = ThreadPool(threads: 4)
            defer { pool.shutdown() }
            let counts = LockedValue((running: 0, most: 0))
            let sum = try await withThrowingTaskGroup(of: Int.self) { group in
                for number in 1...10_000 {
                    group.addTask(executorPreference: executor) {
                        try await pool.run {
                            counts.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                            defer { counts.withLock { $0.running -= 1 } }
                            return number
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            return (sum, counts.withLock { $0.most }, pool.pendingCount)
        }
        #expect(sum == 10_000 * 10_001 / 2)
        #expect(most <= 4 && most >= 1, "\(kind): \(most) at once")
        #expect(pending == 0)
    }

    @Test(arguments: LoopKind.allCases)
    func workCancelledBeforeItStartsNeverRuns(_ kind: LoopKind) throws {
        let (second, first, ran) = try kind.run { executor in
            let pool = ThreadPool(threads: 1)
            defer { pool.shutdown() }
            let release = LockedValue(false)
            let ran = LockedValue(false)
            // The one thread is busy until `release`.
            let blocker = Task(executorPreference: executor) {
                try await pool.run { while !release.withLock({ $0 }) { usleep(1000) } }
            }
            let waiting = Task(executorPreference: executor) { try await pool.run { ran.withLock { $0 = true } } }
            while pool.pendingCount < 2 { try await executor.sleep(for: .milliseconds(1)) }
            waiting.cancel()
            let second = await waiting.result
            release.withLock { $0 = true }
            let first = await blocker.result
            return (second, first, ran.withLock { $0 })
        }
        #expect(throws: CancellationError.self) { try second.get() }
        #expect(throws: Never.self) { try first.get() }
        #expect(!ran, "\(kind): cancelled before it started, it never ran")
    }

    @Test func workAfterShutdownIsRefusedAndPendingWorkCanBeCancelledByIt() throws {
        let loop = try EpollLoop()
        let outcomes = try loop.run { executor in
            let pool = ThreadPool(threads: 1)
            let release = LockedValue(false)
            let started = LockedValue(false)
            let blocker = Task(executorPreference: executor) {
                try await pool.run {
                    started.withLock { $0 = true }
                    while !release.withLock({ $0 }) { usleep(1000) }
                }
            }
            // The blocker runs on the pool's one thread before the next job is
            // queued: whatever the scheduling, the shutdown finds it started
            // (not cancellable) and the next one waiting (cancelled).
            while !started.withLock({ $0 }) { try await executor.sleep(for: .milliseconds(1)) }
            let pending = Task(executorPreference: executor) { try await pool.run { 1 } }
            while pool.pendingCount < 2 { try await executor.sleep(for: .milliseconds(1)) } // running and queued
            let stopper = try PlainThread { pool.shutdown(cancellingPending: true) }
            while (try? await pool.run { 2 }) != nil { try await executor.sleep(for: .milliseconds(1)) } // until it refuses
            release.withLock { $0 = true }
            stopper.join()
            let after = await Result.catching { try await pool.run { 3 } }
            return [await blocker.result.map { _ in 0 }, await pending.result, after]
        }
        #expect(throws: Never.self) { try outcomes[0].get() }
        #expect((outcomes[1].error as? EventLoopError)?.code == .loopClosed, "\(outcomes[1])")
        #expect((outcomes[2].error as? EventLoopError)?.code == .loopClosed, "\(outcomes[2])")
    }

    @Test(arguments: LoopKind.allCases)
    func theCallbackFormDeliversOnTheLoopsThreadWithTheLoop(_ kind: LoopKind) throws {
        let pool = ThreadPool(threads: 2)
        defer { pool.shutdown() }
        let loop = try kind.make()
        let got = LockedValue<[String]>([])
        try submit(on: loop, pool, got)
        #expect(loop.runUntil { got.withLock { $0.count } == 2 })
        #expect(got.withLock { $0 }.sorted() == ["failure: oops on the loop", "success: 7 on the loop"])
        loop.close()
    }

    /// Issue 24, 7: `withTimeout` ends a pool job's await like any other of
    /// the package's: the running job's result is dropped, a queued one
    /// never runs (failed before: the await waited for the whole job).
    @Test(arguments: LoopKind.allCases)
    func aTimeoutEndsTheAwaitAndAQueuedJobNeverRuns(_ kind: LoopKind) throws {
        let pool = ThreadPool(threads: 1)
        let flags = Flags()
        defer {
            flags.release.store(true, ordering: .releasing)
            pool.shutdown()
        }
        let (running, queued, onLoop) = try kind.run { executor in
            func outcome(_ body: @escaping @Sendable () -> Void) async -> String {
                do {
                    try await withTimeout(.milliseconds(100)) { try await pool.run(body) }
                    return "finished"
                } catch let error as EventLoopError {
                    return "\(error.code == .timedOut ? "timed out" : "\(error)")"
                } catch {
                    return "\(error)"
                }
            }
            // The one thread blocks until the test ends; the second job waits behind it.
            async let running = outcome { while !flags.release.load(ordering: .acquiring) { usleep(1000) } }
            async let queued = outcome { flags.queuedRan.store(true, ordering: .releasing) }
            return (await running, await queued, executor.isCurrent)
        }
        #expect(running == "timed out" && queued == "timed out", "\(kind): \(running), \(queued)")
        #expect(onLoop, "\(kind): the task is back on its loop")
        flags.release.store(true, ordering: .releasing)
        pool.shutdown()
        let queuedRan = flags.queuedRan.load(ordering: .acquiring)
        #expect(!queuedRan, "\(kind): the queued job was cancelled at the deadline")
    }

    final class Flags: Sendable {
        let release = Atomic(false)
        let queuedRan = Atomic(false)
    }

    private func submit<L: EventLoop>(on loop: L, _ pool: ThreadPool, _ got: LockedValue<[String]>) throws {
        let executor = loop.executor
        try pool.submit({ 7 }, deliveringTo: executor) { loop, result in
            got.withLock { $0.append("success: \((try? result.get()) ?? 0) \(loop.executor.isCurrent ? "on the loop" : "elsewhere")") }
        }
        try pool.submit({ () throws -> Int in throw PoolOops() }, deliveringTo: executor) { loop, result in
            got.withLock { $0.append("failure: \(result.error.map { "\($0)" } ?? "none") \(loop.executor.isCurrent ? "on the loop" : "elsewhere")") }
        }
    }
}

private struct PoolOops: Error, CustomStringConvertible {
    var description: String { "oops" }
}
