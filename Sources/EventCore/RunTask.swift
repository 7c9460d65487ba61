extension LoopExecutorCore {
    /// Runs `body` as a task on `loop`, on the current thread, until it
    /// returns - asyncio's `run`; the body of both loops' `run(_:)`.
    ///
    /// The task has the loop's executor as its preference, so it and every
    /// nonisolated async function it calls run on this thread. The loop runs
    /// meanwhile, even with nothing active (the task may be waiting for work
    /// from another thread), and other watches and tasks run alongside.
    package func runTask<T: Sendable>(on loop: L, _ body: sending @escaping (LoopExecutorCore<L>) async throws -> T) throws -> T {
        let outcome = LockedValue<Result<T, any Error>?>(nil)
        Task(executorPreference: self) {
            let result: Result<T, any Error>
            do { result = .success(try await body(self)) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            self.loopForAwaits?.stop()
        }
        while true {
            if let result = outcome.withLock({ $0 }) { return try result.get() }
            loop.runForever()
        }
    }
}
