/// An event loop's `Sendable` face: what other threads and tasks hold. It
/// runs work on the loop's thread (handing it the loop), schedules it, is
/// the loop's `TaskExecutor` (tasks with it as their executor preference run
/// on the loop's thread, with no hop per await) and, through
/// ``asUnownedSerialExecutor()``, an actor's serial executor.
///
/// `EV.LoopExecutor` and `Epoll.EpollExecutor` conform; SwiftNIO's
/// `EventLoop` is the nearest relative: ``execute(_:)`` is its `execute`,
/// ``schedule(after:_:)`` its `scheduleTask(in:_:)`.
public protocol EventLoopExecutor: AsyncEventLoop, TaskExecutor, CrossThreadSubmitting {
    /// The loop this executor belongs to.
    associatedtype Loop: EventLoop

    /// Runs `work` on the loop's thread, after the work submitted before it,
    /// handing it the loop (which is not `Sendable`, so it cannot be
    /// captured): no box needed for state that lives on the loop.
    ///
    /// ```swift
    /// try executor.execute { loop in loop.schedule(after: 1) { print("a second later") } }
    /// ```
    ///
    /// - Throws: the loop's `loopClosed` if it has been destroyed; `work` does not run.
    func execute(_ work: @escaping @Sendable (Loop) -> Void) throws

    /// Runs `work` on the loop's thread `seconds` from now (counted on the
    /// monotonic clock from this call), unless cancelled first - from any
    /// thread, with the returned handle, which also tells whether the loop
    /// dropped the work by closing first.
    ///
    /// - Throws: the loop's `loopClosed` if it has been closed.
    @discardableResult
    func schedule(after seconds: Double, _ work: @escaping @Sendable (Loop) -> Void) throws -> ScheduledWork

    /// The loop, to a task or actor running on it (asyncio's
    /// `get_running_loop()`): for what only the loop does, such as a watcher
    /// or a C library attached to it, from async code.
    ///
    /// ```swift
    /// try loop.run { executor in
    ///     let loop = executor.runningLoop
    ///     let timer = loop.schedule(after: 1) { print("a second later") }
    ///     ...
    /// }
    /// ```
    ///
    /// - Precondition: the calling thread is running the loop, and the loop
    ///   is not closing (a trap with a message otherwise, in release builds too).
    var runningLoop: Loop { get }

    /// The loop as an actor's `unownedExecutor`: the actor runs on the loop's thread.
    func asUnownedSerialExecutor() -> UnownedSerialExecutor
}
