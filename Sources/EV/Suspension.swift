import EventCore

/// One await on a loop: a task suspended until a watcher's event, the
/// current ``Deadline``, cancellation, or the loop's destruction - whichever
/// comes first - and resumed exactly once.
///
/// The protocol of asyncio's awaits, on libev: arm a watcher whose callback
/// finishes the suspension; finishing stops the watcher (``cleanup``) before
/// the task resumes, so no later event can reach it.
final class Suspension<Value: Sendable>: PendingWait, @unchecked Sendable {
    // Sendable only so the task's cancellation handler can capture it. Every
    // stored property is touched on the loop's thread alone: `begin` runs in
    // the task (on the loop), events and teardown run there, and a
    // cancellation arriving on another thread only submits `cancelOnLoop` to
    // the loop through the executor. The loop runs jobs in order, so that job
    // runs after `begin`.

    private enum State {
        case new
        case cancelledEarly
        case waiting(UnsafeContinuation<Value, any Error>)
        case finished
    }

    private var state = State.new
    let executor: LoopExecutor
    /// Stops what `arm` started; called once, when the suspension finishes.
    var cleanup: (() -> Void)?
    private var deadlineTimer: TimerWatcher?

    init(executor: LoopExecutor) {
        self.executor = executor
    }

    /// Installs the continuation, arms the watchers, and the deadline's timer.
    func begin(_ continuation: UnsafeContinuation<Value, any Error>, deadline: Deadline?, loop: Loop,
               arm: (Suspension<Value>) throws -> Void) {
        if case .cancelledEarly = state {
            state = .finished
            continuation.resume(throwing: CancellationError())
            return
        }
        state = .waiting(continuation)
        executor.waits.insert(self)
        do {
            try arm(self)
        } catch {
            finish(.failure(error))
            return
        }
        guard case .waiting = state, let deadline else { return }
        let remaining = deadline.remaining
        guard remaining > 0 else {
            finish(.failure(TimeoutError(seconds: deadline.timeout)))
            return
        }
        let timer = try! loop.timerFromCurrentTime(after: remaining) { [unowned self] _ in
            finish(.failure(TimeoutError(seconds: deadline.timeout)))
        }
        timer.start()
        deadlineTimer = timer
    }

    /// Resumes the task with `result`, once; later calls do nothing.
    func finish(_ result: Result<Value, any Error>) {
        guard case .waiting(let continuation) = state else { return }
        state = .finished
        executor.waits.remove(self)
        deadlineTimer?.stop()
        deadlineTimer = nil
        let cleanup = self.cleanup
        self.cleanup = nil
        cleanup?()
        continuation.resume(with: result)
    }

    override func fail(_ error: any Error) {
        finish(.failure(error))
    }

    /// The task was cancelled (on any thread).
    func cancel() {
        if executor.isCurrent {
            cancelOnLoop()
        } else {
            // If the loop is gone, teardown has already ended this suspension.
            try? executor.execute { self.cancelOnLoop() }
        }
    }

    private func cancelOnLoop() {
        switch state {
        case .new: state = .cancelledEarly
        case .waiting: finish(.failure(CancellationError()))
        case .cancelledEarly, .finished: break
        }
    }
}

extension LoopExecutor {
    /// Suspends the current task until `arm`'s watchers finish the suspension
    /// (or the deadline, cancellation or the loop's destruction does).
    ///
    /// `arm` runs on the loop's thread with the loop: at once when the caller
    /// is on the loop (the usual case: a task with the loop's executor
    /// preference), otherwise as a job submitted to the loop, while the task
    /// waits where it is and is resumed from the loop. `arm` starts the
    /// watchers and sets `cleanup` to stop them; it must touch only state
    /// that lives on the loop's thread.
    nonisolated(nonsending) func suspend<Value: Sendable>(
        deadline: Deadline? = Deadline.current,
        _ arm: @escaping (Suspension<Value>, Loop) throws -> Void
    ) async throws -> Value {
        try Task.checkCancellation()
        let suspension = Suspension<Value>(executor: self)
        let onLoop = isCurrent
        let job = LoopBound(arm)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if onLoop {
                    begin(suspension, continuation, deadline, job)
                } else {
                    do {
                        try execute { self.begin(suspension, continuation, deadline, job) }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            suspension.cancel()
        }
    }

    /// Arms a suspension (loop thread).
    private func begin<Value>(_ suspension: Suspension<Value>, _ continuation: UnsafeContinuation<Value, any Error>,
                              _ deadline: Deadline?, _ job: LoopBound<(Suspension<Value>, Loop) throws -> Void>) {
        // The Loop is looked up here, not held by the suspended task: a task
        // waiting on a loop must not keep the loop alive.
        guard let core, !core.isClosing, let loop = core.owner else {
            continuation.resume(throwing: EVError.loopClosed)
            return
        }
        suspension.begin(continuation, deadline: deadline, loop: loop) { try job.value($0, loop) }
    }
}

/// A value that only the loop's thread uses, carried there by a job.
struct LoopBound<Value>: @unchecked Sendable {
    // Sendable because it is created by a task and then used only on the
    // loop's thread: an await's arm closure captures the awaiting object
    // (readiness, stream) whose mutable state lives on the loop's thread, and
    // the task that created it waits, suspended, until the loop resumes it.
    let value: Value
    init(_ value: Value) { self.value = value }
}
