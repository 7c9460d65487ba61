#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Where both loops turn the times an app passes - `Duration`s,
/// `ContinuousClock.Instant`s, ``WallClock/Instant``s - into the seconds
/// they count in (libev's `ev_tstamp`, a `Double` of seconds; the epoll
/// loop's monotonic seconds and `epoll_wait`'s milliseconds). Every time
/// goes through here, with one meaning on both loops:
///
/// | the time | means |
/// |---|---|
/// | negative, zero, or an instant in the past | as soon as possible: at the next turn of the loop |
/// | up to ``longest`` (about 31.7 million years) | that long, to the nanosecond libev's `Double` keeps |
/// | longer (`Duration.seconds(Int64.max)`, an instant that far ahead) | never: the timer is kept but does not fire |
///
/// A `Duration` cannot be NaN or infinite, so neither can a time here:
/// the `Double`s libev and the epoll loop compute with are always finite,
/// and `epoll_wait`'s timeout never overflows (it was a trap once, on a
/// NaN deadline).
package enum LoopTime {
    /// The longest time a timer counts: 10^15 s. Longer is "never", kept as
    /// this many seconds (a `Double` still adds a second to it exactly).
    package static let longest = 1e15

    /// `duration` in seconds, clamped to 0...``longest``: what a delay
    /// turns into.
    @inline(__always)
    package static func delay(_ duration: Duration) -> Double {
        min(max(seconds(duration), 0), longest)
    }

    /// `duration` in seconds, as a `Double` (negative stays negative): the
    /// nearest `Double` for a delay (under 9.2 s, one conversion of its
    /// attoseconds), a round trip with ``duration(_:)`` that gives libev's
    /// `ev_tstamp` back exactly for a wall-clock time, and no trap beyond
    /// `Int64.max` seconds (the difference of two far instants), which
    /// `components` cannot express.
    @inline(__always)
    package static func seconds(_ duration: Duration) -> Double {
        let attoseconds = duration.attoseconds
        if let small = Int64(exactly: attoseconds) { return Double(small) * 1e-18 }
        return largeSeconds(duration)
    }

    private static let componentsRange = Duration.seconds(Int64.min / 2) ... Duration.seconds(Int64.max / 2)

    @inline(never)
    private static func largeSeconds(_ duration: Duration) -> Double {
        guard componentsRange.contains(duration) else { return duration / .seconds(1) }
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// `seconds` as a `Duration` (finite seconds; others become zero): the
    /// whole seconds and the fraction apart, so that ``seconds(_:)`` gives
    /// the same `Double` back.
    package static func duration(_ seconds: Double) -> Duration {
        guard seconds.isFinite else { return .zero }
        let clamped = min(max(seconds, -9e18), 9e18)
        let whole = clamped.rounded(.down)
        return Duration(secondsComponent: Int64(whole), attosecondsComponent: Int64(((clamped - whole) * 1e18).rounded()))
    }

    /// The monotonic seconds (``monotonicNow()``) of `instant`, at most
    /// ``longest`` away from now (an instant in the past stays in the past:
    /// due at once).
    ///
    /// A pure function of `instant` while the two clocks keep in step, so
    /// that two timers at one instant are due at the same second and fire in
    /// the order they were made, as asyncio's `call_at` promises: both are
    /// counted from one ``ClockPair``, not from a fresh reading of each clock
    /// (which would differ by the nanoseconds between the readings).
    package static func monotonicSeconds(of instant: ContinuousClock.Instant) -> Double {
        let (pair, now) = ClockPair.current()
        let offset = min(max(seconds(pair.continuous.duration(to: instant)), now - pair.monotonic - longest),
                         now - pair.monotonic + longest)
        return pair.monotonic + offset
    }

    /// The continuous clock's instant at `seconds` of ``monotonicNow()``.
    package static func instant(monotonicSeconds seconds: Double) -> ContinuousClock.Instant {
        let (pair, _) = ClockPair.current()
        return pair.continuous.advanced(by: duration(seconds - pair.monotonic))
    }

    /// One reading of both clocks, the reference for conversions between
    /// them. `ContinuousClock` is `CLOCK_BOOTTIME` on Linux and the loops
    /// count `CLOCK_MONOTONIC`; they run at one rate but for a suspend of the
    /// machine, which only the first counts - then the pair is read again.
    package struct ClockPair: Sendable, Equatable {
        package let continuous: ContinuousClock.Instant
        package let monotonic: Double

        /// Both clocks read once, the continuous one between two readings of
        /// the monotonic one: how far apart they were says whether the
        /// thread was preempted in between.
        package struct Reading: Sendable {
            package let monotonicBefore: Double
            package let continuous: ContinuousClock.Instant
            package let monotonicAfter: Double

            package init(monotonicBefore: Double, continuous: ContinuousClock.Instant, monotonicAfter: Double) {
                self.monotonicBefore = monotonicBefore
                self.continuous = continuous
                self.monotonicAfter = monotonicAfter
            }

            package static func now() -> Reading {
                let before = monotonicNow()
                let continuous = ContinuousClock.now
                return Reading(monotonicBefore: before, continuous: continuous, monotonicAfter: monotonicNow())
            }

            /// The readings are at most 100 µs apart: the pair they make is
            /// off by no more than that.
            package var isTight: Bool { monotonicAfter - monotonicBefore <= 1e-4 }

            package var pair: ClockPair { ClockPair(continuous: continuous, monotonic: (monotonicBefore + monotonicAfter) / 2) }
        }

        /// The reference pair that conversions share, read again only when a
        /// tight reading finds the clocks over a millisecond apart from it
        /// (a suspend of the machine).
        ///
        /// A reading that is not tight is never adopted: a thread preempted
        /// between its two clock reads (a loaded machine does it for
        /// milliseconds) would otherwise replace the pair with one off by the
        /// preemption, and the next good reading would replace it back - each
        /// change moves every instant converted after it, so two timers made
        /// for one instant were due a millisecond apart and fired out of the
        /// order they were made (seen under `make stress-test`).
        package final class Reference: Sendable {
            private let pair: LockedValue<ClockPair>

            package init() {
                var reading = Reading.now()
                for _ in 0..<100 where !reading.isTight { reading = Reading.now() }
                pair = LockedValue(reading.pair)
            }

            package var current: ClockPair { pair.withLock { $0 } }

            /// The pair to convert with, given a fresh `reading`.
            package func pair(after reading: Reading) -> ClockPair {
                pair.withLock { pair in
                    guard reading.isTight else { return pair }
                    let drift = seconds(pair.continuous.duration(to: reading.continuous))
                        - ((reading.monotonicBefore + reading.monotonicAfter) / 2 - pair.monotonic)
                    if abs(drift) > 1e-3 { pair = reading.pair }
                    return pair
                }
            }
        }

        private static let shared = Reference()

        /// The reference pair and the monotonic time now.
        static func current() -> (ClockPair, now: Double) {
            let reading = Reading.now()
            return (shared.pair(after: reading), reading.monotonicAfter)
        }
    }

    /// `"2 s"`, `"0.25 s"`, `"150 ms"`: a duration for a message.
    package static func describe(_ duration: Duration) -> String {
        let value = seconds(duration)
        guard abs(value) < 1e15 else { return "\(value) s" }
        let (whole, attoseconds) = duration.components
        if attoseconds == 0 { return "\(whole) s" }
        if whole == 0 && attoseconds % 1_000_000_000_000_000 == 0 { return "\(attoseconds / 1_000_000_000_000_000) ms" }
        if whole == 0 && abs(value) < 1 { return "\(value * 1000) ms" }
        return "\(value) s"
    }
}

/// The wall clock (`CLOCK_REALTIME`): time since the Unix epoch, the clock
/// libev's periodic watchers, `ev_now` and `ev_time` count on. Unlike the
/// monotonic and continuous clocks it jumps when the system's time is set,
/// which is what a periodic watcher wants: "at 12:00", whatever happened to
/// the clock meanwhile.
///
/// ```swift
/// let noon = WallClock.Instant(sinceEpoch: .seconds(1_800_000_000))
/// try loop.periodic(at: noon) { _ in print("it is time") }
/// print(WallClock.now)   // 1800000000.25 s since the epoch
/// ```
public struct WallClock: Clock, Sendable {
    /// A moment on the wall clock: the time since the Unix epoch.
    public struct Instant: InstantProtocol, Hashable, Sendable, CustomStringConvertible {
        /// The time since 1970-01-01 00:00:00 UTC.
        public var sinceEpoch: Duration

        /// The moment `sinceEpoch` after the Unix epoch.
        public init(sinceEpoch: Duration) {
            self.sinceEpoch = sinceEpoch
        }

        /// The moment `seconds` after the Unix epoch, as libev's `ev_tstamp`
        /// counts: the loops' conversion, not the surface (which speaks `Duration`).
        package init(secondsSinceEpoch seconds: Double) {
            sinceEpoch = LoopTime.duration(seconds)
        }

        /// Seconds since the epoch, as libev's `ev_tstamp` counts them.
        package var secondsSinceEpoch: Double { LoopTime.seconds(sinceEpoch) }

        public func advanced(by duration: Duration) -> Instant { Instant(sinceEpoch: sinceEpoch + duration) }
        public func duration(to other: Instant) -> Duration { other.sinceEpoch - sinceEpoch }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.sinceEpoch < rhs.sinceEpoch }

        /// The instant `rhs` after `lhs`.
        public static func + (lhs: Instant, rhs: Duration) -> Instant { lhs.advanced(by: rhs) }
        /// The instant `rhs` before `lhs`.
        public static func - (lhs: Instant, rhs: Duration) -> Instant { lhs.advanced(by: .zero - rhs) }
        /// The time from `rhs` to `lhs` (negative if `lhs` is earlier).
        public static func - (lhs: Instant, rhs: Instant) -> Duration { rhs.duration(to: lhs) }
        /// Moves `lhs` `rhs` later.
        public static func += (lhs: inout Instant, rhs: Duration) { lhs = lhs + rhs }
        /// Moves `lhs` `rhs` earlier.
        public static func -= (lhs: inout Instant, rhs: Duration) { lhs = lhs - rhs }

        /// `"1800000000.25 s since the epoch"`.
        public var description: String { "\(secondsSinceEpoch) s since the epoch" }
    }

    /// A wall clock.
    public init() {}

    /// The wall clock's time now.
    public static var now: Instant {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Instant(sinceEpoch: .seconds(now.tv_sec) + .nanoseconds(now.tv_nsec))
    }

    /// The wall clock's time now.
    public var now: Instant { Self.now }

    /// A nanosecond: what `clock_gettime` counts in.
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Sleeps until `deadline` as the continuous clock counts from now: a
    /// clock jump during the sleep is not followed (a loop's
    /// `sleep(until:)` is, through an `ev_periodic`).
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try await Task.sleep(for: now.duration(to: deadline), tolerance: tolerance)
    }
}
