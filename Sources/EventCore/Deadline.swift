#if canImport(Glibc)
import Glibc
#endif

/// A moment on the monotonic clock by which an operation must finish.
///
/// The package's awaits (readiness, sleeps, socket reads and writes, on
/// either loop) honour the deadline of ``withTimeout(_:_:)``: when it passes,
/// the pending await stops its watcher and throws ``TimeoutError``. Unlike
/// cancelling the task, a timeout ends only the operation it wraps: the task
/// carries on and can try again.
public struct Deadline: Comparable, Sendable {
    /// When, in seconds on the monotonic clock (`CLOCK_MONOTONIC`).
    public let instant: Double
    /// The timeout it was made from, for messages.
    public let timeout: Double

    /// The deadline `seconds` from now.
    public static func after(_ seconds: Double) -> Deadline {
        Deadline(instant: monotonicNow() + seconds, timeout: seconds)
    }

    /// Seconds left until the deadline; negative once it has passed.
    public var remaining: Double { instant - monotonicNow() }

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.instant < rhs.instant }

    /// The innermost ``withTimeout(_:_:)`` deadline of the current task, if any.
    @TaskLocal public static var current: Deadline?

    /// Throws ``TimeoutError`` if the current task's deadline has passed.
    ///
    /// An await checks its deadline when it would wait; an operation that
    /// completes without waiting (a read of data that is already there)
    /// calls this first, so that a peer whose bytes keep arriving cannot
    /// keep an operation going past its deadline.
    @inline(__always)
    package static func checkCurrent() throws(TimeoutError) {
        if let deadline = current, deadline.instant <= monotonicNow() {
            throw TimeoutError(seconds: deadline.timeout)
        }
    }
}

/// The monotonic clock, in seconds.
public func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Blocks the calling thread for `seconds`, resuming after signals
/// (nanosleep's remaining time).
public func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
}

/// Runs `operation` with a deadline `seconds` from now: the package's awaits
/// inside it throw ``TimeoutError`` once it passes. Nested timeouts keep the
/// earliest deadline. `nil` runs `operation` without a new deadline.
///
/// ```swift
/// try await withTimeout(2) { try await socket.read() }
/// ```
nonisolated(nonsending) public func withTimeout<Result>(
    _ seconds: Double?, _ operation: nonisolated(nonsending) () async throws -> Result
) async throws -> Result {
    guard let seconds else { return try await operation() }
    var deadline = Deadline.after(seconds)
    if let outer = Deadline.current, outer < deadline { deadline = outer }
    return try await Deadline.$current.withValue(deadline) { try await operation() }
}
