import Dispatch

/// An ``EventLoop`` running on a thread of its own until stopped - the one
/// way the package runs a loop on a thread: servers run one per core (see
/// ``EventLoopGroup``), tests and apps one for background work.
///
/// The loop is made on the new thread; `setUp` runs there as its first job;
/// then it runs, even with nothing to do (asyncio's `run_forever`, a
/// SwiftNIO event loop), until ``stop()`` or ``stopWhenDone(first:)``, and is
/// closed on its thread (see ``EventLoop/close()``). Other threads reach it
/// through ``executor``.
///
/// ```swift
/// let thread = try EventLoopThread { try EpollLoop() }
/// try thread.executor.execute { loop in loop.schedule(after: .milliseconds(100)) { print("tick") } }
/// thread.stop()
/// thread.join()
/// ```
public final class EventLoopThread<L: EventLoop>: Sendable {
    /// The loop's executor; usable from any thread.
    public let executor: L.Executor
    private let thread: PlainThread
    /// Whether the loop, once stopped, runs on until nothing is left (``stopWhenDone(first:)``).
    private let drains: LockedValue<Bool>
    private let ended: DispatchSemaphore

    /// Starts a thread that makes a loop with `make`, runs `setUp` with it
    /// as the loop's first job, then runs it until it is stopped.
    ///
    /// - Throws: what `make` throws, or ``EventLoopError`` if the thread cannot start.
    public init(_ make: @escaping @Sendable () throws -> L,
                setUp: @escaping @Sendable (L) -> Void = { _ in }) throws {
        let handshake = LockedValue<Result<L.Executor, any Error>?>(nil)
        let started = DispatchSemaphore(value: 0)
        let drains = LockedValue(false)
        let ended = DispatchSemaphore(value: 0)
        thread = try PlainThread {
            defer { ended.signal() }
            let loop: L
            do {
                loop = try make()
            } catch {
                handshake.withLock { $0 = .failure(error) }
                started.signal()
                return
            }
            try? loop.executor.execute { loop in setUp(loop) }
            handshake.withLock { $0 = .success(loop.executor) }
            started.signal()
            loop.runForever()
            if drains.withLock({ $0 }) { loop.runUntilDone() }
            loop.close()
        }
        started.wait()
        switch handshake.withLock({ $0! }) {
        case .success(let executor):
            self.executor = executor
            self.drains = drains
            self.ended = ended
        case .failure(let error):
            thread.join()
            throw error
        }
    }

    /// Asks the loop to stop after its current iteration; returns at once.
    /// The loop is then closed on its thread. See ``join()``.
    public func stop() {
        try? executor.execute { loop in loop.stop() }
    }

    /// Asks the loop to stop once nothing is left for it to wait for - its
    /// watches, timers and tasks have ended - after running `first` on it
    /// (a server stops accepting there, and lets its connections finish).
    /// Returns at once; ``stop()`` cuts it short.
    public func stopWhenDone(first: @escaping @Sendable (L) -> Void = { _ in }) {
        drains.withLock { $0 = true }
        try? executor.execute { loop in
            first(loop)
            loop.stop() // out of runForever, into runUntilDone
        }
    }

    /// Waits until the loop's thread has ended; harmless twice.
    public func join() {
        thread.join()
    }

    /// Waits at most `timeout` for the loop's thread to end; whether it did.
    public func join(timeout: Duration) -> Bool {
        guard ended.wait(timeout: .now() + LoopTime.delay(timeout)) == .success else { return false }
        ended.signal() // for the next waiter
        thread.join()
        return true
    }

    /// Runs `body` on this loop's thread and returns its result to the
    /// caller, which may be on any thread; cancelling the caller cancels `body`.
    public func run<T: Sendable>(_ body: @Sendable @concurrent () async throws -> T) async throws -> T {
        // `@concurrent`: the body runs on the task's executor preference (this loop).
        try await withTaskExecutorPreference(executor) { try await body() }
    }

    deinit {
        stop()
        join()
    }
}
