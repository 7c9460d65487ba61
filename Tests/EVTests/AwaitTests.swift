@testable import EV
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("Awaits on the loop")
struct AwaitTests {
    @Test func tenThousandConcurrentSleepsEndInDeadlineOrder() throws {
        let loop = try Loop()
        let order = try loop.run { executor in
            try await withThrowingTaskGroup(of: Double.self) { group in
                for _ in 0..<10_000 {
                    let delay = Double.random(in: 0...0.2)
                    group.addTask {
                        // A sleep counts from its call: its deadline is then + delay.
                        let deadline = monotonicSeconds() + delay
                        try await executor.sleep(seconds: delay)
                        return deadline
                    }
                }
                var order: [Double] = []
                for try await deadline in group { order.append(deadline) }
                return order
            }
        }
        #expect(order.count == 10_000)
        // Sleeps due in the same iteration may end in any order among
        // themselves; across iterations, a later deadline never ends first.
        let inversions = zip(order, order.dropFirst()).filter { $0 > $1 + 0.02 }.count
        #expect(inversions == 0)
    }

    @Test func sleepWaitsAtLeastItsTime() throws {
        let loop = try Loop()
        let elapsed = try loop.run { executor in
            let start = monotonicSeconds()
            try await executor.sleep(for: .milliseconds(50))
            return monotonicSeconds() - start
        }
        #expect(elapsed >= 0.045 && elapsed < 5)
    }

    @Test func sleepUntilALoopTime() throws {
        let loop = try Loop()
        let target = loop.now + 0.05
        let reached = try loop.run { executor in
            try await executor.sleep(until: target)
            return Loop.time()
        }
        #expect(reached >= target - 0.005)
    }

    @Test func readableAndWritable() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            let text = try loop.run { executor in
                try await executor.writable(b)
                writeString(b, "ready")
                try await executor.readable(a)
                return readAvailable(a)
            }
            #expect(text == "ready")
        }
        #expect(loop.core.heldWatchers().isEmpty, "every await stopped its watcher")
    }

    @Test func readableOnAClosedDescriptorIsAnError() throws {
        let loop = try Loop()
        #expect(throws: EVError.self) { try loop.run { executor in try await executor.readable(12345) } }
    }

    @Test func cancellingAReadableWaitStopsItsWatcherAtOnce() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            let outcome = try loop.run { executor in
                let waiter = Task(executorPreference: executor) {
                    try await executor.readable(a)
                    return "woke up"
                }
                try await executor.sleep(seconds: 0.02) // the waiter is now suspended
                waiter.cancel()
                let result = await waiter.result
                // The watcher is gone before the task resumed: data now wakes no one.
                let held = executor.core!.heldWatchers().count
                writeString(b, "too late")
                try await executor.sleep(seconds: 0.02)
                return (result, held)
            }
            #expect(throws: CancellationError.self) { try outcome.0.get() }
            #expect(outcome.1 == 0, "no watcher left after the cancellation")
            #expect(loop.executor.waits.isEmpty, "no wait leaked")
            #expect(readAvailable(a) == "too late", "the data is still there, unread")
        }
    }

    @Test func cancellingFromAnotherThreadStopsTheWatcherOnTheLoopsThread() throws {
        let loop = try Loop()
        try withSocketPair { a, _ in
            let holder = LoopConfined<Task<Void, any Error>?>(nil)
            let ready = Atomic(false)
            let canceller = try PlainThread {
                while !ready.load(ordering: .acquiring) { usleep(1000) }
                usleep(10_000)
                holder.value?.cancel()
            }
            let result = try loop.run { executor in
                let waiter = Task(executorPreference: executor) { try await executor.readable(a) }
                holder.value = waiter
                ready.store(true, ordering: .releasing)
                return await waiter.result
            }
            canceller.join()
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(loop.core.heldWatchers().isEmpty)
        }
    }

    @Test func anAlreadyCancelledTaskDoesNotArm() throws {
        let loop = try Loop()
        let result = try loop.run { executor in
            let task = Task(executorPreference: executor) {
                withUnsafeCurrentTask { $0?.cancel() }
                try await executor.sleep(seconds: 10)
            }
            return await task.result
        }
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(loop.core.heldWatchers().isEmpty)
    }

    @Test func aTimeoutEndsTheWaitAndOnlyIt() throws {
        let loop = try Loop()
        try withSocketPair { a, _ in
            let (first, second) = try loop.run { executor in
                let first: Result<Void, any Error> = await outcome { try await withTimeout(0.05) { try await executor.readable(a) } }
                // The task is not cancelled: the next await works.
                let second: Result<Void, any Error> = await outcome { try await executor.sleep(seconds: 0.001) }
                return (first, second)
            }
            #expect(throws: TimeoutError(seconds: 0.05)) { try first.get() }
            #expect(throws: Never.self) { try second.get() }
            #expect(loop.core.heldWatchers().isEmpty)
        }
    }

    @Test func nestedTimeoutsKeepTheEarliestDeadline() throws {
        let loop = try Loop()
        let result = try loop.run { executor in
            await outcome {
                try await withTimeout(0.03) {
                    try await withTimeout(10) { try await executor.sleep(seconds: 5) }
                }
            }
        }
        #expect(throws: TimeoutError(seconds: 0.03)) { try result.get() }
    }

    @Test func yieldLetsOtherWorkRun() throws {
        let loop = try Loop()
        let log = try loop.run { executor in
            let log = LoopConfined<[String]>([])
            let other = Task(executorPreference: executor) { log.value.append("other") }
            log.value.append("before yield")
            try await executor.yield()
            log.value.append("after yield")
            await other.value
            return log.value
        }
        #expect(log == ["before yield", "other", "after yield"])
    }

    @Test func awaitsFromOffTheLoopHopOnto() async throws {
        let thread = try LoopThread()
        let executor = thread.executor
        // This test runs on Swift's global executor, not on the loop.
        #expect(!executor.isCurrent)
        try await executor.sleep(seconds: 0.001)
        let onLoop = try await thread.run { executor.isCurrent }
        #expect(onLoop)
        thread.stop()
        thread.join()
    }
}

/// Signals are process-wide and suites run in parallel in one test process:
/// a signal raised here must be one no other suite watches or raises, or a
/// parallel suite's stopped watcher (libev restores SIG_DFL) turns it into a
/// kill. SIGUSR1/SIGUSR2 belong to SignalWatcherTests, SIGWINCH to
/// LifetimeTests and EpollLoopTests; SIGURG is this suite's (ignored by
/// default, so even a stray one is harmless).
@Suite("Signal and file awaits", .serialized)
struct SignalAwaitTests {
    @Test func theNextSignalAndAStreamOfThem() throws {
        let loop = try Loop()
        let received = try loop.run { executor in
            try await executor.sleep(seconds: 0)
            async let one: Void = executor.signal(SIGURG)
            try await executor.sleep(seconds: 0.01)
            kill(getpid(), SIGURG)
            try await one
            var seen: [Int32] = []
            let sender = Task(executorPreference: executor) {
                for _ in 0..<3 {
                    try await executor.sleep(seconds: 0.02)
                    kill(getpid(), SIGURG)
                }
            }
            for try await signal in executor.signals(SIGURG) {
                seen.append(signal)
                if seen.count == 3 { break }
            }
            try await sender.value
            return seen
        }
        #expect(received == [SIGURG, SIGURG, SIGURG])
        #expect(loop.core.heldWatchers().isEmpty, "the stream's watcher stopped when iteration ended")
    }

    @Test func fileChangesAsASequence() throws {
        let loop = try Loop()
        let path = temporaryPath("changes")
        let sizes = try loop.run { executor in
            let writer = Task(executorPreference: executor) {
                try await executor.sleep(seconds: 0.05)
                let fd = open(path, O_CREAT | O_WRONLY, 0o644)
                writeString(fd, "12345")
                close(fd)
                try await executor.sleep(seconds: 0.1)
                unlink(path)
            }
            var sizes: [Int64?] = []
            for try await change in executor.fileChanges(path, interval: 0.01) {
                sizes.append(change.current?.size)
                if change.current == nil { break }
            }
            try await writer.value
            return sizes
        }
        #expect(sizes.first == 5 || sizes.first == 0, "created (\(sizes))")
        #expect(sizes.last == .some(nil), "then removed (\(sizes))")
    }
}

/// The result of `body`, its error included.
func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
