import EventCore

/// A libev loop running on a thread of its own until it is stopped from
/// outside: ``/EventCore/EventLoopThread`` of ``Loop``, the package's one way
/// to run a loop on a thread.
///
/// ```swift
/// let thread = try LoopThread { loop in
///     try? loop.timer(after: 0.1, repeat: 0.1) { _ in print("tick") }
/// }
/// try thread.executor.execute { print("on the loop's thread") }
/// thread.stop()
/// thread.join()
/// ```
public typealias LoopThread = EventLoopThread<Loop>

extension EventLoopThread where L == Loop {
    /// Starts a thread that creates a libev loop, runs `setUp` with it as its
    /// first job, then runs it until ``/EventCore/EventLoopThread/stop()``.
    ///
    /// - Parameters:
    ///   - backends: the backends the loop may use (see ``Loop/init(backends:flags:)``).
    ///   - flags: options for the loop.
    ///   - setUp: called on the new thread with the new loop.
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/loopCreationFailed``) if the loop cannot be created.
    public convenience init(backends: Backend = [], flags: LoopFlags = [],
                            setUp: @escaping @Sendable (Loop) -> Void = { _ in }) throws {
        try self.init({ try Loop(backends: backends, flags: flags) }, setUp: setUp)
    }
}

extension EventLoopThread where L == Loop {
    /// Starts a thread that runs libev's default loop - the loop that
    /// watches child processes (``ChildWatcher``, `childExit`,
    /// `childStatuses`) - with `setUp` as its first job. libev's SIGCHLD
    /// handler may run on any thread; it hands the signal to this loop.
    ///
    /// - Throws: what ``Loop/defaultLoop(flags:backends:)`` throws.
    public static func defaultLoop(setUp: @escaping @Sendable (Loop) -> Void = { _ in }) throws -> LoopThread {
        try LoopThread({ try Loop.defaultLoop() }, setUp: setUp)
    }
}
