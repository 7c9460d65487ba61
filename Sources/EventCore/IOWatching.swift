/// A readiness watch of an ``EventLoop``.
public protocol IOWatching: AnyObject {
    /// What the watch waits for; empty pauses it. Setting it takes effect at
    /// once; a watch that cannot be resumed (its descriptor closed
    /// meanwhile) reports it with ``Interest/error``, on both loops.
    var interest: Interest { get set }
    /// Sets ``interest``, throwing if the watch cannot be resumed.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/badDescriptor(_:)``)
    ///   for a descriptor closed meanwhile, on both loops.
    func setInterest(_ interest: Interest) throws(EventLoopError)
    /// Stops the watch for good; harmless when stopped already.
    func cancel()
}
