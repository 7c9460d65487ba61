import CLibev

/// Calls back in every iteration just before the loop blocks for events
/// (`ev_prepare`): the place to flush buffered output, or to integrate another
/// library's event sources. Pairs with CheckWatcher.
///
/// The corresponding C type is `ev_prepare`.
public final class PrepareWatcher: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (PrepareWatcher) -> Void

    private let cWatcherTyped: UnsafeMutablePointer<ev_prepare>
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_prepare_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        cWatcherTyped = loop.core.memory.allocate()
        self.callback = callback
        CLibev_prepare_init(cWatcherTyped, Trampoline.callback)
        super.init(core: loop.core, cStruct: cWatcherTyped)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_prepare_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) { ev_prepare_start(loop, cWatcherTyped) }
    override func cStop(_ loop: OpaquePointer) { ev_prepare_stop(loop, cWatcherTyped) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Starts a PrepareWatcher that calls `callback`; see its documentation for when.
    ///
    /// ```swift
    /// loop.prepare { _ in flushPendingWrites() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_prepare_init` and `ev_prepare_start`.
    @discardableResult
    public func prepare(_ callback: @escaping PrepareWatcher.Callback) -> PrepareWatcher {
        let watcher = PrepareWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
