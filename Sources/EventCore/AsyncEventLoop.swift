/// What the async socket layer needs from an event loop, so that the same
/// sockets (and the servers and clients built on them) run on libev and on
/// the hand-written epoll loop alike.
///
/// Conforming types are the loops' `Sendable` executors.
public protocol AsyncEventLoop: AnyObject, Sendable {
    /// Readiness waits for the descriptor `fd`, to be used on the loop's thread.
    func readiness(for fd: Int32) -> any DescriptorReadiness

    /// Suspends the calling task for `seconds` on the loop's timers.
    func sleep(seconds: Double) async throws

    /// Whether the calling thread is running this loop right now.
    var isCurrent: Bool { get }

    /// Waits until `fd` can be read without blocking: any number of tasks,
    /// each resumed when it is ready, on one watch of the loop.
    ///
    /// - Throws: the loop's error if `fd` is not open; ``DescriptorClosedError``,
    ///   `CancellationError`, ``TimeoutError``, or the loop's `loopClosed`.
    func readable(_ fd: Int32) async throws

    /// Waits until `fd` can be written without blocking; see ``readable(_:)``.
    func writable(_ fd: Int32) async throws
}

extension AsyncEventLoop {
    /// Suspends for `duration`.
    public func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        try await sleep(seconds: Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// Lets every other ready task, callback and io event run before going on
    /// (asyncio's `await asyncio.sleep(0)`).
    public func yield() async throws {
        try await sleep(seconds: 0)
    }
}
