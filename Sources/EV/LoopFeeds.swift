import CLibev
import EventCore

extension Loop {
    /// Makes every io watcher on `descriptor` pending with `events`, as if
    /// the descriptor had become ready: a way to plug in event sources libev
    /// does not know, or to test handlers without real io.
    ///
    /// The corresponding C function is `ev_feed_fd_event`.
    public func feedDescriptorEvent(_ descriptor: FileDescriptor, _ events: Events) {
        ev_feed_fd_event(core.checkedLoop(), descriptor.rawValue, Int32(events.intersection([.read, .write]).rawValue))
    }

    /// Makes the signal watchers of `signal` on this loop pending, as if the
    /// signal had arrived - without raising it (testing signal handling).
    /// Does nothing if this loop does not watch `signal`.
    ///
    /// The corresponding C function is `ev_feed_signal_event`.
    public func feedSignalEvent(_ signal: Int32) {
        ev_feed_signal_event(core.checkedLoop(), signal)
    }

    /// Tells libev that `signal` arrived, from anywhere - a signal handler
    /// of your own included (it is async-signal-safe): the loop watching it
    /// runs its signal watchers as if the kernel had delivered it.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` for a number outside
    ///   1..<65, which libev would use as an index into its signal table
    ///   unchecked (`ev_feed_signal(0)` reads before the table and crashes
    ///   or corrupts memory). The check is a comparison and the error a
    ///   value, so a signal handler may still call it.
    ///
    /// The corresponding C function is `ev_feed_signal`.
    public static func feedSignal(_ signal: Int32) throws(EventLoopError) {
        guard signal > 0, signal < signalNumberLimit else { throw InvalidArgument.signal(signal, operation: "ev_feed_signal") }
        ev_feed_signal(signal)
    }

    /// Lends the loop's `struct ev_loop *` to `body`, so that a C library
    /// written for libev (hiredis's `adapters/libev.h`, libcurl's hiper
    /// examples, libwebsockets) runs on this loop beside its Swift watchers.
    ///
    /// The rules, as libev's own: use the pointer on the loop's thread only
    /// (this call checks it is, in release builds too); never destroy it - the `Loop` owns
    /// it - nor keep it past the loop (``close()`` frees it); leave the
    /// loop's user data and its invoke-pending callback alone
    /// (`ev_set_userdata`, `ev_set_invoke_pending_cb`): the wrapper's own
    /// callbacks find the loop through them (a replaced user data traps
    /// when `body` returns, with a message); the watchers
    /// the C library starts are its own - the Swift side neither sees nor
    /// stops them, so stop them before closing the loop. A C library that
    /// watches a descriptor must not also be watched by a Swift `IOWatcher`
    /// on the same descriptor with different rules.
    ///
    /// ```swift
    /// loop.withUnsafeEVLoop { raw in redisLibevAttach(raw, context) }
    /// ```
    public func withUnsafeEVLoop<Result>(_ body: (OpaquePointer) throws -> Result) rethrows -> Result {
        let raw = core.checkedLoop()
        defer { Trampoline.checkUserData(raw, core) }
        return try body(raw)
    }

    /// Calls `callback` once, `timeout` from ``now`` (zero or negative: the
    /// next iteration). Nothing to keep or stop.
    ///
    /// It does what libev's `ev_once` does with only a timeout, and is the
    /// cheapest timer the wrapper has: libev's `ev_timer` and the callback
    /// side by side in a slot of the loop's watcher memory, no watcher
    /// object - so nothing is allocated beyond what the closure itself needs,
    /// and firing touches only memory libev has just touched. The loop's
    /// teardown drops a pending once, uncalled.
    ///
    /// The corresponding C function is `ev_once`.
    public func once(after timeout: Duration, _ callback: __owned @escaping (Events) -> Void) {
        OnceTimer.start(core, after: timeout.libevInterval, callback)
    }

    /// Calls `callback` once, when `descriptor` is ready for `events` or
    /// after `timeout`, whichever comes first - ``Events/timer`` says a
    /// timeout; with no timeout, only the descriptor. Nothing to keep or stop.
    ///
    /// It does what libev's `ev_once` does, on an io and a timer watcher, so
    /// that the wrapper's descriptor checks apply to it.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/badDescriptor(_:)`` for a
    ///   descriptor that is not open.
    ///
    /// The corresponding C function is `ev_once`.
    public func once(_ descriptor: FileDescriptor, events: Events = .read, timeout: Duration? = nil,
                     _ callback: __owned @escaping (Events) -> Void) throws(EventLoopError) {
        let once = OnceWatch(callback)
        once.io = try io(descriptor, events) { [once] _, got in once.fire(got) }
        if let timeout {
            // A timer without a repeat cannot fail.
            once.timer = try! timer(after: timeout) { [once] _ in once.fire(.timer) }
        }
    }
}

/// The io and timer watchers of one ``Loop/once(_:events:timeout:_:)``.
///
/// The loop holds its active watchers and their closures hold this object;
/// it holds them weakly, so a loop closed with a once pending lets all of it go.
private final class OnceWatch {
    weak var io: IOWatcher?
    weak var timer: TimerWatcher?
    private var callback: ((Events) -> Void)?

    init(_ callback: @escaping (Events) -> Void) { self.callback = callback }

    func fire(_ events: Events) {
        guard let callback else { return }
        self.callback = nil
        io?.stop()
        timer?.stop()
        io = nil
        timer = nil
        callback(events)
    }
}

/// A ``Loop/once(after:_:)``: libev's
/// `ev_timer` and then the callback, in one slot of the loop's
/// ``WatcherMemory``, marked live (``WatcherMemory/markLive(_:)``) from its
/// start until it fires or the loop closes. There is no object to keep or
/// stop, as libev's `ev_once` has none: a once cannot be cancelled.
struct OnceTimer {
    var timer: ev_timer
    var callback: (Events) -> Void

    /// Starts one on `core`'s loop (on its thread: checked).
    static func start(_ core: LoopCore, after seconds: Double, _ callback: __owned @escaping (Events) -> Void) {
        let loop = core.checkedLoop()
        let slot: UnsafeMutablePointer<OnceTimer> = core.memory.allocate()
        slot.initialize(to: OnceTimer(timer: ev_timer(), callback: callback))
        let timer = slot.pointer(to: \.timer)!
        CLibev_timer_init(timer, Trampoline.onceTimerFired, seconds, 0)
        WatcherMemory.markLive(slot)
        ev_timer_start(loop, timer)
    }

    /// Frees the slot of a once that has fired (libev has stopped it and
    /// cleared its pending state, and touches it no more) and returns its
    /// callback, for the caller to run: the callback may start the next once,
    /// in this very slot.
    static func finish(_ slot: UnsafeMutablePointer<OnceTimer>, _ core: LoopCore) -> (Events) -> Void {
        let callback = slot.move().callback
        core.memory.free(slot)
        return callback
    }

    /// Drops every pending once of `core`'s loop, uncalled (the loop
    /// closes); stops each first while the C loop still exists.
    static func dropAll(_ core: LoopCore, stoppingOn loop: OpaquePointer?) {
        for slot in core.memory.liveStructs(OnceTimer.self) {
            if let loop { ev_timer_stop(loop, slot.pointer(to: \.timer)!) }
            _ = finish(slot, core)
        }
    }
}
