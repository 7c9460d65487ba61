import EV
import Glibc
import Testing
import TestSupport

@Suite("PeriodicWatcher")
struct PeriodicWatcherTests {
    @Test func firesAtAWallClockTime() throws {
        let loop = try Loop()
        let at = Loop.time() + 0.05
        var firedAt = 0.0
        let periodic = try loop.periodic(offset: at) { _ in firedAt = Loop.time() }
        #expect(abs(periodic.at - at) < 0.001)
        #expect(runUntilDone(loop))
        #expect(firedAt >= at - 0.002)
        #expect(firedAt < at + 5)
        #expect(!periodic.isActive, "interval 0 fires once")
    }

    @Test func firesOnTheGridOfAnInterval() throws {
        let loop = try Loop()
        var firings: [(now: Double, next: Double)] = []
        try loop.periodic(offset: 0, interval: 0.02) { periodic in
            firings.append((periodic.loop!.now, periodic.at))
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

    @Test func aRescheduleClosureChoosesTheTimes() throws {
        let loop = try Loop()
        let start = Loop.time()
        var asked: [Double] = []
        var fired = 0
        loop.periodic(reschedule: { _, now in
            asked.append(now)
            return now + 0.01
        }) { periodic in
            fired += 1
            if fired == 3 { periodic.stop() }
        }
        #expect(runUntilDone(loop))
        #expect(fired == 3)
        #expect(asked.count >= 3, "asked at start and after each firing")
        #expect(Loop.time() - start >= 0.025)
    }

    @Test func aRescheduleAnswerInThePastOrNaNMeansNow() throws {
        let loop = try Loop()
        var fired = 0
        var answers: [Double] = [.nan, -1e9]
        loop.periodic(reschedule: { _, now in
            answers.isEmpty ? .infinity : answers.removeFirst()
        }) { periodic in
            fired += 1
            if fired == 2 { periodic.stop() }
        }
        #expect(runUntilDone(loop, timeout: 5))
        #expect(fired == 2)
    }

    @Test func setChangesTheScheduleAndLeavesManualMode() throws {
        let loop = try Loop()
        var fired = false
        let periodic = try loop.periodic(offset: Loop.time() + 3600) { _ in fired = true }
        try periodic.set(offset: Loop.time() + 0.01)
        #expect(periodic.isActive)
        #expect(runUntilDone(loop))
        #expect(fired)
        #expect(throws: EVError.self) { try periodic.set(offset: 0, interval: -1) }
    }

    @Test func badSchedulesAreRefused() throws {
        let loop = try Loop()
        #expect(throws: EVError.invalidInterval(parameter: "interval", value: -2)) {
            try loop.periodic(offset: 0, interval: -2) { _ in }
        }
        #expect(throws: EVError.self) { try loop.periodic(offset: .nan) { _ in } }
        #expect(throws: EVError.self) { try loop.periodic(offset: 0, interval: .infinity) { _ in } }
    }

    @Test func setRescheduleSwitchesAnActiveWatcherToManualMode() throws {
        let loop = try Loop()
        var fired = 0
        var asked = 0
        let periodic = try loop.periodic(offset: Loop.time() + 3600) { periodic in
            fired += 1
            if fired == 2 { periodic.stop() }
        }
        periodic.set(reschedule: { _, now in
            asked += 1
            return now + 0.01
        })
        #expect(periodic.isActive, "an active watcher stays active")
        #expect(periodic.at < Loop.time() + 1, "the next time is the closure's, not an hour away")
        #expect(runUntilDone(loop, timeout: 5))
        #expect(fired == 2)
        #expect(asked >= 2)
        // And back: set(offset:) leaves manual mode.
        try periodic.set(offset: Loop.time() + 0.01)
        let before = asked
        #expect(runUntilDone(loop))
        #expect(asked == before, "the closure is no longer asked")
    }
}
