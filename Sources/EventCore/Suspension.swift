/// One await on a loop: a task suspended until what `arm` started finishes
/// it, the current ``Deadline`` passes, the task is cancelled, or the loop is
/// destroyed - whichever comes first - and resumed exactly once.
///
/// asyncio's recipe, on either loop: arm a watch whose callback finishes the
/// suspension; finishing stops it (``cleanup``) before the task resumes, so
/// no later event can reach it. Every stored property lives on the loop's
/// thread: `begin` runs there (at once from a task on the loop, or as a
/// job), and so do the events, the deadline, the teardown and a
/// cancellation (a job when it comes from another thread; the loop runs
/// jobs in order, so after `begin`).
package final class Suspension<Value: Sendable, L: EventLoop>: PendingWait {
    private enum State {
        case new
        case cancelledEarly
        case waiting(UnsafeContinuation<Value, any Error>)
        case finished
    }

    private var state = State.new
    private let executor: LoopExecutorCore<L>
    /// Stops what `arm` started; called once, when the suspension finishes.
    package var cleanup: (() -> Void)?
    private var deadlineTimer: (any Cancellable)?

    init(executor: LoopExecutorCore<L>) {
        self.executor = executor
    }

    /// Installs the continuation, arms the watches, and the deadline's timer (loop thread).
    fileprivate func begin(_ continuation: UnsafeContinuation<Value, any Error>, deadline: Deadline?,
                           arm: (Suspension, L) throws -> Void) {
        if case .cancelledEarly = state {
            state = .finished
            return continuation.resume(throwing: CancellationError())
        }
        guard let loop = executor.loopForAwaits else {
            state = .finished
            return continuation.resume(throwing: EventLoopError.loopClosed)
        }
        if let deadline, deadline.remaining <= 0 {
            state = .finished
            return continuation.resume(throwing: deadline.error)
        }
        state = .waiting(continuation)
        executor.waits.insert(self)
        do {
            try arm(self, loop)
        } catch {
            return finish(.failure(error))
        }
        guard case .waiting = state, let deadline else { return }
        // unowned(unsafe): the timer is cancelled in `finish`, before this object can go.
        deadlineTimer = loop.schedule(after: LoopTime.duration(deadline.remaining)) { [unowned(unsafe) self] in
            finish(.failure(deadline.error))
        }
    }

    /// Resumes the task with `result`, once; later calls do nothing (loop thread).
    package func finish(_ result: Result<Value, any Error>) {
        guard case .waiting(let continuation) = state else { return }
        state = .finished
        executor.waits.remove(self)
        deadlineTimer?.cancel()
        deadlineTimer = nil
        let cleanup = self.cleanup
        self.cleanup = nil
        cleanup?()
        continuation.resume(with: result)
    }

    override package func fail(_ error: any Error) {
        finish(.failure(error))
    }

    /// The task was cancelled (loop thread).
    fileprivate func cancelOnLoop() {
        switch state {
        case .new: state = .cancelledEarly
        case .waiting: finish(.failure(CancellationError()))
        case .cancelledEarly, .finished: break
        }
    }
}

extension LoopExecutorCore {
    /// Suspends the current task until `arm`'s watches finish the suspension
    /// (or the deadline, cancellation or the loop's destruction does).
    ///
    /// `arm` runs on the loop's thread with the loop: at once when the caller
    /// is there (a task with the loop's executor preference, the usual case),
    /// else as a job, while the task waits where it is and is resumed from
    /// the loop. It starts the watches and sets `cleanup` to stop them; it
    /// must touch only state that lives on the loop's thread.
    nonisolated(nonsending) package func suspend<Value: Sendable>(
        deadline: Deadline? = Deadline.current,
        _ arm: @escaping (Suspension<Value, L>, L) throws -> Void
    ) async throws -> Value {
        try Task.checkCancellation()
        let suspension = Suspension<Value, L>(executor: self)
        let alreadyOnLoop = isCurrent
        // Checked on the loop's thread, where every use of it is.
        let bound = LoopBound(unchecked: suspension, loop: self)
        return try await withCancellableContinuation { continuation in
            if alreadyOnLoop {
                suspension.begin(continuation, deadline: deadline, arm: arm)
            } else {
                let job = LoopBound(unchecked: arm, loop: self)
                do throws(EventLoopError) {
                    try execute { bound.value.begin(continuation, deadline: deadline, arm: job.value) }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            onLoop({ bound.value.cancelOnLoop() }, failed: { _ in })
        }
    }
}

/// Suspends the task with an unsafe continuation that `body` hands on, in a
/// cancellation handler: `withTaskCancellationHandler` around
/// `withUnsafeThrowingContinuation`, with both run where the caller runs -
/// on its actor, or with none where the task runs (its executor preference:
/// the loop, for a task on the loop).
///
/// Every cancellable await of the package suspends here. Written out in a
/// `nonisolated(nonsending)` function, the pair lost the caller's actor in
/// Swift 6.3: the standard library's operation closure is plain nonisolated
/// (swiftlang/swift#85518), so it ran on the global executor, and
/// `withUnsafeThrowingContinuation`'s `#isolation` inside it was nil, so the
/// task resumed there too. For an actor whose executor is the loop that was
/// worse than slow: a wait that had checked it was on the loop began off it
/// (a trap on the executor's thread check), and each wait went through two
/// other threads. A closure that captures an `isolated` parameter is
/// isolated to that actor, so here the operation, and the continuation's
/// resumption, stay on it. (`Benchmarks/scripts/cancellation_handler_hop.swift`
/// reproduces the standard library's side outside the package.)
func withCancellableContinuation<T: Sendable>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: (UnsafeContinuation<T, any Error>) -> Void,
    onCancel: @Sendable () -> Void
) async throws -> T {
    try await withTaskCancellationHandler {
        try await withUnsafeThrowingContinuation(isolation: isolation, body)
    } onCancel: {
        onCancel()
    }
}
