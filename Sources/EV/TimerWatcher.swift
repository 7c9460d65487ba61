import CLibev
import EventCore

/// Calls back after a delay, and then optionally at a fixed repeat interval (`ev_timer`).
///
/// Timers run on the loop's monotonic clock, relative to ``Loop/now`` - the
/// time the loop last woke up, not the time `start` is called: libev's
/// documented semantics, which the callback API keeps (a callback that has
/// worked a while calls ``Loop/updateNow()`` first if it needs the real
/// time). The async awaits (`sleep`, `withTimeout`) count from the current
/// time instead. A negative
/// delay fires in the next iteration (see `Loop`'s section on time). For an inactivity timeout that is
/// pushed back on every event, set ``repeat`` and call ``again()``, the cheap
/// way libev recommends.
///
/// The corresponding C type is `ev_timer`.
public final class TimerWatcher: Watcher {
    /// The closure called with the watcher when it expires.
    public typealias Callback = (TimerWatcher) -> Void

    private let timer: UnsafeMutablePointer<ev_timer>
    private let callback: Callback
    /// Creates a stopped timer.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - after: the time until the first expiry; zero or negative means the next iteration.
    ///   - repeat: the time between later expiries; zero (the default) fires once.
    ///   - callback: called with the watcher at each expiry.
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` if `repeat`
    ///   is negative (libev asserts against it).
    ///
    /// The corresponding C macro is `ev_timer_init`.
    public init(loop: Loop, after: Duration, repeat: Duration = .zero, _ callback: @escaping Callback) throws(EventLoopError) {
        let `repeat` = try Self.validRepeat(`repeat`, "ev_timer_init")
        timer = loop.core.memory.allocate()
        self.callback = callback
        CLibev_timer_init(timer, Trampoline.callback, after.libevInterval, `repeat`)
        super.init(core: loop.core, cStruct: timer)
    }

    private static func validRepeat(_ value: Duration, _ operation: String) throws(EventLoopError) -> Double {
        guard value >= .zero else { throw InvalidArgument.negative("repeat", value, operation: operation) }
        return value.libevInterval
    }

    /// The repeat interval; zero for a one-shot timer.
    public var `repeat`: Duration { LoopTime.duration(timer.pointee.repeat) }

    /// Changes the repeat interval without restarting the timer; it takes
    /// effect at the next expiry or ``again()`` (libev allows this at any time).
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` for a negative interval.
    public func setRepeat(_ interval: Duration) throws(EventLoopError) {
        timer.pointee.repeat = try Self.validRepeat(interval, "setRepeat")
    }

    /// Starts the timer: it expires `after` from ``Loop/now``.
    ///
    /// The corresponding C function is `ev_timer_start`.
    public func start() { startChecked() }

    /// Changes the delay and the repeat interval, restarting the timer if it was active.
    ///
    /// - Throws: as the initialiser does; nothing changes then.
    ///
    /// The corresponding C macro is `ev_timer_set`.
    public func set(after: Duration, repeat: Duration = .zero) throws(EventLoopError) {
        let `repeat` = try Self.validRepeat(`repeat`, "ev_timer_set")
        restart { CLibev_timer_set(timer, after.libevInterval, `repeat`) }
    }

    /// Restarts a repeating timer to expire ``repeat`` from now; stops a
    /// non-repeating one. The cheap way to push back a timeout.
    ///
    /// The corresponding C function is `ev_timer_again`.
    public func again() {
        let loop = core.checkedLoop()
        reconcileWithLibev()
        let wasStarted = isStarted
        ev_timer_again(loop, timer)
        if isActive {
            if !wasStarted { adoptStart(loop) }
        } else {
            reconcileWithLibev()
            releaseIfIdle()
        }
    }

    /// The time until the timer expires; for a stopped timer, its delay.
    ///
    /// The corresponding C function is `ev_timer_remaining`.
    public var remaining: Duration {
        LoopTime.duration(ev_timer_remaining(core.checkedLoop(), timer))
    }

    override func cStart(_ loop: OpaquePointer) { ev_timer_start(loop, timer) }
    override func cStop(_ loop: OpaquePointer) { ev_timer_stop(loop, timer) }

    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Calls `callback` after `after`, then every `repeat` if it is not zero.
    ///
    /// ```swift
    /// try loop.timer(after: .milliseconds(500)) { _ in print("half a second later") }
    /// try loop.timer(after: .seconds(1), repeat: .seconds(1)) { timer in
    ///     if done { timer.stop() }
    /// }
    /// ```
    ///
    /// - Returns: the started timer; it stays alive until it stops, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` for a negative repeat.
    ///
    /// The corresponding C functions are `ev_timer_init` and `ev_timer_start`.
    @discardableResult
    public func timer(after: Duration, repeat: Duration = .zero, _ callback: @escaping TimerWatcher.Callback) throws(EventLoopError) -> TimerWatcher {
        let watcher = try TimerWatcher(loop: self, after: after, repeat: `repeat`, callback)
        watcher.start()
        return watcher
    }
}
