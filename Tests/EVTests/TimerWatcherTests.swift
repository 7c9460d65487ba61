import EV
import Glibc
import Testing
import TestSupport

@Suite("TimerWatcher")
struct TimerWatcherTests {
    @Test func timersFireInDeadlineOrder() throws {
        let loop = try Loop()
        var order: [Int] = []
        for (index, delay) in [0.03, 0.01, 0.05, 0.0, 0.02].enumerated() {
            try loop.timer(after: .seconds(delay)) { _ in order.append(index) }
        }
        #expect(runUntilDone(loop))
        #expect(order == [3, 1, 4, 0, 2])
    }

    @Test func aTimerWaitsAtLeastItsDelay() throws {
        // A timer counts from the loop's cached time (libev's `ev_now`, set
        // when the loop is made), so the clock starts before the loop: taken
        // after it, a slow moment between the two (TSan, a loaded machine)
        // showed the timer "early" (0.038 s of 0.05 in one run).
        let start = monotonicSeconds()
        let loop = try Loop()
        var elapsed = 0.0
        try loop.timer(after: .milliseconds(50)) { _ in elapsed = monotonicSeconds() - start }
        #expect(runUntilDone(loop))
        #expect(elapsed >= 0.045)
        #expect(elapsed < 5)
    }

    @Test func repeatFiresUntilStopped() throws {
        let loop = try Loop()
        var count = 0
        let timer = try loop.timer(after: .milliseconds(1), repeat: .milliseconds(2)) { timer in
            count += 1
            if count == 5 { timer.stop() }
        }
        #expect(timer.repeat == .milliseconds(2))
        #expect(runUntilDone(loop))
        #expect(count == 5)
        #expect(!timer.isActive)
    }

    @Test func aOneShotTimerIsInactiveInItsCallbackAndCanRestartItself() throws {
        let loop = try Loop()
        var activeInside: [Bool] = []
        try loop.timer(after: .milliseconds(1)) { timer in
            activeInside.append(timer.isActive)
            if activeInside.count < 3 { timer.start() }
        }
        #expect(runUntilDone(loop))
        #expect(activeInside == [false, false, false])
    }

    /// Activity every 30 ms, five times, keeps pushing a 100 ms timeout
    /// back. What holds whatever the scheduling: on the loop's clock, the
    /// timeout fires 100 ms after the push before it, never sooner - not
    /// "0.25 s after the start", which a loaded machine breaks by holding the
    /// loop past a 100 ms gap between two pushes.
    @Test func againPushesBackARepeatingTimeout() throws {
        let loop = try Loop()
        var events: [(push: Bool, at: WallClock.Instant)] = []
        let timeout = try TimerWatcher(loop: loop, after: .zero, repeat: .milliseconds(100)) { timer in
            events.append((false, timer.loop!.now))
            timer.stop()
        }
        timeout.again() // starts it with the repeat value
        events.append((true, loop.now))
        #expect(timeout.isActive)
        var pushes = 0
        try loop.timer(after: .milliseconds(30), repeat: .milliseconds(30)) { activity in
            pushes += 1
            timeout.again()
            events.append((true, activity.loop!.now))
            if pushes == 5 { activity.stop() }
        }
        #expect(runUntilDone(loop))
        #expect(events.filter(\.push).count == 6)
        #expect(events.last?.push == false, "the timeout fired after the last push")
        var lastPush = WallClock.Instant(sinceEpoch: .zero)
        for event in events {
            if event.push {
                lastPush = event.at
            } else {
                #expect(event.at - lastPush >= .milliseconds(99), "fired \(event.at - lastPush) after a push: \(events)")
            }
        }
    }

    @Test func againStopsANonRepeatingTimer() throws {
        let loop = try Loop()
        var fired = false
        let timer = try loop.timer(after: .milliseconds(10)) { _ in fired = true }
        timer.again()
        #expect(!timer.isActive)
        #expect(loop.run() == false)
        #expect(!fired)
    }

    @Test func remainingCountsDown() throws {
        let loop = try Loop()
        let timer = try loop.timer(after: .seconds(1)) { _ in }
        let first = timer.remaining // counted from the loop's cached time, the timer's own start
        #expect(first > .milliseconds(900) && first <= .seconds(1))
        usleep(50_000)
        loop.updateNow()
        #expect(timer.remaining < first - .milliseconds(40))
        timer.stop()
    }

    @Test func setRestartsWithTheNewDelay() throws {
        let loop = try Loop()
        var fired = 0.0
        let start = monotonicSeconds()
        let timer = try loop.timer(after: .seconds(10)) { _ in fired = monotonicSeconds() - start }
        try timer.set(after: .milliseconds(20))
        #expect(timer.isActive)
        #expect(runUntilDone(loop))
        #expect(fired >= 0.015 && fired < 5)
    }

    @Test func aNegativeDelayFiresInTheNextIteration() throws {
        let loop = try Loop()
        var fired = false
        try loop.timer(after: .seconds(-5)) { _ in fired = true }
        loop.run(.noWait)
        #expect(fired)
    }

    @Test func aNegativeRepeatIsRefusedByName() throws {
        let loop = try Loop()
        let error = caughtError { try loop.timer(after: .seconds(1), repeat: .seconds(-1)) { _ in } }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("repeat must not be negative; got -1 s") == true, "\(String(describing: error))")
        let timer = try loop.timer(after: .seconds(1), repeat: .seconds(2)) { _ in }
        #expect(caughtError { try timer.setRepeat(.milliseconds(-500)) }?.code == .invalidArgument)
        #expect(caughtError { try timer.set(after: .seconds(1), repeat: .nanoseconds(-1)) }?.code == .invalidArgument)
        #expect(timer.repeat == .seconds(2), "a refused change changes nothing")
        #expect(timer.isActive)
        timer.stop()
        loop.verify()
    }

    @Test func aDelayBeyondAnyClockNeverFiresButIsActive() throws {
        let loop = try Loop()
        var fired = false
        let timer = try loop.timer(after: .seconds(Int64.max)) { _ in fired = true }
        loop.run(.noWait)
        #expect(!fired)
        #expect(timer.isActive)
        #expect(timer.remaining > .seconds(1e14), "clamped to 10^15 s, not wrapped around")
        timer.stop()
        loop.verify()
    }

    @Test func tenThousandTimersAllFireInOrder() throws {
        let loop = try Loop()
        var deadlines: [Double] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let delay = Double.random(in: 0...0.05, using: &generator)
            try loop.timer(after: .seconds(delay)) { timer in deadlines.append(delay) }
        }
        #expect(runUntilDone(loop, timeout: 30))
        #expect(deadlines.count == 10_000)
        // Timers due in the same iteration may run in any order among
        // themselves; across iterations, later deadlines never run first.
        let outOfOrder = zip(deadlines, deadlines.dropFirst()).filter { $0 > $1 + 0.01 }.count
        #expect(outOfOrder == 0)
    }
}
