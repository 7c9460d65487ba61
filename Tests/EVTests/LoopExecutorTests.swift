import EventCore
import EV
import Glibc
import Synchronization
import Testing
import TestSupport

/// State that only the loop's thread touches; the tests prove it by running
/// under ThreadSanitizer as well (make test).
final class LoopConfined<Value>: @unchecked Sendable {
    // Sendable only in the sense the tests need: every access happens on the
    // loop's thread, or after that thread has been joined.
    var value: Value
    init(_ value: Value) { self.value = value }
}

@Suite("LoopExecutor")
struct LoopExecutorTests {
    @Test func twoThreadsSubmittingAMillionEachRunExactlyTwoMillion() throws {
        let counts = LoopConfined([0, 0])
        let ordered = LoopConfined(true)
        let thread = try LoopThread()
        let executor = thread.executor
        let submitters = (0..<2).map { index in
            try! PlainThread {
                for n in 0..<1_000_000 {
                    try! executor.execute {
                        if counts.value[index] != n { ordered.value = false }
                        counts.value[index] += 1
                    }
                }
            }
        }
        submitters.forEach { $0.join() }
        thread.stop()
        thread.join()
        #expect(counts.value == [1_000_000, 1_000_000], "every submission ran exactly once")
        #expect(ordered.value, "each thread's work ran in the order it was submitted")
    }

    @Test func workRunsOnTheLoopsThread() throws {
        let loopThread = LoopConfined(pthread_t())
        let ranOn = LoopConfined(pthread_t())
        let thread = try LoopThread { _ in loopThread.value = pthread_self() }
        let done = Atomic(false)
        try thread.executor.execute {
            ranOn.value = pthread_self()
            done.store(true, ordering: .releasing)
        }
        while !done.load(ordering: .acquiring) { usleep(1000) }
        thread.stop()
        thread.join()
        #expect(pthread_equal(loopThread.value, ranOn.value) != 0)
    }

    @Test func workSubmittedBeforeTheLoopIsDestroyedStillRuns() throws {
        let ran = Atomic(0)
        var executor: LoopExecutor?
        do {
            let loop = try Loop()
            executor = loop.executor
            for _ in 0..<100 {
                try loop.executor.execute { ran.add(1, ordering: .relaxed) }
            }
            // The loop never runs; destroying it must not drop the accepted work.
        }
        let ranValue = ran.load(ordering: .relaxed)
        #expect(ranValue == 100)
        #expect(caughtError { try executor!.execute {} }?.code == .loopClosed)
    }

    @Test func aBlockedLoopWakesUpForSubmittedWork() throws {
        let loop = try Loop()
        let ran = Atomic(0)
        let executor = loop.executor
        // A long timer keeps the loop blocked in epoll_wait; the work must wake it.
        let timer = try loop.timer(after: .seconds(30)) { _ in }
        try executor.execute { ran.add(1, ordering: .relaxed) } // before run: runs in the first iteration
        let sender = try PlainThread {
            usleep(20_000)
            try! executor.execute { ran.add(1, ordering: .relaxed) }
        }
        let start = monotonicSeconds()
        while ran.load(ordering: .relaxed) < 2, monotonicSeconds() - start < 10 {
            loop.run(.once)
        }
        sender.join()
        timer.stop()
        let ranValue = ran.load(ordering: .relaxed)
        #expect(ranValue == 2)
        #expect(monotonicSeconds() - start < 10, "woken by the submissions, not by the 30 s timer")
    }
}
