import CLibev
@_spi(EventLoops) import EventCore

extension Loop {
    /// Runs `body` as a task on this loop, on the current thread, until it
    /// returns - asyncio's `run`.
    ///
    /// ```swift
    /// let loop = try Loop()
    /// let poem = try loop.run { executor in
    ///     let socket = try await AsyncSocket.connect(to: address, on: executor)
    ///     return try await socket.readToEnd()
    /// }
    /// ```
    ///
    /// The body receives the loop's ``LoopExecutor`` (the loop itself is not
    /// `Sendable`, so the body cannot capture it).
    ///
    /// The task runs with the loop's executor as its executor preference, so
    /// it and every nonisolated async function it calls run on this thread.
    /// The loop keeps running while the task is alive, even with no watcher
    /// active (it may be waiting for work from another thread); other
    /// watchers and tasks run alongside. When `body` returns, so does this.
    ///
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func run<T: Sendable>(_ body: sending @escaping (LoopExecutor) async throws -> T) throws -> T {
        _ = core.checkedLoop()
        core.lifecycle.checkNotRunning("Loop.run(_:) with a task", "await the work instead")
        return try executor.runTask(on: self, body)
    }
}
