#if canImport(Glibc)
import Glibc
#endif

/// A moment by which an operation must finish: the package's awaits (on
/// either loop) honour the innermost ``withTimeout(_:_:)`` or
/// ``withDeadline(_:_:)`` of the task: when it passes, the pending await
/// stops its watcher and throws ``EventLoopError`` with
/// ``EventLoopError/Code/timedOut``. Unlike cancelling the task, a timeout
/// ends only the operations it wraps: the task carries on and can try again.
///
/// Kept in seconds on the monotonic clock (`CLOCK_MONOTONIC`, libev's and
/// the epoll loop's clock), so that every await compares it with one clock
/// read and no conversion.
package struct Deadline: Comparable, Sendable {
    /// When, in seconds on the monotonic clock (``monotonicNow()``).
    package let instant: Double
    /// What the timeout was, for messages: "after 2 s", or "at the deadline".
    package let timeout: Duration?

    package init(instant: Double, timeout: Duration?) {
        self.instant = instant
        self.timeout = timeout
    }

    /// The deadline `timeout` from now.
    package static func after(_ timeout: Duration) -> Deadline {
        Deadline(instant: monotonicNow() + LoopTime.seconds(timeout), timeout: timeout)
    }

    /// Seconds left until the deadline; negative once it has passed.
    package var remaining: Double { instant - monotonicNow() }

    package static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.instant < rhs.instant }

    /// The error an await throws when the deadline passes.
    package var error: EventLoopError {
        EventLoopError(.timedOut, detail: timeout.map { "after \(LoopTime.describe($0))" } ?? "at its deadline")
    }

    /// The innermost deadline of the current task, if any.
    @TaskLocal package static var current: Deadline?

    /// Throws the timeout if the current task's deadline has passed.
    ///
    /// An await checks its deadline when it would wait; an operation that
    /// completes without waiting (a read of data that is already there)
    /// calls this first, so that a peer whose bytes keep arriving cannot
    /// keep an operation going past its deadline.
    @inline(__always)
    package static func checkCurrent() throws(EventLoopError) {
        if let deadline = current, deadline.instant <= monotonicNow() {
            throw deadline.error
        }
    }
}

/// The monotonic clock (`CLOCK_MONOTONIC`), in seconds: the clock both
/// loops' timers run on - or, on a thread running a testing loop, that
/// loop's ``VirtualClock``.
package func monotonicNow() -> Double {
    if let clock = VirtualClock.current { return clock.monotonicSeconds }
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Blocks the calling thread for `duration`, resuming after signals
/// (nanosleep's remaining time).
package func sleepBlocking(_ duration: Duration) {
    let seconds = LoopTime.seconds(duration)
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
}

/// Runs `operation` with a deadline `timeout` from now: the package's awaits
/// inside it throw ``EventLoopError`` (``EventLoopError/Code/timedOut``) once
/// it passes. Nested timeouts keep the earliest deadline; `nil` runs
/// `operation` without a new one.
///
/// ```swift
/// let bytes = try await withTimeout(.seconds(2)) { try await socket.read() }
/// ```
///
/// It ends the package's awaits - readiness, sleeps, socket reads and
/// writes, connects, on either loop - not arbitrary ones: an await of
/// another library's that ignores the deadline (or `Task.sleep`) runs on
/// until it returns by itself. Use task cancellation to stop those.
nonisolated(nonsending) public func withTimeout<Result>(
    _ timeout: Duration?, _ operation: nonisolated(nonsending) () async throws -> Result
) async throws -> Result {
    guard let timeout else { return try await operation() }
    return try await withDeadline(Deadline.after(timeout), operation)
}

/// Runs `operation` with the deadline `deadline`: ``withTimeout(_:_:)`` with an
/// absolute time on the continuous clock.
///
/// ```swift
/// let deadline = ContinuousClock.now + .seconds(30)
/// let first = try await withDeadline(deadline) { try await socket.read() }
/// let second = try await withDeadline(deadline) { try await socket.read() }   // the same 30 s in all
/// ```
nonisolated(nonsending) public func withDeadline<Result>(
    _ deadline: ContinuousClock.Instant, _ operation: nonisolated(nonsending) () async throws -> Result
) async throws -> Result {
    try await withDeadline(Deadline(instant: LoopTime.monotonicSeconds(of: deadline), timeout: nil), operation)
}

nonisolated(nonsending) private func withDeadline<Result>(
    _ deadline: Deadline, _ operation: nonisolated(nonsending) () async throws -> Result
) async throws -> Result {
    var deadline = deadline
    if let outer = Deadline.current, outer < deadline { deadline = outer }
    return try await Deadline.$current.withValue(deadline) { try await operation() }
}
