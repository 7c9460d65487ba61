import EV
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("LoopThread")
struct LoopThreadTests {
    @Test func runsWithoutWatchersUntilStoppedFromOutside() throws {
        let ticks = Atomic(0)
        let thread = try LoopThread { loop in
            try! loop.timer(after: .milliseconds(5), repeat: .milliseconds(5)) { _ in ticks.add(1, ordering: .relaxed) }
        }
        while ticks.load(ordering: .relaxed) < 3 { usleep(1000) }
        thread.stop()
        thread.join()
        let after = ticks.load(ordering: .relaxed)
        usleep(30_000)
        let ticksValue = ticks.load(ordering: .relaxed)
        #expect(ticksValue == after, "the loop is gone: no more ticks")
        #expect(caughtError { try thread.executor.execute {} }?.code == .loopClosed)
    }

    @Test func anIdleLoopThreadStillTakesWork() throws {
        let thread = try LoopThread()
        let ran = Atomic(false)
        usleep(20_000) // it has been blocked with nothing to do
        try thread.executor.execute { ran.store(true, ordering: .relaxed) }
        let deadline = monotonicSeconds() + 5
        while !ran.load(ordering: .relaxed) && monotonicSeconds() < deadline { usleep(1000) }
        let ranValue = ran.load(ordering: .relaxed)
        #expect(ranValue)
        thread.stop()
        thread.join()
        thread.join() // a second join returns at once
    }

    @Test func aLoopThatCannotBeCreatedIsAnError() {
        #expect(caughtError { _ = try LoopThread(backends: .kqueue) }?.code == .loopCreationFailed)
    }
}
