import CLibev
import EventCore

extension Loop: EventLoop {
    /// Watches `fd` with an ``IOWatcher``, for the loops' common protocol.
    public func watchReadiness(_ fd: Int32, _ interest: Interest, _ callback: @escaping (Interest) -> Void) throws -> IOWatcher {
        try io(fd, Events(interest)) { _, events in callback(Interest(events)) }
    }

    /// Watches `fd` with an ``IOWatcher`` that calls `handler`, for the loops' common protocol.
    public func watchReadiness(_ fd: Int32, _ interest: Interest, handler: any ReadinessHandler) throws -> IOWatcher {
        let watcher = IOWatcher(loop: self, fd: fd, events: Events(interest), handler: handler)
        try watcher.start()
        return watcher
    }

    /// A one-shot ``TimerWatcher``, for the loops' common protocol; the
    /// delay counts from ``now``, as libev's timers do.
    public func schedule(after seconds: Double, _ callback: @escaping () -> Void) -> any Cancellable {
        try! timer(after: seconds.isNaN ? 0 : min(seconds, 1e9)) { _ in callback() }
    }

    /// A one-shot ``TimerWatcher`` due when the monotonic clock reaches
    /// `instant`, for the loops' common protocol: the loop's cached time is
    /// brought up to date first (``updateNow()``), so the delay counts from now.
    ///
    /// The corresponding C functions are `ev_now_update` and `ev_timer_start`.
    public func schedule(at instant: Double, _ callback: @escaping () -> Void) -> any Cancellable {
        updateNow()
        let delay = instant - monotonicNow()
        return try! timer(after: delay.isNaN ? 0 : min(delay, 1e9)) { _ in callback() }
    }

    /// Runs until ``stop()``, even with no active watcher (asyncio's `run_forever`).
    ///
    /// The corresponding C functions are `ev_ref` and `ev_run`.
    public func runForever() {
        let loop = core.checkedLoop()
        ev_ref(loop)
        defer { ev_unref(loop) }
        run()
    }

    /// Runs until no active watcher is left (``run(_:)-(RunMode)`` with ``RunMode/untilDone``).
    ///
    /// The corresponding C function is `ev_run`.
    public func runUntilDone() {
        run(.untilDone)
    }

    /// Makes ``run(_:)-(RunMode)`` and ``runForever()`` return after the current iteration.
    ///
    /// The corresponding C function is `ev_break(EVBREAK_ALL)`.
    public func stop() {
        self.break(.all)
    }
}

extension IOWatcher: IOWatching {
    /// ``events`` as the loops' common ``/EventCore/Interest``; empty while
    /// the watcher is stopped (paused), as the protocol has it. A watcher
    /// that cannot start again receives ``Events/error`` (see ``setInterest(_:)``).
    public var interest: Interest {
        get { isActive ? Interest(events) : [] }
        set {
            do {
                try setInterest(newValue)
            } catch {
                feed(.error)
            }
        }
    }

    /// Sets the events and starts or stops the watcher accordingly.
    ///
    /// - Throws: what ``start()`` throws when the watcher must start again
    ///   (``EVError/badDescriptor(_:_:)`` for a descriptor closed meanwhile).
    public func setInterest(_ interest: Interest) throws {
        if interest.isEmpty { return stop() }
        events = Events(interest)
        if !isActive { try start() }
    }
}

extension TimerWatcher: Cancellable {
    /// ``Watcher/stop()``, for the loops' common protocol.
    public func cancel() { stop() }
}


extension Events {
    /// The libev events of an ``/EventCore/Interest``.
    init(_ interest: Interest) {
        self = []
        if interest.contains(.read) { insert(.read) }
        if interest.contains(.write) { insert(.write) }
    }
}

extension Interest {
    /// The interest of libev's events (``Events/error`` included).
    init(_ events: Events) {
        self = []
        if events.contains(.read) { insert(.read) }
        if events.contains(.write) { insert(.write) }
        if events.contains(.error) { insert(.error) }
    }
}
