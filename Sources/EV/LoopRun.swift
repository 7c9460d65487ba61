import CLibev
import EventCore

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
        let loop = core.checkedLoop()
        precondition(core.runningThread == nil, "EV: Loop.run(_:) with a task cannot be called while the loop runs; await the work instead")
        let outcome = RunOutcome<T>()
        let executor = self.executor
        ev_ref(loop) // the task keeps the loop running
        defer { ev_unref(loop) }
        Task(executorPreference: executor) {
            let result: Result<T, any Error>
            do { result = .success(try await body(executor)) } catch { result = .failure(error) }
            outcome.finish(result, on: executor)
        }
        while outcome.result == nil {
            run()
        }
        return try outcome.result!.get()
    }
}

/// The result of a `Loop.run(_:)` task, handed back to the thread running the loop.
private final class RunOutcome<T: Sendable>: @unchecked Sendable {
    // Sendable because `result` is written by the task, which runs on the
    // loop's thread (its executor preference), and read by `Loop.run` on that
    // same thread after `ev_run` returns: one thread, in order.
    var result: Result<T, any Error>?

    func finish(_ result: Result<T, any Error>, on executor: LoopExecutor) {
        self.result = result
        if let loop = executor.core?.raw { ev_break(loop, Int32(EVBREAK_ONE)) }
    }
}

extension LoopThread {
    /// Runs `body` on this loop's thread and returns its result to the caller,
    /// which may be on any thread. Cancelling the caller cancels `body`.
    ///
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func run<T: Sendable>(_ body: @Sendable @concurrent () async throws -> T) async throws -> T {
        // `@concurrent`: the body runs on the task's executor preference (this
        // loop), not on the caller's executor.
        try await withTaskExecutorPreference(executor) { try await body() }
    }
}
