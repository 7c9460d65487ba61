#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A clock that moves only when told: the time of a testing loop
/// (`EventLoopTesting`'s `TestLoop`), whose timers, deadlines and the
/// package's own time readings follow it instead of the machine's.
///
/// It starts at the machine's time (so instants made before and after
/// agree) and counts whole nanoseconds from there. While a thread runs a
/// testing loop, ``monotonicNow()`` on that thread - which every timeout,
/// deadline and rate of the package reads - is this clock's: the loop's
/// code sees the loop's time. Other threads keep the machine's. Real loops
/// pay one relaxed atomic load for the possibility (no testing loop made:
/// no thread-local read at all).
package final class VirtualClock: Sendable {
    /// The machine's two clocks when this one started, read as one pair.
    private let base: LoopTime.ClockPair
    /// Nanoseconds since `base`.
    private let offset = Atomic<Int64>(0)

    package init() {
        // The pair the package converts instants with: an instant made from
        // this clock's seconds (LoopTime.instant(monotonicSeconds:)) is its own.
        base = LoopTime.ClockPair.current().0
        Self.made.add(1, ordering: .relaxed)
    }

    /// Nanoseconds since the clock started.
    package var nanoseconds: Int64 { offset.load(ordering: .acquiring) }

    /// Moves the clock to `nanoseconds` since its start (never back).
    package func set(nanoseconds: Int64) {
        offset.store(max(nanoseconds, self.nanoseconds), ordering: .releasing)
    }

    /// The clock's time as the continuous clock's instant.
    package var instant: ContinuousClock.Instant { base.continuous.advanced(by: .nanoseconds(nanoseconds)) }

    /// The clock's time in seconds of ``monotonicNow()``'s clock.
    package var monotonicSeconds: Double { base.monotonic + Double(nanoseconds) / 1e9 }

    /// `instant` in nanoseconds since the clock started (rounded to the nearest).
    package func nanoseconds(of instant: ContinuousClock.Instant) -> Int64 {
        Self.nanoseconds(base.continuous.duration(to: instant))
    }

    /// `duration` in whole nanoseconds (rounded to the nearest; clamped to about 292 years).
    package static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds < 9_000_000_000 else { return .max / 2 }
        guard seconds > -9_000_000_000 else { return .min / 2 }
        return seconds * 1_000_000_000 + (attoseconds + (attoseconds >= 0 ? 500_000_000 : -500_000_000)) / 1_000_000_000
    }

    // MARK: the clock of the running thread

    /// How many virtual clocks the process has made: none, and
    /// ``monotonicNow()`` reads no thread-local at all.
    private static let made = Atomic<Int>(0)

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key, nil)
        checkUsage(result == 0, "pthread_key_create failed: \(result)")
        return key
    }()

    /// The clock of the testing loop this thread is running, if any.
    @inline(__always)
    package static var current: VirtualClock? {
        guard made.load(ordering: .relaxed) > 0, let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<VirtualClock>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Runs `body` with `clock` as this thread's clock.
    package static func with<Result>(_ clock: VirtualClock, _ body: () throws -> Result) rethrows -> Result {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(clock).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}
