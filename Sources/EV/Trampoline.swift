import CLibev
import EventCore

// Every @convention(c) callback libev calls lives in this file, with the
// unretained pointers they find their Swift objects by. The other Unmanaged
// uses each say why they are sound where they are: the loop's references to
// its held watchers (Watcher.hold, WatcherMemory), the executor's pointer in
// its own watchers' data (LoopExecutor), the running loop's thread-specific
// mark (EventCore's CurrentLoop).

/// The C functions libev calls back, and the pointer each finds its Swift object by.
enum Trampoline {
    /// Stores an unretained pointer to `watcher` in its struct's `data` field.
    ///
    /// Sound because libev reads `data` only through the callbacks below, and it
    /// calls them only for a watcher that is active or pending, or from
    /// `Watcher.invoke`, whose caller holds the watcher. An active or pending
    /// watcher is held by its loop's list (`Watcher.hold`), so the object the
    /// pointer names is alive whenever a callback runs.
    static func attach(_ watcher: Watcher) {
        CLibev_set_data(watcher.cWatcher, Unmanaged.passUnretained(watcher).toOpaque())
    }

    /// The one C callback of every watcher type: finds the Swift watcher and dispatches.
    ///
    /// No retain for the call: the loop's own reference keeps the watcher alive
    /// while it dispatches (a callback that stops its own watcher does not
    /// release it - `Watcher.dispatch` defers that), or the caller's does, for
    /// `Watcher.invoke`. `dispatch` hands back the loop's reference when the
    /// watcher has become idle, and it is released here, after the watcher's
    /// code has returned.
    static let callback: CLibev_callback = { _, cWatcher, revents in
        let watcher = Unmanaged<Watcher>.fromOpaque(CLibev_data(cWatcher!)!)
        let finished = watcher._withUnsafeGuaranteedRef { $0.dispatch(revents) }
        finished?.release()
    }

    /// The C callback of a ``Loop/once(fd:events:timeout:_:)`` with only a
    /// timeout (a ``OnceTimer``, no watcher object): finds the loop's core in
    /// the loop's user data (see ``installPendingHook(_:_:)``), frees the
    /// slot, then runs the callback.
    ///
    /// Sound because libev calls it only for a started once, whose slot is
    /// live until this call frees it, and only while the core, which owns
    /// the C loop, exists.
    static let onceTimerFired: CLibev_callback = { loop, cWatcher, revents in
        let slot = UnsafeMutableRawPointer(cWatcher!).assumingMemoryBound(to: OnceTimer.self)
        let (callback, started) = Unmanaged<LoopCore>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef {
            (OnceTimer.finish(slot, $0), $0.executor.monitor?.beginMeasuring() ?? 0)
        }
        callback(Events(rawValue: revents))
        if started != 0 {
            Unmanaged<LoopCore>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef {
                $0.executor.monitor?.endMeasuring(started, "a once timer (Loop.once)")
            }
        }
    }

    /// A periodic watcher's reschedule callback. libev calls it while the
    /// watcher is active (so held, as above) to ask for the next time.
    static let reschedule: CLibev_reschedule = { cWatcher, now in
        let watcher = Unmanaged<PeriodicWatcher>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue()
        return watcher.nextTime(now: now)
    }

    // The executor's own watchers store an unretained pointer to its libev
    // side in `data` (LibevWaker.start). Sound because the core owns the
    // executor, and the executor its waker, for
    // the loop's whole life and stops these watchers before it destroys the
    // loop, so libev can only call them while the executor exists.

    /// The executor's wake-up: runs the work other threads submitted and the loop's thread queued.
    static let executorWakeup: CLibev_callback = { _, cWatcher, _ in
        Unmanaged<LibevWaker>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue().runSubmittedWork()
    }

    /// Just before the loop blocks: queued work must run first.
    static let executorPrepare: CLibev_callback = { _, cWatcher, _ in
        Unmanaged<LibevWaker>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue().beforeBlocking()
    }

    /// Keeps one poll from blocking while work is queued.
    static let executorIdle: CLibev_callback = { _, cWatcher, _ in
        Unmanaged<LibevWaker>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue().idleOnce()
    }

    /// Makes `core` the loop's user data and runs its descriptor check after
    /// every batch of callbacks (`ev_set_invoke_pending_cb`).
    ///
    /// Sound because the core owns the C loop and destroys it in `teardown`,
    /// so libev calls the hook only while the core exists.
    static func installPendingHook(_ loop: OpaquePointer, _ core: LoopCore) {
        ev_set_userdata(loop, Unmanaged.passUnretained(core).toOpaque())
        ev_set_invoke_pending_cb(loop, invokePending)
    }

    /// Traps, with a message, if C code lent the loop replaced its user
    /// data: the hook above and ``onceTimerFired`` would find no core.
    static func checkUserData(_ loop: OpaquePointer, _ core: LoopCore) {
        guard ev_userdata(loop) != Unmanaged.passUnretained(core).toOpaque() else { return }
        fatalError("""
            EV: the loop's user data was replaced (ev_set_userdata) by code given the loop with withUnsafeEVLoop; \
            the wrapper's callbacks find the loop through it. Keep a C library's state elsewhere.
            """)
    }

    /// Installs ``loopReleased`` and ``loopAcquired`` around libev's wait in
    /// the kernel (`ev_set_loop_release_cb`): the monitor's blocked time.
    /// Sound as the pending hook is: the core is the loop's user data.
    static func installMonitorHooks(_ loop: OpaquePointer) {
        ev_set_loop_release_cb(loop, loopReleased, loopAcquired)
    }

    /// libev is about to wait in the kernel.
    static let loopReleased: @convention(c) (OpaquePointer?) -> Void = { loop in
        Unmanaged<LoopCore>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef { $0.executor.monitor?.willBlock() }
    }

    /// libev's wait in the kernel is over.
    static let loopAcquired: @convention(c) (OpaquePointer?) -> Void = { loop in
        Unmanaged<LoopCore>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef { $0.executor.monitor?.didWake() }
    }

    /// libev's `EV_INVOKE_PENDING`: the callbacks, then the core's descriptor check.
    static let invokePending: @convention(c) (OpaquePointer?) -> Void = { loop in
        ev_invoke_pending(loop)
        Unmanaged<LoopCore>.fromOpaque(ev_userdata(loop)!).takeUnretainedValue().checkDescriptorsBeforeReify()
    }

    /// The descriptor of `loop`'s epoll instance, which libev does not export:
    /// an embed watcher started on a throwaway select loop records it in its
    /// (public) `io` field - `ev_embed_start` watches the embedded loop's
    /// backend descriptor - and is stopped before that loop is ever run or
    /// destroyed. nil if libev cannot embed the loop.
    static func backendDescriptor(of loop: OpaquePointer) -> Int32? {
        guard ev_embeddable_backends() & ev_backend(loop) != 0,
              let host = ev_loop_new(UInt32(EVBACKEND_SELECT)) else { return nil }
        defer { ev_loop_destroy(host) }
        let embed = UnsafeMutablePointer<ev_embed>.allocate(capacity: 1)
        defer { embed.deallocate() }
        embed.initialize(to: ev_embed())
        CLibev_embed_init(embed, callback, loop)
        ev_embed_start(host, embed)
        let fd = embed.pointee.io.fd
        ev_embed_stop(host, embed)
        return fd >= 0 ? fd : nil
    }

    /// libev's handler for a failed system call inside the loop (`ev_set_syserr_cb`).
    static let systemError: @convention(c) (UnsafePointer<CChar>?) -> Void = { message in
        LibevSystemError.report(message.map { String(cString: $0) } ?? "(libev) unknown call")
    }
}
