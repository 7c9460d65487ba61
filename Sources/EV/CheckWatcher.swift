import CLibev

/// Calls back in every iteration just after the loop wakes up, before the
/// other callbacks of that iteration (`ev_check`): the place to look at what
/// another library's event sources received. Pairs with PrepareWatcher.
///
/// The corresponding C type is `ev_check`.
public final class CheckWatcher: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (CheckWatcher) -> Void

    private let cWatcherTyped: UnsafeMutablePointer<ev_check>
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_check_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        cWatcherTyped = loop.core.memory.allocate()
        self.callback = callback
        CLibev_check_init(cWatcherTyped, Trampoline.callback)
        super.init(core: loop.core, cStruct: cWatcherTyped)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_check_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) { ev_check_start(loop, cWatcherTyped) }
    override func cStop(_ loop: OpaquePointer) { ev_check_stop(loop, cWatcherTyped) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Starts a CheckWatcher that calls `callback`; see its documentation for when.
    ///
    /// ```swift
    /// loop.check { _ in pollOtherLibrary() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_check_init` and `ev_check_start`.
    @discardableResult
    public func check(_ callback: @escaping CheckWatcher.Callback) -> CheckWatcher {
        let watcher = CheckWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
