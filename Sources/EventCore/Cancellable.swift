/// Something that can be cancelled once.
public protocol Cancellable: AnyObject {
    /// Cancels; harmless when done or cancelled already.
    func cancel()
}
