import CLibev
import EventCore

extension Loop: EventLoop {
    /// Watches `descriptor` with an ``IOWatcher``, for the loops' common protocol.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               _ callback: @escaping (Interest) -> Void) throws(EventLoopError) -> IOWatcher {
        try io(descriptor, Events(interest)) { _, events in callback(Interest(events)) }
    }

    /// Watches `descriptor` with an ``IOWatcher`` that calls `handler`, for the loops' common protocol.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               handler: any ReadinessHandler) throws(EventLoopError) -> IOWatcher {
        let watcher = IOWatcher(loop: self, fd: descriptor.rawValue, events: Events(interest), handler: handler)
        try watcher.start()
        return watcher
    }

    /// A one-shot ``TimerWatcher`` `delay` from now, for the loops' common
    /// protocol: the loop's cached time is brought up to date first
    /// (``updateNow()``), so the delay counts from the current time, as on
    /// the epoll loop (libev's own timers count from ``now``).
    ///
    /// The corresponding C functions are `ev_now_update` and `ev_timer_start`.
    @discardableResult
    public func schedule(after delay: Duration, _ callback: @escaping () -> Void) -> any Cancellable {
        updateNow()
        return try! timer(after: delay) { _ in callback() } // a timer without a repeat cannot fail
    }

    /// A one-shot ``TimerWatcher`` at `deadline`, for the loops' common
    /// protocol: it ends at `deadline`, never before and at most about a
    /// millisecond after however the thread is scheduled.
    ///
    /// libev's timers count from its own reading of the clock
    /// (`ev_now_update`), so the deadline converts through a reading of each:
    /// `ContinuousClock`'s, then libev's, then `ContinuousClock`'s again.
    /// libev's lies between the two, so counting from the first never ends
    /// early; a pair further apart than a millisecond (the thread was
    /// preempted between) is read again, so a preemption there cannot make
    /// the timer late, and an earlier deadline never ends after a later one.
    ///
    /// The corresponding C functions are `ev_now_update` and `ev_timer_start`.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ callback: @escaping () -> Void) -> any Cancellable {
        var before: ContinuousClock.Instant
        repeat {
            before = .now
            updateNow()
        } while before.duration(to: .now) > .milliseconds(1)
        return try! timer(after: before.duration(to: deadline)) { _ in callback() } // a timer without a repeat cannot fail
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

    /// Calls `callback` once the child `pid` has exited: on the default loop
    /// with a ``ChildWatcher`` (that loop reaps every child on `SIGCHLD`, so a
    /// pidfd would find the child gone), elsewhere with a pidfd
    /// (`EventCore.EventLoop.watchChildExitWithPidfd(_:_:)`).
    public func watchChildExit(_ pid: pid_t, _ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void)
        throws(EventLoopError) -> any Cancellable {
        guard isDefault else { return try watchChildExitWithPidfd(pid, callback) }
        return try child(pid) { watcher in
            watcher.stop()
            callback(.success(watcher.status))
        }
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
    ///   (``/EventCore/EventLoopError/Code/badDescriptor(_:)`` for a descriptor closed meanwhile).
    public func setInterest(_ interest: Interest) throws(EventLoopError) {
        if interest.isEmpty { return stop() }
        events = Events(interest)
        if !isActive { try start() }
    }
}

extension ChildWatcher: Cancellable {
    /// Stops watching (``Watcher/stop()``).
    public func cancel() { stop() }
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
