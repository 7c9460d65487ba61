import CLibev

/// Calls back at wall-clock times: at an absolute time, on a regular schedule
/// such as "every hour on the hour", or at times a closure computes (`ev_periodic`).
///
/// Unlike a ``TimerWatcher``, which counts elapsed time on a monotonic clock, a
/// periodic watcher follows the system's real-time clock: if the clock is set
/// forward, an hourly periodic still fires on the hour.
///
/// Three modes, as in libev:
/// - absolute: `interval == 0`, fires once at `offset` (seconds since the epoch);
/// - repeating: `interval > 0`, fires at every `offset + N * interval`;
/// - manual: a reschedule closure returns each next time.
///
/// The corresponding C type is `ev_periodic`.
public final class PeriodicWatcher: Watcher {
    /// The closure called with the watcher at each scheduled time.
    public typealias Callback = (PeriodicWatcher) -> Void
    /// Computes the next time (seconds since the epoch) from the current one.
    /// A time before `now`, or NaN, is treated as `now`; `.infinity` means never.
    public typealias Reschedule = (PeriodicWatcher, _ now: Double) -> Double

    private let periodic: UnsafeMutablePointer<ev_periodic>
    private let callback: Callback
    private var reschedule: Reschedule?

    /// Creates a stopped periodic watcher firing at `offset` (interval 0) or at
    /// every `offset + N * interval`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - offset: with `interval == 0`, the absolute time; otherwise the phase within each interval.
    ///   - interval: seconds between times; 0 fires once.
    ///   - callback: called with the watcher at each time.
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` for a NaN or infinite
    ///   offset, or a negative, NaN or infinite interval.
    ///
    /// The corresponding C macro is `ev_periodic_init`.
    public init(loop: Loop, offset: Double, interval: Double = 0, _ callback: @escaping Callback) throws(EVError) {
        guard offset.isFinite else { throw .invalidInterval(parameter: "offset", value: offset) }
        let interval = try validInterval(interval, "interval")
        periodic = loop.core.memory.allocate()
        self.callback = callback
        CLibev_periodic_init(periodic, Trampoline.callback, offset, interval, nil)
        super.init(core: loop.core, cStruct: periodic)
    }

    /// Creates a stopped periodic watcher whose times come from `reschedule`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - reschedule: given the current time, returns the next one.
    ///     It must not start or stop watchers, nor change the loop.
    ///   - callback: called with the watcher at each time.
    ///
    /// The corresponding C macro is `ev_periodic_init` with a `reschedule_cb`.
    public init(loop: Loop, reschedule: @escaping Reschedule, _ callback: @escaping Callback) {
        periodic = loop.core.memory.allocate()
        self.callback = callback
        self.reschedule = reschedule
        CLibev_periodic_init(periodic, Trampoline.callback, 0, 0, Trampoline.reschedule)
        super.init(core: loop.core, cStruct: periodic)
    }

    /// The offset (phase, or absolute time when ``interval`` is 0).
    public var offset: Double { periodic.pointee.offset }
    /// The interval; 0 for a one-shot or manual watcher.
    public var interval: Double { periodic.pointee.interval }

    /// The next time the watcher fires, in seconds since the epoch.
    ///
    /// The corresponding C macro is `ev_periodic_at`.
    public var at: Double { CLibev_periodic_at(periodic) }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_periodic_start`.
    public func start() { startChecked() }

    /// Changes offset and interval (leaving manual mode), restarting an active watcher.
    ///
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` as the initialiser does; nothing changes then.
    ///
    /// The corresponding C macro is `ev_periodic_set`.
    public func set(offset: Double, interval: Double = 0) throws(EVError) {
        guard offset.isFinite else { throw .invalidInterval(parameter: "offset", value: offset) }
        let interval = try validInterval(interval, "interval")
        restart {
            reschedule = nil
            CLibev_periodic_set(periodic, offset, interval, nil)
        }
    }

    /// Switches to manual mode: the times come from `reschedule` from now on,
    /// restarting an active watcher.
    ///
    /// - Parameter reschedule: given the current time, returns the next one.
    ///
    /// The corresponding C macro is `ev_periodic_set` with a `reschedule_cb`.
    public func set(reschedule: @escaping Reschedule) {
        restart {
            self.reschedule = reschedule
            CLibev_periodic_set(periodic, 0, 0, Trampoline.reschedule)
        }
    }

    /// Recomputes the next time from the current parameters, for example after
    /// the reschedule closure's answer would change.
    ///
    /// The corresponding C function is `ev_periodic_again`.
    public func again() {
        let loop = core.checkedLoop()
        reconcileWithLibev()
        let wasStarted = isStarted
        ev_periodic_again(loop, periodic)
        if isActive, !wasStarted { adoptStart(loop) }
    }

    override func cStart(_ loop: OpaquePointer) { ev_periodic_start(loop, periodic) }
    override func cStop(_ loop: OpaquePointer) { ev_periodic_stop(loop, periodic) }
    override func fire(_ events: Events) { callback(self) }

    /// Asks the reschedule closure for the next time, clamped to what libev
    /// accepts (libev asserts that the answer is not before `now`).
    func nextTime(now: Double) -> Double {
        guard let reschedule else { return now }
        let next = reschedule(self, now)
        return next >= now ? next : now
    }
}

extension Loop {
    /// Calls `callback` at the wall-clock time `offset` (interval 0), or at every
    /// `offset + N * interval` seconds since the epoch.
    ///
    /// ```swift
    /// // every hour, on the hour
    /// try loop.periodic(offset: 0, interval: 3600) { _ in rotateLogs() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until it stops, so the result can be ignored.
    /// - Throws: ``EVError/invalidInterval(parameter:value:)`` for a NaN or infinite
    ///   offset, or a negative, NaN or infinite interval.
    ///
    /// The corresponding C functions are `ev_periodic_init` and `ev_periodic_start`.
    @discardableResult
    public func periodic(offset: Double, interval: Double = 0, _ callback: @escaping PeriodicWatcher.Callback) throws(EVError) -> PeriodicWatcher {
        let watcher = try PeriodicWatcher(loop: self, offset: offset, interval: interval, callback)
        watcher.start()
        return watcher
    }

    /// Calls `callback` at the times `reschedule` computes.
    ///
    /// - Returns: the started watcher; it stays alive until it stops, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_periodic_init` and `ev_periodic_start`.
    @discardableResult
    public func periodic(reschedule: @escaping PeriodicWatcher.Reschedule, _ callback: @escaping PeriodicWatcher.Callback) -> PeriodicWatcher {
        let watcher = PeriodicWatcher(loop: self, reschedule: reschedule, callback)
        watcher.start()
        return watcher
    }
}
