import CLibev
import EventCore

/// Wakes the loop from another thread (`ev_async`).
///
/// The watcher lives on its loop's thread; its ``sender`` is `Sendable` and
/// may be used from any thread, or a signal handler's thread, to make the
/// callback run on the loop's thread. Sends that arrive before the callback
/// runs coalesce into one call: keep the work itself in a queue of your own
/// (or use ``LoopExecutor/execute(_:)``, which does exactly that).
///
/// The corresponding C type is `ev_async`.
public final class AsyncWatcher: Watcher {
    /// The closure called with the watcher after one or more sends.
    public typealias Callback = (AsyncWatcher) -> Void

    /// Sends to an ``AsyncWatcher`` from any thread.
    public struct Sender: Sendable {
        let signal: AsyncSignal

        /// Wakes the watcher's loop so the callback runs on its thread.
        ///
        /// - Returns: false, and does nothing, when the watcher is not active
        ///   (stopped, or its loop destroyed); libev drops such sends too.
        ///
        /// The corresponding C function is `ev_async_send`.
        @discardableResult
        public func send() -> Bool { signal.send() }
    }

    private let signal: AsyncSignal
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop whose thread runs the callback.
    ///   - callback: called with the watcher after sends.
    ///
    /// The corresponding C macro is `ev_async_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        let cAsync: UnsafeMutablePointer<ev_async> = loop.core.memory.allocate()
        signal = AsyncSignal(cAsync)
        self.callback = callback
        CLibev_async_init(cAsync, Trampoline.callback)
        super.init(core: loop.core, cStruct: cAsync)
    }

    /// The `Sendable` handle other threads send with.
    public var sender: Sender { Sender(signal: signal) }

    /// Whether a send has arrived whose callback has not run yet.
    ///
    /// The corresponding C macro is `ev_async_pending`.
    public var isSendPending: Bool { CLibev_async_pending(signal.cAsync) != 0 }

    /// Starts the watcher; sends before this are dropped.
    ///
    /// The corresponding C function is `ev_async_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) {
        ev_async_start(loop, signal.cAsync)
        signal.target.withLock { $0 = AsyncTarget(loop: loop) }
    }

    override func cStop(_ loop: OpaquePointer) {
        signal.target.withLock { $0 = nil }
        ev_async_stop(loop, signal.cAsync)
    }

    override func fire(_ events: Events) { callback(self) }
}

/// The `ev_async` struct and the loop it may be sent to, shared between an
/// ``AsyncWatcher`` and its senders on other threads.
final class AsyncSignal: @unchecked Sendable {
    // Sendable because the only cross-thread use is `send`, which reads `target`
    // under its lock and calls ev_async_send - the one libev function documented
    // as safe from any thread. `target` is the loop only while the watcher is
    // active: the loop thread sets it to nil under the same lock before it stops
    // the watcher (and before the loop is destroyed, which stops it), so a send
    // can never reach a stopped watcher or a freed loop. The struct belongs to
    // the watcher (its memory is freed after the watcher is stopped for good);
    // a sender dereferences `cAsync` only while `target` is set, so never then.
    let cAsync: UnsafeMutablePointer<ev_async>
    let target = LockedValue<AsyncTarget?>(nil)

    init(_ cAsync: UnsafeMutablePointer<ev_async>) {
        self.cAsync = cAsync
    }

    func send() -> Bool {
        target.withLock { loop in
            guard let target = loop else { return false }
            ev_async_send(target.loop, cAsync)
            return true
        }
    }
}

extension Loop {
    /// Starts an ``AsyncWatcher`` whose ``AsyncWatcher/sender`` wakes this loop from any thread.
    ///
    /// ```swift
    /// let wakeup = loop.async { _ in drainMyQueue() }
    /// let sender = wakeup.sender          // Sendable
    /// Thread { enqueue(work); sender.send() }.start()
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_async_init` and `ev_async_start`.
    @discardableResult
    public func async(_ callback: @escaping AsyncWatcher.Callback) -> AsyncWatcher {
        let watcher = AsyncWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}

/// The loop an ``AsyncSignal`` may be sent to.
struct AsyncTarget: @unchecked Sendable {
    // Sendable because other threads use the address only for ev_async_send,
    // which libev documents as safe from any thread, and only under the
    // AsyncSignal's lock while the watcher is active (see AsyncSignal).
    let loop: OpaquePointer
}
