import EventCore
import Testing

/// The pair of clock readings that turns `ContinuousClock` instants into the
/// loops' monotonic seconds: it must not move for a reading taken while the
/// thread was preempted, or two timers made for one instant stop being due at
/// the same second (seen under `make stress-test`: the epoll loop's timers
/// tied at an instant fired out of the order they were made).
@Suite struct ClockPairTests {
    typealias Reading = LoopTime.ClockPair.Reading

    /// A reading `drift` seconds off the reference's pair, its two monotonic
    /// reads `spread` seconds apart, `later` seconds after the pair.
    func reading(of reference: LoopTime.ClockPair.Reference, later: Double, drift: Double, spread: Double) -> Reading {
        let pair = reference.current
        let middle = pair.monotonic + later
        return Reading(monotonicBefore: middle - spread / 2,
                       continuous: pair.continuous.advanced(by: LoopTime.duration(later + drift)),
                       monotonicAfter: middle + spread / 2)
    }

    @Test func aReadingTakenAcrossAPreemptionDoesNotMoveThePair() {
        let reference = LoopTime.ClockPair.Reference()
        let before = reference.current
        // Preempted for 5 ms between the reads: the continuous clock looks 3 ms off.
        let loose = reading(of: reference, later: 10, drift: 0.003, spread: 0.005)
        #expect(reference.pair(after: loose) == before)
        #expect(reference.current == before)
    }

    @Test func aTightReadingWithinAMillisecondKeepsThePair() {
        let reference = LoopTime.ClockPair.Reference()
        let before = reference.current
        let close = reading(of: reference, later: 10, drift: 0.0005, spread: 0.00001)
        #expect(reference.pair(after: close) == before)
    }

    @Test func aTightReadingAfterASuspendMovesThePair() {
        let reference = LoopTime.ClockPair.Reference()
        let before = reference.current
        // The machine slept 2 s: only the continuous clock (CLOCK_BOOTTIME) counted them.
        let suspended = reading(of: reference, later: 10, drift: 2, spread: 0.00001)
        let after = reference.pair(after: suspended)
        #expect(after != before)
        #expect(reference.current == after)
        let offsetBefore = LoopTime.seconds(before.continuous.duration(to: suspended.continuous))
        #expect(abs(offsetBefore - 12) < 1e-6)
    }

    @Test func theReferenceStartsFromATightReading() {
        // Whatever the scheduling, a reading right after the start is within a
        // millisecond of the pair: the start did not adopt a preempted reading.
        let reference = LoopTime.ClockPair.Reference()
        let pair = reference.current
        var reading = Reading.now()
        while !reading.isTight { reading = Reading.now() }
        let drift = LoopTime.seconds(pair.continuous.duration(to: reading.continuous))
            - ((reading.monotonicBefore + reading.monotonicAfter) / 2 - pair.monotonic)
        #expect(abs(drift) < 1e-3)
    }
}
