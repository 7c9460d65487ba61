import EventCore

// The async awaits of the epoll loop: the await core of EventCore (one
// implementation for both loops) under the epoll loop's names.

extension EpollExecutor: EventLoopExecutor {
    /// Runs `work` on the loop's thread, after the work submitted before it,
    /// handing it the loop (unless the loop is already gone).
    ///
    /// - Throws: ``EpollError/loopClosed`` if the loop has been destroyed.
    public func execute(_ work: @escaping @Sendable (EpollLoop) -> Void) throws {
        try executeWithLoop(work)
    }

    /// Runs `work` on the loop's thread `seconds` from now, unless the
    /// returned handle cancels it first (from any thread).
    public func schedule(after seconds: Double, _ work: @escaping @Sendable (EpollLoop) -> Void) -> ScheduledWork {
        scheduleWork(after: seconds, work)
    }
}

extension EpollExecutor: AwaitingExecutor {
    /// The loop, while it takes awaits (loop thread).
    package var loopForAwaits: EpollLoop? {
        guard let loop, !loop.isClosing else { return nil }
        return loop
    }

    package var loopIfAlive: EpollLoop? { loop }

    package var loopClosedError: any Error { EpollError.loopClosed }
}

extension EpollExecutor: AsyncEventLoop {
    /// Suspends for `seconds`, counted from the call (0 yields to everything
    /// else ready now, io included).
    ///
    /// - Throws: `CancellationError`, ``EventCore/TimeoutError``, ``EpollError/loopClosed``,
    ///   ``EpollError/invalidInterval(parameter:value:)`` for NaN or infinite.
    public func sleep(seconds: Double) async throws {
        guard seconds.isFinite else { throw EpollError.invalidInterval(parameter: "seconds", value: seconds) }
        try await suspendForSleep(seconds: seconds)
    }

    /// Readiness waits on `fd` that keep one watch registered between waits
    /// (see ``EventCore/DescriptorReadiness``; the await core's `Readiness`).
    public func readiness(for fd: Int32) -> any DescriptorReadiness {
        Readiness(executor: self, fd: fd)
    }
}

extension EpollLoop {
    /// Runs `body` as a task on this loop, on the current thread, until it
    /// returns - asyncio's `run`. See `EV.Loop.run(_:)`; the same contract.
    public func run<T: Sendable>(_ body: sending @escaping (EpollExecutor) async throws -> T) throws -> T {
        precondition(runningThread == nil, "Epoll: run(_:) with a task cannot be called while the loop runs")
        return try executor.runTask(on: self, body)
    }
}
