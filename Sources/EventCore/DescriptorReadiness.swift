/// Readiness waits on one descriptor: the primitive every async socket
/// operation is built on (try the call; on would-block, wait; try again).
///
/// Not `Sendable`: it belongs to the task that owns the descriptor. Each wait
/// resumes exactly once: when the descriptor is ready, when the current
/// ``Deadline`` passes (``TimeoutError``), when the task is cancelled
/// (`CancellationError`), or when the loop is destroyed.
public protocol DescriptorReadiness: AnyObject {
    /// Waits until the descriptor can be read without blocking.
    nonisolated(nonsending) func waitReadable() async throws
    /// Waits until the descriptor can be written without blocking.
    nonisolated(nonsending) func waitWritable() async throws
    /// Stops watching, ending pending waits with an error; call before closing the descriptor.
    func cancel()
}
