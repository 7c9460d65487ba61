import CLibev
import EventCore

/// What every libev watcher has in common: start and stop, active and pending,
/// priority, keep-alive, and feeding or invoking events by hand.
///
/// A watcher is a libev `ev_TYPE` struct on the heap (it never moves while
/// active) plus the Swift closure its events call. The subclasses, one per
/// libev watcher type, add what that type watches.
///
/// ## Lifetime
/// A started watcher stays alive until it is stopped, even when the program
/// keeps no reference to it: fire-and-forget works. Its callback receives the
/// watcher, so the closure never has to capture it. Stopping it (or libev
/// stopping it, as for a timer that has fired) releases it; destroying the
/// loop stops every watcher of the loop.
///
/// ## Threads
/// A watcher belongs to its loop's thread and is not `Sendable`. Using it
/// from another thread while the loop runs there traps with a message.
public class Watcher {
    let core: LoopCore
    /// The `ev_TYPE` struct, as libev's generic `ev_watcher`.
    let cWatcher: UnsafeMutableRawPointer
    // The stored vars are @exclusivity(unchecked): a watcher is used on its
    // loop's thread only (checked), each access is a plain load or store
    // that calls nothing, so none can overlap another; the runtime's check
    // (an access-set insert through a thread-local) was paid several times
    // per event on the dispatch path.
    /// Whether the start bookkeeping (keep-alive, descriptors) is in effect.
    @exclusivity(unchecked) var isStarted = false
    /// Whether the loop holds a reference to the watcher (kept in the struct's
    /// slot header, see ``WatcherMemory``), which keeps it alive.
    @exclusivity(unchecked) private var isHeld = false
    /// True while the trampoline runs the callback; the trampoline then owns the final release.
    @exclusivity(unchecked) private var isDispatching = false
    @exclusivity(unchecked) private var keepAliveValue = true

    /// The events that the latest callback received.
    @exclusivity(unchecked) public internal(set) var receivedEvents: Events = []

    /// - Parameters:
    ///   - core: the loop's shared state.
    ///   - cStruct: the libev struct, allocated from `core.memory` and initialised.
    init<CStruct>(core: LoopCore, cStruct: UnsafeMutablePointer<CStruct>) {
        self.core = core
        self.cWatcher = UnsafeMutableRawPointer(cStruct)
        Trampoline.attach(self)
    }

    deinit {
        // A watcher that is active or pending is held by its loop, so reaching
        // deinit means libev no longer refers to the struct (or the loop is gone).
        core.memory.free(cWatcher)
    }

    // MARK: what each watcher type provides

    /// Starts the C watcher (`ev_TYPE_start`).
    func cStart(_ loop: OpaquePointer) { fatalError("abstract") }
    /// Stops the C watcher (`ev_TYPE_stop`).
    func cStop(_ loop: OpaquePointer) { fatalError("abstract") }
    /// Undoes a type's own start bookkeeping, whoever stopped the watcher.
    func didStop() {}
    /// Calls the watcher's closure.
    func fire(_ events: Events) { fatalError("abstract") }
    /// Whether this is a cleanup watcher: the loop's teardown leaves it to
    /// libev, which runs it as it destroys the loop.
    var isCleanup: Bool { false }

    // MARK: common controls

    /// The loop this watcher belongs to, or nil once that loop has been destroyed.
    public var loop: Loop? { core.owner }

    /// Whether the watcher is started and waiting for events.
    ///
    /// The corresponding C macro is `ev_is_active`.
    public var isActive: Bool { CLibev_is_active(cWatcher) != 0 }

    /// Whether the watcher has an event whose callback has not run yet.
    ///
    /// The corresponding C macro is `ev_is_pending`.
    public var isPending: Bool { CLibev_is_pending(cWatcher) != 0 }

    /// The order among pending callbacks: higher runs first, from -2 to 2 (default 0).
    ///
    /// Values outside -2...2 are clamped. Setting it on an active watcher
    /// restarts the watcher; on a pending one, keeps the pending event.
    ///
    /// The corresponding C macros are `ev_priority` and `ev_set_priority`.
    public var priority: Int {
        get { Int(CLibev_priority(cWatcher)) }
        set {
            let value = Int32(min(max(newValue, -2), 2))
            guard value != CLibev_priority(cWatcher) else { return }
            let loop = core.checkedLoop()
            let pendingEvents = ev_clear_pending(loop, cWatcher)
            let wasActive = isActive
            if wasActive { cStop(loop) }
            CLibev_set_priority(cWatcher, value)
            if wasActive { cStart(loop) }
            if pendingEvents != 0 { ev_feed_event(loop, cWatcher, pendingEvents) }
        }
    }

    /// Whether this watcher, while active, keeps ``Loop/run(_:)-(RunMode)`` from returning (default true).
    ///
    /// A watcher with `keepAlive == false` still receives events while the loop
    /// runs for other reasons, but does not by itself keep the loop running -
    /// for a long-lived helper such as a `SIGINT` handler.
    ///
    /// The corresponding C functions are `ev_ref` and `ev_unref`.
    public var keepAlive: Bool {
        get { keepAliveValue }
        set {
            guard newValue != keepAliveValue else { return }
            keepAliveValue = newValue
            guard isStarted, let loop = core.loopIfAlive() else { return }
            if newValue { ev_ref(loop) } else { ev_unref(loop) }
        }
    }

    /// Stops the watcher and clears any pending event. Harmless when it is
    /// stopped already, and after its loop has been destroyed.
    ///
    /// The corresponding C function is `ev_TYPE_stop`.
    public func stop() {
        guard let loop = core.loopIfAlive() else { return }
        stopInLibev(loop)
        releaseIfIdle()
    }

    /// Stops the C watcher (which also clears a pending event) and undoes the start bookkeeping.
    private func stopInLibev(_ loop: OpaquePointer) {
        if isStarted {
            // Balance the ev_unref of start; libev may have stopped the watcher already.
            if !keepAliveValue { ev_ref(loop) }
            cStop(loop)
            isStarted = false
            didStop()
        } else {
            cStop(loop)
        }
    }

    /// Makes the watcher pending with `events`, as if they had happened; its
    /// callback runs in the loop's next round of callbacks. Works on a stopped
    /// watcher too.
    ///
    /// The corresponding C function is `ev_feed_event`.
    public func feed(_ events: Events) {
        let loop = core.checkedLoop()
        ev_feed_event(loop, cWatcher, events.rawValue)
        hold()
    }

    /// Calls the watcher's callback now, with `events`.
    ///
    /// The corresponding C function is `ev_invoke`.
    public func invoke(_ events: Events) {
        let loop = core.checkedLoop()
        ev_invoke(loop, cWatcher, events.rawValue)
    }

    /// Clears a pending event without running the callback.
    ///
    /// - Returns: the events that were pending, empty if none.
    ///
    /// The corresponding C function is `ev_clear_pending`.
    @discardableResult
    public func clearPending() -> Events {
        guard let loop = core.loopIfAlive() else { return [] }
        let events = Events(rawValue: ev_clear_pending(loop, cWatcher))
        reconcileWithLibev()
        releaseIfIdle()
        return events
    }

    // MARK: bookkeeping shared by the subclasses

    /// Starts the watcher after the subclass has checked its inputs.
    final func startChecked() {
        let loop = core.checkedLoop()
        guard !isActive else { return }
        if isStarted {
            // libev stopped it (a fired timer, say) and its callback has not run yet.
            reconcileWithLibev()
        }
        cStart(loop)
        adoptStart(loop)
    }

    /// Does the start bookkeeping for a watcher that libev has just made active.
    final func adoptStart(_ loop: OpaquePointer) {
        isStarted = true
        if !keepAliveValue { ev_unref(loop) }
        hold()
    }

    /// Restarts an active watcher around a change to its parameters
    /// (libev forbids changing an active watcher).
    final func restart(around change: () -> Void) {
        guard isActive, let loop = core.loopIfAlive() else { return change() }
        cStop(loop)
        change()
        cStart(loop)
    }

    /// Notices that libev stopped the watcher on its own (a one-shot timer that
    /// fired, an io watcher whose descriptor went bad) and undoes the start bookkeeping.
    final func reconcileWithLibev() {
        guard isStarted, !isActive else { return }
        isStarted = false
        if !keepAliveValue, let loop = core.raw { ev_ref(loop) }
        didStop()
    }

    private func hold() {
        guard !isHeld else { return }
        isHeld = true
        WatcherMemory.setHeld(Unmanaged.passRetained(self), for: cWatcher)
    }

    /// Clears the loop's reference and returns it, for the caller to release.
    private func unhold() -> Unmanaged<Watcher> {
        isHeld = false
        let reference = WatcherMemory.held(for: cWatcher)!
        WatcherMemory.setHeld(nil, for: cWatcher)
        return reference
    }

    /// Lets the watcher go once libev no longer refers to it. The caller holds
    /// its own reference, so the release cannot free the object under it.
    final func releaseIfIdle() {
        guard isHeld, !isDispatching, !isStarted, !isPending else { return }
        unhold().release()
    }

    /// Called by the trampoline for each event.
    ///
    /// - Returns: the loop's reference to the watcher if the watcher is now
    ///   idle (stopped and not pending); the trampoline releases it after this
    ///   method has returned, so that no code of the watcher runs on a freed object.
    final func dispatch(_ revents: Int32) -> Unmanaged<Watcher>? {
        reconcileWithLibev()
        let events = Events(rawValue: revents)
        receivedEvents = events
        let outer = isDispatching
        isDispatching = true
        LoopMonitor.measure(core.executor.monitor, monitorSource(events)) { fire(events) }
        isDispatching = outer
        reconcileWithLibev()
        guard isHeld, !isDispatching, !isStarted, !isPending else { return nil }
        return unhold()
    }

    /// What the watcher is, in a slow-callback report (``EventCore/LoopMonitor``).
    func monitorSource(_ events: Events) -> String {
        "\(type(of: self)) (\(events))"
    }

    /// Stops the watcher because its loop is being destroyed.
    final func detachForTeardown(_ loop: OpaquePointer) {
        stopInLibev(loop)
        willDetachForTeardown()
        unhold().release()
    }

    /// The loop closes: let go of what would keep a cycle alive.
    func willDetachForTeardown() {}

    /// Forgets a watcher that libev left active when it freed the loop (cleanup watchers).
    final func detachAfterDestroy() {
        // libev's struct says "not active, not pending" again; the fields are plain ints.
        cWatcher.storeBytes(of: 0, toByteOffset: MemoryLayout<ev_watcher>.offset(of: \.active)!, as: Int32.self)
        cWatcher.storeBytes(of: 0, toByteOffset: MemoryLayout<ev_watcher>.offset(of: \.pending)!, as: Int32.self)
        if isStarted {
            isStarted = false
            didStop()
        }
        unhold().release()
    }
}
