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
            return continuation.resume(throwing: executor.waker.loopClosedError)
        }
        if let deadline, deadline.remaining <= 0 {
            state = .finished
            return continuation.resume(throwing: TimeoutError(seconds: deadline.timeout))
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
        deadlineTimer = loop.schedule(at: deadline.instant) { [unowned(unsafe) self] in
            finish(.failure(TimeoutError(seconds: deadline.timeout)))
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
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if alreadyOnLoop {
                    suspension.begin(continuation, deadline: deadline, arm: arm)
                } else {
                    let job = LoopBound(unchecked: arm, loop: self)
                    do {
                        try submit { bound.value.begin(continuation, deadline: deadline, arm: job.value) }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            onLoop({ bound.value.cancelOnLoop() }, failed: { _ in })
        }
    }
}
