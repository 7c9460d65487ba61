import EV
import Glibc
import Testing
import TestSupport

@Suite("PeriodicWatcher")
struct PeriodicWatcherTests {
    @Test func firesAtAWallClockTime() throws {
        let loop = try Loop()
        let at = Loop.time().advanced(by: .milliseconds(50))
        var firedAt = WallClock.Instant(sinceEpoch: .zero)
        let periodic = loop.periodic(at: at) { _ in firedAt = Loop.time() }
        #expect((.milliseconds(-1) ... .milliseconds(1)).contains(periodic.at.duration(to: at)))
        #expect(runUntilDone(loop))
        #expect(firedAt >= at.advanced(by: .milliseconds(-2)))
        #expect(firedAt < at.advanced(by: .seconds(5)))
        #expect(!periodic.isActive, "an absolute time fires once")
    }

    @Test func firesOnTheGridOfAnInterval() throws {
        let loop = try Loop()
        var firings: [(now: Double, next: Double)] = []
        try loop.periodic(every: .milliseconds(20)) { periodic in
            firings.append((periodic.loop!.now.secondsSinceEpoch, periodic.at.secondsSinceEpoch))
            if firings.count == 4 { periodic.stop() }
        }
        #expect(runUntilDone(loop))
        #expect(firings.count == 4)
        // libev schedules each time on a multiple of 20 ms since the epoch;
        // when the loop wakes is up to the machine (a sanitizer run wakes
        // 16 ms late), so the grid is checked on the schedule itself: at each
        // firing the next time is on the grid and the next point after now.
        for (now, next) in firings {
            let steps = next / 0.02
            #expect(abs(steps - steps.rounded()) < 1e-6, "next time \(next) is off the 20 ms grid")
            #expect(next > now && next - now <= 0.02 + 1e-6, "next \(next) is the grid point after \(now)")
        }
    }

    @Test func anOffsetShiftsTheGrid() throws {
        let loop = try Loop()
        let periodic = try loop.periodic(every: .seconds(3600), offset: .seconds(1800)) { _ in }
        defer { periodic.stop() }
        // Every hour at half past: the next time is 30 minutes past an hour.
        let minutes = (periodic.at.secondsSinceEpoch / 60).rounded()
        #expect(Int(minutes) % 60 == 30)
        #expect(periodic.interval == .seconds(3600))
        #expect(periodic.offset == .seconds(1800))
    }

    @Test func aRescheduleClosureChoosesTheTimes() throws {
        let loop = try Loop()
        let start = Loop.time()
        var asked: [WallClock.Instant] = []
        var fired = 0
        loop.periodic(reschedule: { _, now in
            asked.append(now)
            return now.advanced(by: .milliseconds(10))
        }) { periodic in
            fired += 1
            if fired == 3 { periodic.stop() }
        }
        #expect(runUntilDone(loop))
        #expect(fired == 3)
        #expect(asked.count >= 3, "asked at start and after each firing")
        #expect(start.duration(to: Loop.time()) >= .milliseconds(25))
    }

    @Test func aRescheduleAnswerInThePastMeansNowAndNilMeansNever() throws {
        let loop = try Loop()
        var fired = 0
        var answers: [WallClock.Instant?] = [WallClock.Instant(secondsSinceEpoch: -1e9), WallClock.Instant(sinceEpoch: .zero)]
        let periodic = loop.periodic(reschedule: { _, _ in
            answers.isEmpty ? nil : answers.removeFirst()
        }) { _ in
            fired += 1
        }
        try loop.timer(after: .milliseconds(200)) { timer in timer.loop?.break(.all) }
        #expect(runUntilDone(loop))
        #expect(fired == 2, "two answers in the past: two firings at once")
        #expect(periodic.isActive, "nil: active, but never due")
        #expect(periodic.at > Loop.time() + .seconds(1e9))
        periodic.stop()
    }

    @Test func setChangesTheScheduleAndLeavesManualMode() throws {
        let loop = try Loop()
        var fired = false
        let periodic = loop.periodic(at: Loop.time().advanced(by: .seconds(3600))) { _ in fired = true }
        periodic.set(at: Loop.time().advanced(by: .milliseconds(10)))
        #expect(periodic.isActive)
        #expect(runUntilDone(loop))
        #expect(fired)
        #expect(throws: EventLoopError.self) { try periodic.set(every: .seconds(-1)) }
    }

    @Test(arguments: [Duration.zero, .seconds(-2), .nanoseconds(-1)])
    func anIntervalThatIsNotPositiveIsRefusedByName(_ interval: Duration) throws {
        let loop = try Loop()
        let error = #expect(throws: EventLoopError.self) { try loop.periodic(every: interval) { _ in } }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("the interval must be positive") == true)
    }

    @Test func setRescheduleSwitchesAnActiveWatcherToManualMode() throws {
        let loop = try Loop()
        var fired = 0
        var asked = 0
        let periodic = loop.periodic(at: Loop.time().advanced(by: .seconds(3600))) { periodic in
            fired += 1
            if fired == 2 { periodic.stop() }
        }
        periodic.set(reschedule: { _, now in
            asked += 1
            return now.advanced(by: .milliseconds(10))
        })
        #expect(periodic.isActive, "an active watcher stays active")
        #expect(periodic.at < Loop.time().advanced(by: .seconds(1)), "the next time is the closure's, not an hour away")
        #expect(runUntilDone(loop, timeout: 5))
        #expect(fired == 2)
        #expect(asked >= 2)
        // And back: set(at:) leaves manual mode.
        periodic.set(at: Loop.time().advanced(by: .milliseconds(10)))
        let before = asked
        #expect(runUntilDone(loop))
        #expect(asked == before, "the closure is no longer asked")
    }
}
