/// An executor that takes closures from any thread.
public protocol CrossThreadSubmitting: Sendable {
    /// Runs `work` on the loop's thread, in order; throws if the loop is gone.
    func submit(_ work: @escaping @Sendable () -> Void) throws
}
