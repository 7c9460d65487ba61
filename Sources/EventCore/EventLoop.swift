#if canImport(Glibc)
import Glibc
#endif

/// An event loop as the package's servers and clients use it: readiness
/// callbacks, timers, its life, and an executor for everything else. Both
/// loops - libev's `EV.Loop` and the hand-written `Epoll.EpollLoop` -
/// conform, so the HTTP server, the web crawler and an app's own code run
/// unchanged on either, and a comparison changes only the loop.
///
/// A loop belongs to the thread that runs it: call these methods there
/// (a call from another thread while it runs traps, naming the call). Other
/// threads and tasks use its ``executor``.
public protocol EventLoop: AnyObject, SendableMetatype {
    /// The loop's `Sendable` executor: cross-thread work, tasks, awaits.
    associatedtype Executor: EventLoopExecutor where Executor.Loop == Self

    /// The loop's executor.
    var executor: Executor { get }

    /// The loop's readiness watch (a concrete type, so that a server keeping
    /// one per connection stores a reference, not an existential).
    associatedtype Watch: IOWatching

    /// Calls `callback` with what is ready (``Interest/read``, ``Interest/write``,
    /// ``Interest/error``) whenever `descriptor` is ready for `interest`,
    /// until cancelled.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/badDescriptor(_:)``)
    ///   for a descriptor the loop cannot watch - where the loop registers at
    ///   once (the epoll loop). libev registers descriptors with the kernel at
    ///   the next turn of the loop: there a descriptor that is not open is
    ///   reported with ``Interest/error`` instead, as libev itself reports it
    ///   (`EV_ERROR`). Code written for either handles both.
    func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                        _ callback: @escaping (Interest) -> Void) throws(EventLoopError) -> Watch

    /// Calls `handler.ready(_:)` with what is ready whenever `descriptor` is
    /// ready for `interest`, until cancelled: ``watchReadiness(_:_:_:)``
    /// without a closure, for servers that keep thousands of watches (no
    /// closure context per watch: the handler is usually the connection itself).
    ///
    /// The watch holds `handler` strongly, as a closure capturing it would:
    /// a handler that keeps its watch makes a cycle that ends when the
    /// handler drops the watch after cancelling it (or the loop closes).
    ///
    /// - Throws: as ``watchReadiness(_:_:_:)``.
    func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                        handler: any ReadinessHandler) throws(EventLoopError) -> Watch

    /// Calls `callback` once, `delay` from now, unless cancelled first.
    ///
    /// "Now" is the current time on both loops (libev's cached `ev_now` is
    /// brought up to date first); a delay that is negative or zero means the
    /// next turn of the loop, one beyond 10^15 s never (the whole table is in
    /// <doc:EventCore>'s overview). libev's own `TimerWatcher` keeps libev's meaning, counting
    /// from the time the loop last woke.
    @discardableResult
    func schedule(after delay: Duration, _ callback: @escaping () -> Void) -> any Cancellable

    /// Calls `callback` once at `deadline`, unless cancelled first; a
    /// deadline in the past means the next turn of the loop.
    @discardableResult
    func schedule(at deadline: ContinuousClock.Instant, _ callback: @escaping () -> Void) -> any Cancellable

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
    ///
    /// - Throws: ``EventLoopError`` if the kernel refuses a new epoll
    ///   instance or eventfd (the epoll loop makes them at once; libev makes
    ///   its own at the next iteration, where a failure is one of libev's
    ///   fatal system errors - so on libev this does not throw).
    func reinitializeAfterFork() throws(EventLoopError)

    /// Runs `body` as a task on the loop, on the current thread, until it
    /// returns (asyncio's `run`); the loop keeps running meanwhile.
    func run<T: Sendable>(_ body: sending @escaping (Executor) async throws -> T) throws -> T

    /// Calls `callback` once, on the loop, when the child `pid` has exited,
    /// and reaps it - how ``ChildProcess`` learns its child's end. Call it
    /// on the loop's thread, right after starting the child.
    ///
    /// The default is ``watchChildExitWithPidfd(_:_:)``; libev's default
    /// loop, which reaps every child itself, answers with its child watcher.
    ///
    /// - Returns: the watch; cancelling it stops watching.
    func watchChildExit(_ pid: pid_t, _ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void)
        throws(EventLoopError) -> any Cancellable

    /// The loop's view of itself: off until started, then its iterations,
    /// its time blocked and running, its delay and its slow callbacks
    /// (made on first use; use it on the loop's thread).
    var monitor: LoopMonitor { get }
}

extension EventLoop {
    /// Watches the child's exit through a pidfd
    /// (``watchChildExitWithPidfd(_:_:)``): every loop's way but libev's
    /// default loop's.
    public func watchChildExit(_ pid: pid_t, _ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void)
        throws(EventLoopError) -> any Cancellable {
        try watchChildExitWithPidfd(pid, callback)
    }
}
