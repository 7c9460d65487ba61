import CLibev
import EventCore

/// One of libev's five watchers that watch the loop itself rather than an
/// outside event - check, prepare, idle, fork, cleanup - named by its kind:
/// ``CheckWatcher``, ``PrepareWatcher``, ``IdleWatcher``, ``ForkWatcher``,
/// ``CleanupWatcher``. One shell for the five (libev gives them one layout
/// and no data of their own); the kind decides only which libev functions
/// start and stop it, and when it fires.
public final class HookWatcher<Kind: HookKind>: Watcher {
    /// The closure called with the watcher.
    public typealias Callback = (HookWatcher<Kind>) -> Void

    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - callback: called with the watcher each time it fires.
    ///
    /// The corresponding C macro is `ev_TYPE_init` (`ev_check_init`, ...).
    public init(loop: Loop, _ callback: @escaping Callback) {
        self.callback = callback
        // The five structs share one layout: EV_WATCHER and nothing more.
        let cStruct: UnsafeMutablePointer<ev_check> = loop.core.memory.allocate()
        switch Kind.hook {
        case .check: CLibev_check_init(cStruct, Trampoline.callback)
        case .prepare: CLibev_prepare_init(UnsafeMutableRawPointer(cStruct).assumingMemoryBound(to: ev_prepare.self), Trampoline.callback)
        case .idle: CLibev_idle_init(UnsafeMutableRawPointer(cStruct).assumingMemoryBound(to: ev_idle.self), Trampoline.callback)
        case .fork: CLibev_fork_init(UnsafeMutableRawPointer(cStruct).assumingMemoryBound(to: ev_fork.self), Trampoline.callback)
        case .cleanup: CLibev_cleanup_init(UnsafeMutableRawPointer(cStruct).assumingMemoryBound(to: ev_cleanup.self), Trampoline.callback)
        }
        super.init(core: loop.core, cStruct: cStruct)
    }

    /// Starts the watcher.
    ///
    /// The corresponding C function is `ev_TYPE_start` (`ev_check_start`, ...).
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) {
        switch Kind.hook {
        case .check: ev_check_start(loop, cWatcher.assumingMemoryBound(to: ev_check.self))
        case .prepare: ev_prepare_start(loop, cWatcher.assumingMemoryBound(to: ev_prepare.self))
        case .idle: ev_idle_start(loop, cWatcher.assumingMemoryBound(to: ev_idle.self))
        case .fork: ev_fork_start(loop, cWatcher.assumingMemoryBound(to: ev_fork.self))
        case .cleanup: ev_cleanup_start(loop, cWatcher.assumingMemoryBound(to: ev_cleanup.self))
        }
    }

    override func cStop(_ loop: OpaquePointer) {
        switch Kind.hook {
        case .check: ev_check_stop(loop, cWatcher.assumingMemoryBound(to: ev_check.self))
        case .prepare: ev_prepare_stop(loop, cWatcher.assumingMemoryBound(to: ev_prepare.self))
        case .idle: ev_idle_stop(loop, cWatcher.assumingMemoryBound(to: ev_idle.self))
        case .fork: ev_fork_stop(loop, cWatcher.assumingMemoryBound(to: ev_fork.self))
        case .cleanup: ev_cleanup_stop(loop, cWatcher.assumingMemoryBound(to: ev_cleanup.self))
        }
    }

    override func fire(_ events: Events) { callback(self) }

    /// Whether this is a cleanup watcher (teardown leaves those to libev).
    override var isCleanup: Bool { Kind.hook == .cleanup }
}

/// Which of the loop's own events a ``HookWatcher`` watches; the five kinds
/// are the package's (``Check``, ``Prepare``, ``Idle``, ``Fork``, ``Cleanup``).
public protocol HookKind: Sendable {
    /// The libev watcher type.
    static var hook: LoopHook { get }
}

/// A libev watcher type that watches the loop itself.
public enum LoopHook: Sendable, Equatable {
    /// `ev_check`: just after the loop wakes up.
    case check
    /// `ev_prepare`: just before the loop blocks.
    case prepare
    /// `ev_idle`: when nothing else of its priority is pending.
    case idle
    /// `ev_fork`: in a forked child, before the next iteration.
    case fork
    /// `ev_cleanup`: when the loop is destroyed.
    case cleanup
}

/// ``HookWatcher``'s kind for ``CheckWatcher``.
public enum Check: HookKind {
    /// ``LoopHook/check``.
    public static let hook = LoopHook.check
}

/// ``HookWatcher``'s kind for ``PrepareWatcher``.
public enum Prepare: HookKind {
    /// ``LoopHook/prepare``.
    public static let hook = LoopHook.prepare
}

/// ``HookWatcher``'s kind for ``IdleWatcher``.
public enum Idle: HookKind {
    /// ``LoopHook/idle``.
    public static let hook = LoopHook.idle
}

/// ``HookWatcher``'s kind for ``ForkWatcher``.
public enum Fork: HookKind {
    /// ``LoopHook/fork``.
    public static let hook = LoopHook.fork
}

/// ``HookWatcher``'s kind for ``CleanupWatcher``.
public enum Cleanup: HookKind {
    /// ``LoopHook/cleanup``.
    public static let hook = LoopHook.cleanup
}

/// Calls back in every iteration just after the loop wakes up, before the
/// other callbacks of that iteration (`ev_check`): the place to look at what
/// another library's event sources received. Pairs with ``PrepareWatcher``.
///
/// The corresponding C type is `ev_check`.
public typealias CheckWatcher = HookWatcher<Check>

/// Calls back in every iteration just before the loop blocks for events
/// (`ev_prepare`): the place to flush buffered output, or to integrate another
/// library's event sources. Pairs with ``CheckWatcher``.
///
/// The corresponding C type is `ev_prepare`.
public typealias PrepareWatcher = HookWatcher<Prepare>

/// Calls back in every iteration in which no other watcher of the same or
/// higher priority has an event (`ev_idle`): work for when the loop has
/// nothing else to do. While an idle watcher is active the loop never blocks,
/// so stop it when its work is done.
///
/// The corresponding C type is `ev_idle`.
public typealias IdleWatcher = HookWatcher<Idle>

/// Calls back in a forked child, before the next iteration, once the child has
/// called ``Loop/reinitializeAfterFork()`` (or the loop was created with
/// ``LoopFlags/forkCheck``) (`ev_fork`): the place to reopen what must not be
/// shared with the parent.
///
/// The corresponding C type is `ev_fork`.
public typealias ForkWatcher = HookWatcher<Fork>

/// Calls back once, when the loop is destroyed - at ``Loop/close()`` or when
/// the last reference to the Loop is dropped (`ev_cleanup`): the place to
/// free what belongs to the loop. In the callback the loop can still be used
/// to stop watchers, not to start them. A cleanup watcher does not keep the
/// loop running.
///
/// The corresponding C type is `ev_cleanup`.
public typealias CleanupWatcher = HookWatcher<Cleanup>

extension Loop {
    /// Starts a ``CheckWatcher`` that calls `callback` just after each wake-up.
    ///
    /// ```swift
    /// loop.check { _ in pollOtherLibrary() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_check_init` and `ev_check_start`.
    @discardableResult
    public func check(_ callback: @escaping CheckWatcher.Callback) -> CheckWatcher { started(callback) }

    /// Starts a ``PrepareWatcher`` that calls `callback` just before each block.
    ///
    /// ```swift
    /// loop.prepare { _ in flushPendingWrites() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_prepare_init` and `ev_prepare_start`.
    @discardableResult
    public func prepare(_ callback: @escaping PrepareWatcher.Callback) -> PrepareWatcher { started(callback) }

    /// Starts an ``IdleWatcher`` that calls `callback` while nothing else is pending.
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
    public func idle(_ callback: @escaping IdleWatcher.Callback) -> IdleWatcher { started(callback) }

    /// Starts a ``ForkWatcher`` that calls `callback` in a forked child.
    ///
    /// ```swift
    /// loop.fork { _ in reopenLogFile() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_fork_init` and `ev_fork_start`.
    @discardableResult
    public func fork(_ callback: @escaping ForkWatcher.Callback) -> ForkWatcher { started(callback) }

    /// Starts a ``CleanupWatcher`` that calls `callback` when the loop is destroyed.
    ///
    /// ```swift
    /// loop.cleanup { _ in closeDatabase() }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_cleanup_init` and `ev_cleanup_start`.
    @discardableResult
    public func cleanup(_ callback: @escaping CleanupWatcher.Callback) -> CleanupWatcher { started(callback) }

    private func started<Kind: HookKind>(_ callback: @escaping HookWatcher<Kind>.Callback) -> HookWatcher<Kind> {
        let watcher = HookWatcher<Kind>(loop: self, callback)
        watcher.start()
        return watcher
    }
}
