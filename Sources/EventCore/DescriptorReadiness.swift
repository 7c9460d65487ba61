/// Readiness waits on one descriptor: the primitive every async socket
/// operation is built on (try the call; on would-block, wait; try again).
///
/// Not `Sendable`: it belongs to the task that owns the descriptor. Each wait
/// resumes exactly once: when the descriptor is ready; with ``EventLoopError``
/// when the task's deadline passes (``withTimeout(_:_:)``), the descriptor is
/// closed under it or the loop is closed; with `CancellationError` when the
/// task is cancelled. One task waits for each direction at a time (a second
/// traps, with a message: two readers of one socket would share its bytes
/// by chance).
public protocol DescriptorReadiness: AnyObject {
    /// Waits until the descriptor can be read without blocking.
    nonisolated(nonsending) func waitReadable() async throws
    /// Waits until the descriptor can be written without blocking.
    nonisolated(nonsending) func waitWritable() async throws
    /// Stops watching, ending pending waits with the closed error; call
    /// before closing the descriptor.
    func cancel()
}
