/// What the await core needs from a loop's executor: one loop implements it
/// for libev, one for the hand-written epoll loop, and every await
/// (``Suspension``, ``Readiness``, ``AwaitingExecutor/runTask(on:_:)``) is
/// written once, here, over it - as SwiftNIO writes its selector once over
/// each kernel API's hooks.
package protocol AwaitingExecutor: AsyncEventLoop, CrossThreadSubmitting, TaskExecutor {
    /// The loop this executor belongs to.
    associatedtype Loop: EventLoop where Loop.Executor == Self

    /// The loop, while it takes awaits; nil once it is closing (loop thread only).
    var loopForAwaits: Loop? { get }

    /// The loop's pending awaits, which its teardown ends (loop thread only).
    var waits: PendingWaitList { get }

    /// What an await gets when its loop is closed (``EV/EVError/loopClosed``, ...).
    var loopClosedError: any Error { get }
}

extension AwaitingExecutor {
    /// Runs `body` on the loop's thread: at once if the caller is there,
    /// else as a job (the caller goes on). `body`'s error, or the loop's
    /// refusal, ends up in `failed`.
    @inline(__always)
    package func onLoop(_ body: @escaping @Sendable () -> Void, failed: (any Error) -> Void) {
        if isCurrent {
            body()
        } else {
            do { try submit(body) } catch { failed(error) }
        }
    }
}
