import CLibev

/// Calls back once, when the loop is destroyed - when the last reference to
/// the Loop is dropped (`ev_cleanup`): the place to free what belongs to
/// the loop. In the callback the loop can still be used to stop watchers, not
/// to start them. A cleanup watcher does not keep the loop running.
///
/// The corresponding C type is `ev_cleanup`.
public final class CleanupWatcher: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (CleanupWatcher) -> Void

    private let cWatcherTyped: UnsafeMutablePointer<ev_cleanup>
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_cleanup_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        cWatcherTyped = loop.core.memory.allocate()
        self.callback = callback
        CLibev_cleanup_init(cWatcherTyped, Trampoline.callback)
        super.init(core: loop.core, cStruct: cWatcherTyped)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_cleanup_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) { ev_cleanup_start(loop, cWatcherTyped) }
    override func cStop(_ loop: OpaquePointer) { ev_cleanup_stop(loop, cWatcherTyped) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Starts a CleanupWatcher that calls `callback`; see its documentation for when.
    ///
    /// ```swift
    /// loop.cleanup { _ in closeDatabase() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_cleanup_init` and `ev_cleanup_start`.
    @discardableResult
    public func cleanup(_ callback: @escaping CleanupWatcher.Callback) -> CleanupWatcher {
        let watcher = CleanupWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
