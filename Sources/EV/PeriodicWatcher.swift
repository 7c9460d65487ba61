import CLibev
import EventCore

/// Calls back at wall-clock times: at an absolute time, on a regular schedule
/// such as "every hour on the hour", or at times a closure computes (`ev_periodic`).
///
/// Unlike a ``TimerWatcher``, which counts elapsed time on a monotonic clock, a
/// periodic watcher follows the system's real-time clock (``/EventCore/WallClock``):
/// if the clock is set forward, an hourly periodic still fires on the hour.
///
/// Three modes, as in libev:
/// - absolute: fires once at a ``/EventCore/WallClock/Instant`` (libev's `offset`
///   with `interval` 0);
/// - repeating: fires at every `offset + N * interval` since the epoch;
/// - manual: a reschedule closure returns each next time.
///
/// The corresponding C type is `ev_periodic`.
public final class PeriodicWatcher: Watcher {
    /// The closure called with the watcher at each scheduled time.
    public typealias Callback = (PeriodicWatcher) -> Void
    /// Computes the next time from the current one (`now`). A time before
    /// `now` is taken as `now`; nil means never.
    public typealias Reschedule = (PeriodicWatcher, _ now: WallClock.Instant) -> WallClock.Instant?

    private let periodic: UnsafeMutablePointer<ev_periodic>
    private let callback: Callback
    private var reschedule: Reschedule?

    /// Creates a stopped periodic watcher firing once, at `instant`.
    ///
    /// The corresponding C macro is `ev_periodic_init` with interval 0.
    public init(loop: Loop, at instant: WallClock.Instant, _ callback: @escaping Callback) {
        periodic = loop.core.memory.allocate()
        self.callback = callback
        CLibev_periodic_init(periodic, Trampoline.callback, instant.secondsSinceEpoch, 0, nil)
        super.init(core: loop.core, cStruct: periodic)
    }

    /// Creates a stopped periodic watcher firing at every `offset + N * interval`
    /// since the epoch: `every: .seconds(3600)` is every hour on the hour,
    /// with `offset: .seconds(1800)` every hour at half past.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` unless `interval` is positive.
    ///
    /// The corresponding C macro is `ev_periodic_init`.
    public init(loop: Loop, every interval: Duration, offset: Duration = .zero, _ callback: @escaping Callback) throws(EventLoopError) {
        let interval = try Self.validInterval(interval)
        periodic = loop.core.memory.allocate()
        self.callback = callback
        CLibev_periodic_init(periodic, Trampoline.callback, LoopTime.seconds(offset), interval, nil)
        super.init(core: loop.core, cStruct: periodic)
    }

    /// Creates a stopped periodic watcher whose times come from `reschedule`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - reschedule: given the current time, returns the next one (nil: never).
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

    private static func validInterval(_ interval: Duration) throws(EventLoopError) -> Double {
        guard interval > .zero else {
            throw EventLoopError(.invalidArgument, operation: "ev_periodic_set",
                                 detail: "the interval must be positive; got \(LoopTime.describe(interval))")
        }
        return interval.libevInterval
    }

    /// The offset: the phase within each interval (repeating), or the time
    /// since the epoch (absolute).
    public var offset: Duration { LoopTime.duration(periodic.pointee.offset) }
    /// The interval; zero for an absolute or manual watcher.
    public var interval: Duration { LoopTime.duration(periodic.pointee.interval) }

    /// The next time the watcher fires.
    ///
    /// The corresponding C macro is `ev_periodic_at`.
    public var at: WallClock.Instant { WallClock.Instant(secondsSinceEpoch: CLibev_periodic_at(periodic)) }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_periodic_start`.
    public func start() { startChecked() }

    /// Fires once, at `instant`, from now on (leaving any other mode),
    /// restarting an active watcher.
    ///
    /// The corresponding C macro is `ev_periodic_set` with interval 0.
    public func set(at instant: WallClock.Instant) {
        restart {
            reschedule = nil
            CLibev_periodic_set(periodic, instant.secondsSinceEpoch, 0, nil)
        }
    }

    /// Fires at every `offset + N * interval` from now on (leaving any other
    /// mode), restarting an active watcher.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` unless
    ///   `interval` is positive; nothing changes then.
    ///
    /// The corresponding C macro is `ev_periodic_set`.
    public func set(every interval: Duration, offset: Duration = .zero) throws(EventLoopError) {
        let interval = try Self.validInterval(interval)
        restart {
            reschedule = nil
            CLibev_periodic_set(periodic, LoopTime.seconds(offset), interval, nil)
        }
    }

    /// Switches to manual mode: the times come from `reschedule` from now on,
    /// restarting an active watcher.
    ///
    /// - Parameter reschedule: given the current time, returns the next one (nil: never).
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
    /// accepts (libev asserts that the answer is not before `now`; never is
    /// a time it does not reach: 10^15 s from now).
    func nextTime(now: Double) -> Double {
        guard let reschedule else { return now }
        guard let next = reschedule(self, WallClock.Instant(secondsSinceEpoch: now)) else { return now + LoopTime.longest }
        let seconds = next.secondsSinceEpoch
        return seconds >= now ? min(seconds, now + LoopTime.longest) : now
    }
}

extension Loop {
    /// Calls `callback` once, at the wall-clock time `instant`.
    ///
    /// ```swift
    /// try loop.periodic(at: WallClock.now + .seconds(60)) { _ in print("a minute on the clock") }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until it stops, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_periodic_init` and `ev_periodic_start`.
    @discardableResult
    public func periodic(at instant: WallClock.Instant, _ callback: @escaping PeriodicWatcher.Callback) -> PeriodicWatcher {
        let watcher = PeriodicWatcher(loop: self, at: instant, callback)
        watcher.start()
        return watcher
    }

    /// Calls `callback` at every `offset + N * interval` since the epoch.
    ///
    /// ```swift
    /// // every hour, on the hour
    /// try loop.periodic(every: .seconds(3600)) { _ in rotateLogs() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until it stops, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` unless `interval` is positive.
    ///
    /// The corresponding C functions are `ev_periodic_init` and `ev_periodic_start`.
    @discardableResult
    public func periodic(every interval: Duration, offset: Duration = .zero,
                         _ callback: @escaping PeriodicWatcher.Callback) throws(EventLoopError) -> PeriodicWatcher {
        let watcher = try PeriodicWatcher(loop: self, every: interval, offset: offset, callback)
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
