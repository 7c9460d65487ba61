import CLibev

/// Calls back in every iteration in which no other watcher of the same or
/// higher priority has an event (`ev_idle`): work for when the loop has
/// nothing else to do. While an idle watcher is active the loop never blocks,
/// so stop it when its work is done.
///
/// The corresponding C type is `ev_idle`.
public final class IdleWatcher: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (IdleWatcher) -> Void

    private let cWatcherTyped: UnsafeMutablePointer<ev_idle>
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_idle_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        cWatcherTyped = loop.core.memory.allocate()
        self.callback = callback
        CLibev_idle_init(cWatcherTyped, Trampoline.callback)
        super.init(core: loop.core, cStruct: cWatcherTyped)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_idle_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) { ev_idle_start(loop, cWatcherTyped) }
    override func cStop(_ loop: OpaquePointer) { ev_idle_stop(loop, cWatcherTyped) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Starts a IdleWatcher that calls `callback`; see its documentation for when.
    ///
    /// ```swift
    /// loop.idle { idle in
    ///     if !doSomeBackgroundWork() { idle.stop() }
    /// }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_idle_init` and `ev_idle_start`.
    @discardableResult
    public func idle(_ callback: @escaping IdleWatcher.Callback) -> IdleWatcher {
        let watcher = IdleWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
