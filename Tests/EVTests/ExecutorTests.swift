@testable import EV
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

/// An actor whose executor is a libev loop: its methods run on the loop's thread.
actor LoopCounter {
    let executor: LoopExecutor
    private(set) var count = 0
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(executor: LoopExecutor) { self.executor = executor }

    /// Counts one, and says whether it ran on the loop's thread.
    func increment() -> Bool {
        count += 1
        return executor.isCurrent
    }
}

@Suite("LoopExecutor as the tasks' executor")
struct ExecutorTests {
    @Test func aTaskWithTheLoopsExecutorPreferenceRunsOnTheLoopsThread() throws {
        let loop = try Loop()
        let thread = pthread_self()
        let (onLoop, sameThread) = try loop.run { executor in
            (executor.isCurrent, pthread_equal(pthread_self(), thread) != 0)
        }
        #expect(onLoop)
        #expect(sameThread, "Loop.run runs the task on the calling thread")
    }

    @Test func nonisolatedAsyncFunctionsStayOnTheLoop() throws {
        let loop = try Loop()
        let results = try loop.run { executor in
            var results: [Bool] = []
            for _ in 0..<10 {
                results.append(await checkExecutor(executor))
                try await executor.sleep(seconds: 0)
                results.append(executor.isCurrent)
            }
            return results
        }
        #expect(results.allSatisfy { $0 }, "no hop off the loop at any await: \(results)")
    }

    @Test func runGivesBackTheBodysValueOrError() throws {
        let loop = try Loop()
        #expect(try loop.run { _ in 42 } == 42)
        #expect(throws: Oops()) { try loop.run { _ async throws -> Int in throw Oops() } }
        #expect(try loop.run { _ in "again" } == "again", "the loop can run tasks again")
    }

    @Test func anActorWhoseExecutorIsTheLoop() async throws {
        let thread = try LoopThread()
        let counter = LoopCounter(executor: thread.executor)
        // Called from the test's own (global) executor: each call hops onto the loop.
        for _ in 0..<100 {
            #expect(await counter.increment())
        }
        // Called from a task on the loop: no hop needed.
        let onLoop = try await thread.run {
            var all = true
            for _ in 0..<100 { all = await counter.increment() && all }
            return all
        }
        #expect(onLoop)
        #expect(await counter.count == 200)
        thread.stop()
        thread.join()
    }

    @Test func aMillionJobsFromOtherThreadsAllRunOnce() throws {
        let thread = try LoopThread()
        let executor = thread.executor
        let counts = LoopConfined([0, 0])
        let done = AtomicCounter()
        let perThread = 500_000
        let submitters = (0..<2).map { index in
            try! PlainThread {
                for _ in 0..<perThread {
                    // Each task's first job is enqueued from this (non-loop) thread.
                    Task(executorPreference: executor) {
                        counts.value[index] += 1
                        if counts.value[index] == perThread { done.increment() }
                    }
                }
            }
        }
        submitters.forEach { $0.join() }
        let deadline = monotonicSeconds() + 120
        while done.value < 2 && monotonicSeconds() < deadline { usleep(1000) }
        thread.stop()
        thread.join()
        #expect(counts.value == [perThread, perThread], "1,000,000 jobs, each run exactly once")
    }

    @Test func jobsQueuedOnTheLoopsOwnThreadDoNotStarveIO() throws {
        let loop = try Loop()
        // A task that re-enqueues itself forever must still let a timer fire.
        let result = try loop.run { executor in
            let spinner = Task(executorPreference: executor) {
                var spins = 0
                while !Task.isCancelled {
                    await Task.yield()
                    spins += 1
                }
                return spins
            }
            try await executor.sleep(seconds: 0.05)
            spinner.cancel()
            return await spinner.value
        }
        #expect(result > 10, "the spinner ran (\(result) times) and the sleep still ended")
    }

    @Test func destroyingTheLoopEndsPendingAwaitsWithLoopClosed() throws {
        let outcome = LoopConfined<(any Error)?>(nil)
        let thread = try LoopThread { loop in
            let executor = loop.executor
            Task(executorPreference: executor) {
                do {
                    try await executor.sleep(seconds: 3600)
                } catch {
                    outcome.value = error
                }
            }
        }
        usleep(50_000)
        thread.stop()
        thread.join()
        #expect(outcome.value as? EVError == .loopClosed, "got \(String(describing: outcome.value))")
    }
}

struct Oops: Error, Equatable {}

/// A counter several threads bump.
final class AtomicCounter: Sendable {
    private let storage = Atomic(0)
    func increment() { storage.add(1, ordering: .releasing) }
    var value: Int { storage.load(ordering: .acquiring) }
}

/// A nonisolated async function: it runs on the task's executor preference.
func checkExecutor(_ executor: LoopExecutor) async -> Bool {
    executor.isCurrent
}
