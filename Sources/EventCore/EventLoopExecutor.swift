/// An event loop's `Sendable` face, what other threads and tasks hold: it
/// runs work on the loop's thread (handing it the loop), schedules it, is
/// the loop's `TaskExecutor` - tasks with it as their executor preference
/// run on the loop's thread, with no hop per await - and, through
/// ``asUnownedSerialExecutor()``, an actor's serial executor. The package's
/// awaits live here: sleeps, readiness, and (on libev) signals, children
/// and file changes.
///
/// `EV.LoopExecutor` and `Epoll.EpollExecutor` conform (both are the one
/// class ``LoopExecutorCore``). SwiftNIO's `EventLoop` is the nearest
/// relative: ``execute(_:)-(()->Void)`` is its `execute`,
/// ``schedule(after:_:)`` its `scheduleTask(in:_:)`, ``preconditionOnLoop(file:line:)``
/// its `preconditionInEventLoop()`.
public protocol EventLoopExecutor: TaskExecutor {
    /// The loop this executor belongs to.
    associatedtype Loop: EventLoop

    /// Whether the calling thread is running this loop right now.
    var isCurrent: Bool { get }

    /// The loop's time on the continuous clock: `ContinuousClock.now` for
    /// the package's loops, the virtual time of a testing loop (which moves
    /// only when the test says). Code that computes deadlines from it -
    /// `executor.now + .seconds(5)` - runs the same on both. Any thread.
    var now: ContinuousClock.Instant { get }

    /// Runs `work` on the loop's thread, after the work submitted before it.
    ///
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed; `work` does not run.
    func execute(_ work: @escaping @Sendable () -> Void) throws(EventLoopError)

    /// Runs `work` on the loop's thread, after the work submitted before it,
    /// handing it the loop (which is not `Sendable`, so it cannot be
    /// captured): no box needed for state that lives on the loop.
    ///
    /// ```swift
    /// try executor.execute { loop in loop.schedule(after: .seconds(1)) { print("a second later") } }
    /// ```
    ///
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed; `work` does not run.
    func execute(_ work: @escaping @Sendable (Loop) -> Void) throws(EventLoopError)

    /// Runs `work` on the loop's thread `delay` from now (counted from this
    /// call), unless cancelled first - from any thread, with the returned
    /// handle, which also tells whether the loop dropped the work by
    /// closing first.
    ///
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed.
    @discardableResult
    func schedule(after delay: Duration, _ work: @escaping @Sendable (Loop) -> Void) throws(EventLoopError) -> ScheduledWork

    /// The loop, to a task or actor running on it (asyncio's
    /// `get_running_loop()`): for what only the loop does, such as a watcher
    /// or a C library attached to it, from async code.
    ///
    /// ```swift
    /// try loop.run { executor in
    ///     let loop = executor.runningLoop
    ///     loop.schedule(after: .seconds(1)) { print("a second later") }
    /// }
    /// ```
    ///
    /// - Precondition: the calling thread is running the loop, and the loop
    ///   is not closing (a trap with a message otherwise, in release builds too).
    var runningLoop: Loop { get }

    /// The loop as an actor's `unownedExecutor`: the actor runs on the loop's thread.
    func asUnownedSerialExecutor() -> UnownedSerialExecutor

    /// Traps, with a message naming the caller, unless the calling thread is
    /// running this loop - in release builds too (SwiftNIO's
    /// `preconditionInEventLoop`): for code that must only run there.
    func preconditionOnLoop(file: StaticString, line: UInt)

    /// ``preconditionOnLoop(file:line:)`` in debug builds only (SwiftNIO's
    /// `assertInEventLoop`): free in release.
    func assertOnLoop(file: StaticString, line: UInt)

    // MARK: awaits

    /// Suspends the calling task for `duration`, counted from the call (zero
    /// or negative: lets everything else ready now run first, io included).
    ///
    /// - Throws: `CancellationError`; ``EventLoopError`` (``EventLoopError/Code/timedOut``
    ///   at the task's deadline, ``EventLoopError/Code/loopClosed``).
    func sleep(for duration: Duration) async throws

    /// Suspends the calling task until `deadline` on the continuous clock.
    ///
    /// - Throws: as ``sleep(for:)``.
    func sleep(until deadline: ContinuousClock.Instant) async throws

    /// Readiness waits on `descriptor` that keep one watch armed between
    /// waits, for one owner that waits again and again (as ``AsyncSocket``
    /// does); see ``DescriptorReadiness``.
    func readiness(for descriptor: FileDescriptor) -> any DescriptorReadiness

    /// Waits until `descriptor` can be read without blocking: any number of
    /// tasks, each resumed when it is ready, on one watch of the loop.
    ///
    /// - Throws: ``EventLoopError`` - a descriptor the loop cannot watch, or
    ///   one closed under the wait (``EventLoopError/Code/descriptorClosed``),
    ///   the deadline, the loop's close - or `CancellationError`.
    func readable(_ descriptor: FileDescriptor) async throws

    /// Waits until `descriptor` can be written without blocking; see ``readable(_:)``.
    func writable(_ descriptor: FileDescriptor) async throws
}

extension EventLoopExecutor {
    /// Lets every other ready task, callback and io event run before going on
    /// (asyncio's `await asyncio.sleep(0)`).
    public func yield() async throws {
        try await sleep(for: .zero)
    }

    /// Traps unless the calling thread is running this loop (see the requirement).
    public func preconditionOnLoop(file: StaticString = #fileID, line: UInt = #line) {
        if !isCurrent { misuse("\(Self.self).preconditionOnLoop: called off the loop's thread", file: file, line: line) }
    }

    /// In debug builds, traps unless the calling thread is running this loop.
    public func assertOnLoop(file: StaticString = #fileID, line: UInt = #line) {
        #if DEBUG
        preconditionOnLoop(file: file, line: line)
        #endif
    }
}
