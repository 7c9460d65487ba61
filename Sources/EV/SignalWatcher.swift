import CLibev
import EventCore
import Glibc

/// Calls back when the process receives a signal (`ev_signal`).
///
/// The callback runs on the loop's thread in a normal iteration - not in a
/// signal handler - so it may do anything. Several deliveries before the loop
/// wakes up may coalesce into one callback.
///
/// ## The special problem of signals and loops
/// libev lets one loop own each signal: once a loop watches `SIGUSR1`, starting
/// a watcher for it on another loop throws ``/EventCore/EventLoopError/Code/signalOwnedByAnotherLoop``
/// (libev would abort). The default loop owns `SIGCHLD` for its child watchers.
/// A signal is free again when its last watcher on the owning loop stops.
///
/// The corresponding C type is `ev_signal`.
public final class SignalWatcher: Watcher {
    /// The closure called with the watcher when the signal arrives.
    public typealias Callback = (SignalWatcher) -> Void

    private let cSignal: UnsafeMutablePointer<ev_signal>
    private let callback: Callback

    /// Creates a stopped watcher for `signal`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - signal: the signal number, such as `SIGINT`.
    ///   - callback: called with the watcher each time the signal arrives.
    /// - Throws: ``/EventCore/EventLoopError/Code/invalidArgument`` for a number
    ///   outside 1..<65, or `SIGKILL` / `SIGSTOP`.
    ///
    /// The corresponding C macro is `ev_signal_init`.
    public init(loop: Loop, signal: Int32, _ callback: @escaping Callback) throws(EventLoopError) {
        try Self.validate(signal)
        cSignal = loop.core.memory.allocate()
        self.callback = callback
        CLibev_signal_init(cSignal, Trampoline.callback, signal)
        super.init(core: loop.core, cStruct: cSignal)
    }

    private static func validate(_ signal: Int32) throws(EventLoopError) {
        if let error = EventLoopError.unwatchable(signal: signal, operation: "signal") { throw error }
    }

    /// The signal watched.
    public var signal: Int32 { cSignal.pointee.signum }

    /// Starts watching.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/signalOwnedByAnotherLoop`` if another loop watches this signal.
    ///
    /// The corresponding C function is `ev_signal_start`.
    public func start() throws(EventLoopError) {
        guard !isActive else { return }
        try SignalOwnership.claim(signal: signal, core: core)
        startChecked()
    }

    /// Changes the signal, restarting the watcher if it was active.
    ///
    /// - Throws: ``/EventCore/EventLoopError``: an invalid signal, or
    ///   ``/EventCore/EventLoopError/Code/signalOwnedByAnotherLoop`` if the watcher was
    ///   active and another loop owns the new signal (the watcher is then stopped).
    ///
    /// The corresponding C macro is `ev_signal_set`.
    public func set(signal: Int32) throws(EventLoopError) {
        try Self.validate(signal)
        let wasActive = isActive
        stop()
        CLibev_signal_set(cSignal, signal)
        if wasActive { try start() }
    }

    override func cStart(_ loop: OpaquePointer) { ev_signal_start(loop, cSignal) }
    override func cStop(_ loop: OpaquePointer) { ev_signal_stop(loop, cSignal) }
    override func didStop() { SignalOwnership.release(signal: signal, core: core) }
    override func fire(_ events: Events) { callback(self) }
}

/// Which loop owns each signal, process-wide, mirroring libev's own table so
/// that a second loop is refused with an error instead of libev's assertion.
enum SignalOwnership {
    private struct Owner {
        var core: ObjectIdentifier
        var watchers: Int
    }

    private static let owners = LockedValue<[Int32: Owner]>([:])

    static func claim(signal: Int32, core: LoopCore) throws(EventLoopError) {
        let id = ObjectIdentifier(core)
        let claimed = owners.withLock { owners in
            if let owner = owners[signal], owner.core != id { return false }
            owners[signal, default: Owner(core: id, watchers: 0)].watchers += 1
            return true
        }
        guard claimed else { throw InvalidArgument.signalOwned(signal) }
    }

    static func release(signal: Int32, core: LoopCore) {
        let id = ObjectIdentifier(core)
        owners.withLock { owners in
            guard var owner = owners[signal], owner.core == id else { return }
            owner.watchers -= 1
            owners[signal] = owner.watchers > 0 ? owner : nil
        }
    }
}

extension Loop {
    /// Calls `callback` on the loop's thread each time the process receives `signal`.
    ///
    /// ```swift
    /// let sigint = try loop.signal(SIGINT) { watcher in watcher.loop?.break(.all) }
    /// sigint.keepAlive = false   // do not keep the loop running just for this
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError``: an invalid signal, or one another loop owns.
    ///
    /// The corresponding C functions are `ev_signal_init` and `ev_signal_start`.
    @discardableResult
    public func signal(_ signal: Int32, _ callback: @escaping SignalWatcher.Callback) throws(EventLoopError) -> SignalWatcher {
        let watcher = try SignalWatcher(loop: self, signal: signal, callback)
        try watcher.start()
        return watcher
    }
}
