/// What the await core needs from a loop's executor: one loop implements it
/// for libev, one for the hand-written epoll loop, and every await
/// (``Suspension``, ``Readiness``, ``AwaitingExecutor/runTask(on:_:)``) and
/// the cross-thread helpers (``AwaitingExecutor/executeWithLoop(_:)``,
/// ``AwaitingExecutor/scheduleWork(after:_:)``) are written once, here, over
/// it - as SwiftNIO writes its selector once over each kernel API's hooks.
package protocol AwaitingExecutor: EventLoopExecutor {
    /// The loop, while it takes awaits; nil once it is closing (loop thread only).
    var loopForAwaits: Loop? { get }

    /// The loop, while it exists, closing or not (loop thread only).
    var loopIfAlive: Loop? { get }

    /// The loop's pending awaits, which its teardown ends (loop thread only).
    var waits: PendingWaitList { get }

    /// What an await gets when its loop is closed (`EVError.loopClosed`, ...).
    var loopClosedError: any Error { get }
}

extension AwaitingExecutor {
    /// Runs `body` on the loop's thread: at once if the caller is there,
    /// else as a job (the caller goes on). The loop's refusal goes to `failed`.
    @inline(__always)
    package func onLoop(_ body: @escaping @Sendable () -> Void, failed: (any Error) -> Void) {
        if isCurrent {
            body()
        } else {
            do { try submit(body) } catch { failed(error) }
        }
    }

    /// The body of both loops' ``EventLoopExecutor/execute(_:)``: a job that
    /// hands `work` the loop (unless the loop is already gone).
    package func executeWithLoop(_ work: @escaping @Sendable (Loop) -> Void) throws {
        try submit { [self] in
            if let loop = loopIfAlive { work(loop) }
        }
    }

    /// The body of both loops' ``EventLoopExecutor/schedule(after:_:)``.
    package func scheduleWork(after seconds: Double, _ work: @escaping @Sendable (Loop) -> Void) -> ScheduledWork {
        let handle = ScheduledWork()
        let instant = monotonicNow() + (seconds.isFinite ? max(seconds, 0) : 1e9)
        onLoop({ [self] in
            guard let loop = loopForAwaits, !handle.isCancelled else { return }
            let timer = loop.schedule(at: instant) { if handle.claimRun() { work(loop) } }
            let bound = LoopBound(timer, loop: self)
            handle.setRemoval { [self] in onLoop({ bound.value.cancel() }, failed: { _ in }) }
        }, failed: { _ in })
        return handle
    }
}
