#if canImport(Glibc)
import Glibc
#endif

/// An event loop as the package's servers and clients use it: readiness
/// callbacks, timers, cross-thread submission and an executor. Both loops -
/// libev's `EV.Loop` and the hand-written `Epoll.EpollLoop` - conform, so the
/// HTTP server and the web crawler run unchanged on either, and a comparison
/// changes only the loop.
///
/// A loop belongs to the thread that runs it: call these methods there.
public protocol EventLoop: AnyObject, SendableMetatype {
    /// The loop's `Sendable` executor: cross-thread submission, tasks, awaits.
    associatedtype Executor: EventLoopExecutor where Executor.Loop == Self

    /// The loop's executor.
    var executor: Executor { get }

    /// The loop's readiness watch (a concrete type, so that a server keeping
    /// one per connection stores a reference, not an existential).
    associatedtype Watch: IOWatching

    /// Calls `callback` with what is ready (``Interest/read``, ``Interest/write``,
    /// ``Interest/error``) whenever `fd` is ready for `interest`, until cancelled.
    ///
    /// - Throws: if `fd` is not open.
    func watchReadiness(_ fd: Int32, _ interest: Interest, _ callback: @escaping (Interest) -> Void) throws -> Watch

    /// Calls `handler.ready(_:)` with what is ready whenever `fd` is ready for
    /// `interest`, until cancelled: ``watchReadiness(_:_:_:)`` without a
    /// closure, for servers that keep thousands of watches (no closure
    /// context per watch: the handler is usually the connection itself).
    ///
    /// The watch holds `handler` strongly, as a closure capturing it would:
    /// a handler that keeps its watch makes a cycle that ends when the
    /// handler drops the watch after cancelling it (or the loop closes).
    ///
    /// - Throws: if `fd` is not open.
    func watchReadiness(_ fd: Int32, _ interest: Interest, handler: any ReadinessHandler) throws -> Watch

    /// Calls `callback` once, `seconds` from now, unless cancelled first.
    ///
    /// "Now" is the loop's idea of it: for libev, the time it last woke up
    /// (libev's `ev_now`, which callbacks see); the epoll loop reads the clock.
    func schedule(after seconds: Double, _ callback: @escaping () -> Void) -> any Cancellable

    /// Calls `callback` once when the monotonic clock (``monotonicNow()``)
    /// reaches `instant`, unless cancelled first: a deadline counted from
    /// the current time, whatever the loop's cached one says.
    func schedule(at instant: Double, _ callback: @escaping () -> Void) -> any Cancellable

    /// Runs the loop until ``stop()`` (asyncio's `run_forever`).
    func runForever()

    /// Runs the loop until nothing is left for it to wait for - no watch,
    /// timer or task keeping it alive - or ``stop()``: a graceful end.
    func runUntilDone()

    /// Makes ``runForever()`` return after the current iteration.
    func stop()

    /// Closes the loop after it has run (asyncio's `loop.close()`): pending
    /// awaits fail, queued work runs, every watch and timer is dropped with
    /// its closure - which breaks the cycle a callback capturing its loop
    /// makes - and the kernel state is released. Harmless twice.
    func close()

    /// Gives the loop its own kernel state in a forked child; call it there
    /// before running the loop.
    func reinitializeAfterFork() throws

    /// Runs `body` as a task on the loop, on the current thread, until it
    /// returns (asyncio's `run`); the loop keeps running meanwhile.
    func run<T: Sendable>(_ body: sending @escaping (Executor) async throws -> T) throws -> T
}
