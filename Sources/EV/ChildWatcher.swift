import CLibev
import EventCore
import Glibc

/// Calls back when a child process changes status: exits, is killed, and with
/// `trace`, stops or continues (`ev_child`).
///
/// ## The special problem of reaping
/// Child watchers work only on the default loop (``Loop/defaultLoop(flags:backends:)``),
/// which owns `SIGCHLD`. When it runs, libev reaps *every* child that changed
/// status (`waitpid(-1, ...)`), whether a watcher waits for it or not, so code
/// that calls `waitpid` for its own children must not share a process with a
/// running default loop. Start the watcher before the child can exit - right
/// after `fork` or `posix_spawn`, in the same callback - or its status is lost.
///
/// The corresponding C type is `ev_child`.
public final class ChildWatcher: Watcher {
    /// The closure called with the watcher when the child changes status.
    public typealias Callback = (ChildWatcher) -> Void

    /// How a child process changed, decoded from `waitpid`'s status: the
    /// package's one ``/EventCore/ChildStatus``.
    public typealias Status = ChildStatus

    private let child: UnsafeMutablePointer<ev_child>
    private let callback: Callback

    /// Creates a stopped watcher for the child `pid`, or for any child if `pid` is 0.
    ///
    /// - Parameters:
    ///   - loop: the default loop.
    ///   - pid: the child's process id; 0 for any child.
    ///   - trace: also report stops and continues, not only terminations.
    ///   - callback: called with the watcher at each status change.
    ///
    /// The corresponding C macro is `ev_child_init`.
    public init(loop: Loop, pid: pid_t, trace: Bool = false, _ callback: @escaping Callback) {
        child = loop.core.memory.allocate()
        self.callback = callback
        self.trace = trace
        CLibev_child_init(child, Trampoline.callback, pid, trace ? 1 : 0)
        super.init(core: loop.core, cStruct: child)
    }

    /// The process id watched; 0 for any child.
    public var pid: pid_t { child.pointee.pid }
    /// Whether stops and continues are reported too, not only terminations.
    public private(set) var trace: Bool

    /// Changes the child watched and whether it traces, restarting the
    /// watcher if it was active.
    ///
    /// The corresponding C macro is `ev_child_set`.
    public func set(pid: pid_t, trace: Bool = false) {
        restart { CLibev_child_set(child, pid, trace ? 1 : 0) }
        self.trace = trace
    }
    /// The process id that changed status most recently.
    public var receivedPID: pid_t { child.pointee.rpid }
    /// The raw `waitpid` status most recently received.
    public var receivedStatus: Int32 { child.pointee.rstatus }
    /// ``receivedStatus``, decoded.
    public var status: Status { Status(waitStatus: child.pointee.rstatus) }

    /// Starts watching.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/childWatcherNeedsDefaultLoop`` unless the loop is the default loop.
    ///
    /// The corresponding C function is `ev_child_start`.
    public func start() throws(EventLoopError) {
        guard core.isDefault else { throw EventLoopError(.childWatcherNeedsDefaultLoop, operation: "child") }
        startChecked()
    }

    override func cStart(_ loop: OpaquePointer) { ev_child_start(loop, child) }
    override func cStop(_ loop: OpaquePointer) { ev_child_stop(loop, child) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Calls `callback` when the child `pid` (or any child, for 0) changes status.
    ///
    /// ```swift
    /// let loop = try Loop.defaultLoop()
    /// try loop.child(pid) { watcher in
    ///     print("\(watcher.receivedPID) \(watcher.status)")
    ///     watcher.stop()
    /// }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError/Code/childWatcherNeedsDefaultLoop`` unless this is the default loop.
    ///
    /// The corresponding C functions are `ev_child_init` and `ev_child_start`.
    @discardableResult
    public func child(_ pid: pid_t, trace: Bool = false, _ callback: @escaping ChildWatcher.Callback) throws(EventLoopError) -> ChildWatcher {
        let watcher = ChildWatcher(loop: self, pid: pid, trace: trace, callback)
        try watcher.start()
        return watcher
    }
}
