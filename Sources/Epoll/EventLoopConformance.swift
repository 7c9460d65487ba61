import EventCore

extension EpollLoop: EventLoop {
    /// ``watch(_:_:_:)`` for the loops' common protocol.
    public func watchReadiness(_ fd: Int32, _ interest: Interest, _ callback: @escaping (Interest) -> Void) throws -> IOWatch {
        try watch(fd, interest) { _, events in callback(events) }
    }

    /// ``watch(_:_:handler:)`` for the loops' common protocol.
    public func watchReadiness(_ fd: Int32, _ interest: Interest, handler: any ReadinessHandler) throws -> IOWatch {
        try watch(fd, interest, handler: handler)
    }

    /// ``callLater(_:_:)`` for the loops' common protocol.
    public func schedule(after seconds: Double, _ callback: @escaping () -> Void) -> any Cancellable {
        callLater(seconds, callback)
    }

    /// ``callAt(_:_:)`` for the loops' common protocol.
    public func schedule(at instant: Double, _ callback: @escaping () -> Void) -> any Cancellable {
        callAt(instant, callback)
    }
}

extension LoopTimer: Cancellable {}
