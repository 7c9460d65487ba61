import CLibev

/// Calls back after a delay, and then optionally at a fixed repeat interval (`ev_timer`).
///
/// Timers run on the loop's monotonic clock, relative to ``Loop/now`` - the
/// time the loop last woke up, not the time `start` is called: libev's
/// documented semantics, which the callback API keeps (a callback that has
/// worked a while calls ``Loop/updateNow()`` first if it needs the real
/// time). The async awaits (`sleep`, `withTimeout`) count from the current
/// time instead. A negative
/// delay fires in the next iteration. For an inactivity timeout that is
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
    ///   - after: seconds until the first expiry; negative means the next iteration.
    ///   - repeat: seconds between later expiries; 0 (the default) fires once.
    ///   - callback: called with the watcher at each expiry.
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` if `after` is NaN
    ///   or infinite, or `repeat` is negative, NaN or infinite.
    ///
    /// The corresponding C macro is `ev_timer_init`.
    public init(loop: Loop, after: Double, repeat: Double = 0, _ callback: @escaping Callback) throws(EVError) {
        let after = try Self.validAfter(after)
        let `repeat` = try validInterval(`repeat`, "repeat")
        timer = loop.core.memory.allocate()
        self.callback = callback
        CLibev_timer_init(timer, Trampoline.callback, after, `repeat`)
        super.init(core: loop.core, cStruct: timer)
    }

    private static func validAfter(_ after: Double) throws(EVError) -> Double {
        guard after.isFinite else { throw .invalidInterval(parameter: "after", value: after) }
        return max(after, 0)
    }

    /// The repeat interval in seconds; 0 for a one-shot timer.
    public var `repeat`: Double { timer.pointee.repeat }

    /// Changes the repeat interval without restarting the timer; it takes
    /// effect at the next expiry or ``again()`` (libev allows this at any time).
    ///
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` for a negative, NaN or infinite value.
    public func setRepeat(_ seconds: Double) throws(EVError) {
        timer.pointee.repeat = try validInterval(seconds, "repeat")
    }

    /// Starts the timer: it expires `after` seconds from ``Loop/now``.
    ///
    /// The corresponding C function is `ev_timer_start`.
    public func start() { startChecked() }

    /// Changes the delay and the repeat interval, restarting the timer if it was active.
    ///
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` as the initialiser does; nothing changes then.
    ///
    /// The corresponding C macro is `ev_timer_set`.
    public func set(after: Double, repeat: Double = 0) throws(EVError) {
        let after = try Self.validAfter(after)
        let `repeat` = try validInterval(`repeat`, "repeat")
        restart { CLibev_timer_set(timer, after, `repeat`) }
    }

    /// Restarts a repeating timer to expire `repeat` seconds from now; stops a
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

    /// Seconds until the timer expires; for a stopped timer, its delay.
    ///
    /// The corresponding C function is `ev_timer_remaining`.
    public var remaining: Double {
        ev_timer_remaining(core.checkedLoop(), timer)
    }

    override func cStart(_ loop: OpaquePointer) { ev_timer_start(loop, timer) }
    override func cStop(_ loop: OpaquePointer) { ev_timer_stop(loop, timer) }

    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Calls `callback` after `after` seconds, then every `repeat` seconds if `repeat > 0`.
    ///
    /// ```swift
    /// try loop.timer(after: 0.5) { _ in print("half a second later") }
    /// try loop.timer(after: 1, repeat: 1) { timer in
    ///     if done { timer.stop() }
    /// }
    /// ```
    ///
    /// - Returns: the started timer; it stays alive until it stops, so the result can be ignored.
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` for a NaN or infinite
    ///   delay, or a negative, NaN or infinite repeat.
    ///
    /// The corresponding C functions are `ev_timer_init` and `ev_timer_start`.
    @discardableResult
    public func timer(after: Double, repeat: Double = 0, _ callback: @escaping TimerWatcher.Callback) throws(EVError) -> TimerWatcher {
        let watcher = try TimerWatcher(loop: self, after: after, repeat: `repeat`, callback)
        watcher.start()
        return watcher
    }
}
