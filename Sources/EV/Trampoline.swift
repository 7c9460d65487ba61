import CLibev

// Every Unmanaged and @convention(c) step of the wrapper lives in this file.

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

    /// A periodic watcher's reschedule callback. libev calls it while the
    /// watcher is active (so held, as above) to ask for the next time.
    static let reschedule: CLibev_reschedule = { cWatcher, now in
        let watcher = Unmanaged<PeriodicWatcher>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue()
        return watcher.nextTime(now: now)
    }

    /// Stores an unretained pointer to the executor in its wake-up watcher.
    ///
    /// Sound because the core owns the executor for the loop's whole life and
    /// stops the wake-up watcher before it destroys the loop, so libev can only
    /// call `wakeup` while the executor exists.
    static func attach(_ executor: LoopExecutor, to cAsync: UnsafeMutablePointer<ev_async>) {
        CLibev_set_data(cAsync, Unmanaged.passUnretained(executor).toOpaque())
    }

    /// The executor's wake-up callback: runs the work other threads submitted.
    static let wakeup: CLibev_callback = { _, cWatcher, _ in
        let executor = Unmanaged<LoopExecutor>.fromOpaque(CLibev_data(cWatcher!)!).takeUnretainedValue()
        executor.runSubmittedWork()
    }

    /// libev's handler for a failed system call inside the loop (`ev_set_syserr_cb`).
    static let systemError: @convention(c) (UnsafePointer<CChar>?) -> Void = { message in
        LibevSystemError.report(message.map { String(cString: $0) } ?? "(libev) unknown call")
    }
}
