import EventCore

extension EpollLoop: EventLoop {
    /// ``watch(_:_:_:)`` for the loops' common protocol.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               _ callback: @escaping (Interest) -> Void) throws(EventLoopError) -> IOWatch {
        try watch(descriptor, interest) { _, events in callback(events) }
    }

    /// ``watch(_:_:handler:)`` for the loops' common protocol.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               handler: any ReadinessHandler) throws(EventLoopError) -> IOWatch {
        try watch(descriptor, interest, handler: handler)
    }

    /// ``callLater(_:_:)`` for the loops' common protocol.
    @discardableResult
    public func schedule(after delay: Duration, _ callback: @escaping () -> Void) -> any Cancellable {
        callLater(delay, callback)
    }

    /// ``callAt(_:_:)`` for the loops' common protocol.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ callback: @escaping () -> Void) -> any Cancellable {
        callAt(deadline, callback)
    }
}

extension LoopTimer: Cancellable {}

extension EpollLoop: LoopGauges {}
