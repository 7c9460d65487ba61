import Epoll
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("EpollLoop")
struct EpollLoopTests {
    @Test func runReturnsWhenNothingIsLeft() throws {
        let loop = try EpollLoop()
        var fired = 0
        loop.callLater(.milliseconds(1)) { fired += 1 }
        loop.callSoon { fired += 10 }
        loop.run()
        #expect(fired == 11)
        let start = monotonicSeconds()
        loop.run()
        #expect(monotonicSeconds() - start < 30, "nothing to wait for (a loop that waited would wait forever)")
    }

    @Test func callSoonRunsAfterTheIOCallbacksInOrder() throws {
        let loop = try EpollLoop()
        var log: [Int] = []
        for index in 0..<5 { loop.callSoon { log.append(index) } }
        loop.runOnce(timeout: .zero)
        #expect(log == [0, 1, 2, 3, 4])
    }

    @Test func aWatchCancelledInsideItsCallbackIsNotCalledAgain() throws {
        let loop = try EpollLoop()
        try withSocketPair { a, b in
            var calls = 0
            try loop.watch(FileDescriptor(rawValue: a), .read) { watch, _ in
                calls += 1
                watch.cancel()
            }
            writeString(b, "x")
            loop.run()
            #expect(calls == 1)
        }
    }

    @Test func cancelledTimersDoNotPileUp() throws {
        let loop = try EpollLoop()
        var fired = 0
        for _ in 0..<10_000 {
            loop.callLater(.seconds(3600)) { fired += 1 }.cancel()
        }
        loop.callLater(.milliseconds(1)) { fired += 100 }
        loop.run()
        #expect(fired == 100)
    }

    /// The heap keeps each deadline beside its timer: the order must stay
    /// the deadline's, ties in the order the timers were made, through
    /// cancellations and the rebuild that drops them.
    @Test func timersFireInDeadlineOrderTiesInTheOrderTheyWereMade() throws {
        let loop = try EpollLoop()
        let base = monotonicNow() + 0.02
        var expected: [(deadline: Double, number: Int)] = []
        var fired: [Int] = []
        var timers: [LoopTimer] = []
        for number in 0..<3_000 {
            // 97 distinct deadlines over about 10 ms: about 30 timers share each.
            let deadline = base + Double(number * 7_919 % 97) * 0.0001
            timers.append(loop.callAt(LoopTime.instant(monotonicSeconds: deadline)) { fired.append(number) })
            if number % 3 == 0 {
                timers[number].cancel()
            } else {
                expected.append((deadline, number))
            }
        }
        // Cancel enough more that the heap is rebuilt (over half cancelled).
        for number in stride(from: 1, to: 3_000, by: 3) {
            timers[number].cancel()
            expected.removeAll { $0.number == number }
        }
        loop.run()
        expected.sort { ($0.deadline, $0.number) < ($1.deadline, $1.number) }
        #expect(fired == expected.map(\.number))
        #expect(loop.heldWatcherCount == 0)
    }

    @Test func aSignalThroughSignalfd() throws {
        let received = LockedValue<[Int32]>([])
        let thread = try EventLoopThread<EpollLoop>({ try EpollLoop() }) { loop in
            _ = try? loop.onSignal(SIGWINCH) { signal in received.withLock { $0.append(signal) } }
        }
        let target = LockedValue<pthread_t?>(nil)
        try thread.executor.execute { target.withLock { $0 = pthread_self() } }
        while target.withLock({ $0 }) == nil { usleep(1000) }
        // Directed at the loop's thread, which blocks it and reads it from the
        // signalfd. SIGWINCH: no suite running in parallel raises it (see
        // SignalAwaitTests), so nothing process-directed lands in the signalfd.
        pthread_kill(target.withLock { $0! }, SIGWINCH)
        let deadline = monotonicSeconds() + 5
        while received.withLock({ $0.isEmpty }) && monotonicSeconds() < deadline { usleep(1000) }
        thread.stop()
        thread.join()
        #expect(received.withLock { $0 } == [SIGWINCH])
    }

    @Test func badSignalsAreRefused() throws {
        let loop = try EpollLoop()
        for signal: Int32 in [SIGKILL, SIGSTOP, 0, -1, 65] {
            let error = caughtError { try loop.onSignal(signal) { _ in } }
            #expect(error?.code == .invalidArgument)
            #expect(error?.description.contains("signal \(signal) cannot be watched") == true, "\(String(describing: error))")
        }
    }

    @Test func workSubmittedBeforeTheLoopGoesStillRuns() throws {
        let ran = LockedValue(0)
        var executor: EpollExecutor?
        do {
            let loop = try EpollLoop()
            executor = loop.executor
            for _ in 0..<100 { try loop.executor.execute { ran.withLock { $0 += 1 } } }
        }
        #expect(ran.withLock { $0 } == 100)
        #expect(caughtError { try executor!.execute {} }?.code == .loopClosed)
    }

    @Test func aBusyLoopIsNotWokenNeedlessly() throws {
        // The eventfd is written only when the loop may be asleep: a burst of
        // submissions while it runs costs at most a few wake-ups.
        let thread = try EventLoopThread<EpollLoop>({ try EpollLoop() })
        let done = LockedValue(0)
        for _ in 0..<10_000 { try thread.executor.execute { done.withLock { $0 += 1 } } }
        let deadline = monotonicSeconds() + 10
        while done.withLock({ $0 }) < 10_000 && monotonicSeconds() < deadline { usleep(1000) }
        thread.stop()
        thread.join()
        #expect(done.withLock { $0 } == 10_000)
    }
}
