/// A readiness watch of an ``EventLoop``.
public protocol IOWatching: AnyObject {
    /// What the watch waits for; empty pauses it. Setting it takes effect at
    /// once; a watch that cannot be resumed reports it with ``Interest/error``.
    var interest: Interest { get set }
    /// Sets ``interest``, throwing if the watch cannot be resumed (its
    /// descriptor was closed meanwhile, say).
    func setInterest(_ interest: Interest) throws
    /// Stops the watch for good; harmless when stopped already.
    func cancel()
}
