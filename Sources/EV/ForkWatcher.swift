import CLibev

/// Calls back in a forked child, before the next iteration, once the child has
/// called Loop/reinitializeAfterFork() (or the loop was created with
/// LoopFlags/forkCheck) (`ev_fork`): the place to reopen what must not be
/// shared with the parent.
///
/// The corresponding C type is `ev_fork`.
public final class ForkWatcher: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (ForkWatcher) -> Void

    private let cWatcherTyped: UnsafeMutablePointer<ev_fork>
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_fork_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        cWatcherTyped = loop.core.memory.allocate()
        self.callback = callback
        CLibev_fork_init(cWatcherTyped, Trampoline.callback)
        super.init(core: loop.core, cStruct: cWatcherTyped)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_fork_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) { ev_fork_start(loop, cWatcherTyped) }
    override func cStop(_ loop: OpaquePointer) { ev_fork_stop(loop, cWatcherTyped) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Starts a ForkWatcher that calls `callback`; see its documentation for when.
    ///
    /// ```swift
    /// loop.fork { _ in reopenLogFile() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_fork_init` and `ev_fork_start`.
    @discardableResult
    public func fork(_ callback: @escaping ForkWatcher.Callback) -> ForkWatcher {
        let watcher = ForkWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
