/// What a readiness watch calls, for ``EventLoop/watchReadiness(_:_:handler:)``.
public protocol ReadinessHandler: AnyObject {
    /// Called on the loop's thread with what is ready (``Interest/read``,
    /// ``Interest/write``, ``Interest/error``).
    func ready(_ events: Interest)
}
