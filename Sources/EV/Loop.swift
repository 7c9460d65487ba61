import CLibev
@_spi(EventLoops) import EventCore
import Glibc

/// A libev event loop: waits for events and calls the watchers' closures.
///
/// ```swift
/// let loop = try Loop()
/// try loop.timer(after: 1) { _ in print("one second") }
/// loop.run()        // returns when no active watcher is left
/// ```
///
/// ## Lifetime
/// The program's references keep a loop alive; watchers do not. When the last
/// reference goes - or at ``close()`` - the loop runs the work other threads
/// already submitted, stops every watcher (releasing them), runs its
/// ``CleanupWatcher``s and frees the C loop. Watchers that outlive it report
/// ``Watcher/isActive`` false, and ``Watcher/stop()`` on them is harmless.
///
/// A watcher whose closure captures the loop makes a reference cycle (the
/// loop holds its active watchers); ``close()`` breaks it, as asyncio's
/// `loop.close()` and SwiftNIO's `syncShutdownGracefully()` do.
///
/// ## Threads
/// A loop and its watchers belong to the thread that runs them and are not
/// `Sendable`. Other threads reach the loop through ``executor`` or an
/// ``AsyncWatcher/sender``. Using a loop from another thread while it runs
/// traps with a message that says so (in release builds too). ``LoopThread`` runs a loop
/// on a thread of its own.
///
/// ## Time
/// libev counts in `ev_tstamp`s, `Double` seconds; the wrapper takes Swift's
/// types and converts them in one place (`LoopTime`): a `Duration` for every
/// delay, interval and timeout (negative means "at once"; beyond 10^15 s,
/// never), a `ContinuousClock.Instant` for a monotonic deadline, and a
/// ``/EventCore/WallClock/Instant`` where libev counts on the wall clock
/// (``now``, ``PeriodicWatcher``, `sleep(until:)`).
///
/// ## Process-wide effects
/// Creating the first loop changes two things for the whole process, once:
/// it installs a handler for libev's fatal system errors (`ev_set_syserr_cb`)
/// that names the failed call before it stops the program - libev's own
/// would abort without a word - and it sets `SIGPIPE` to be ignored (see
/// ``/EventCore/ProcessSettings``, which turns that off; the package's own
/// sends never need it). libev itself takes `SIGCHLD` for the default loop
/// (``defaultLoop(flags:backends:)``), and a signal another loop watches
/// (``SignalWatcher``).
public final class Loop {
    let core: LoopCore

    /// Creates a loop of its own, as distinct from the default loop.
    ///
    /// - Parameters:
    ///   - backends: the backends libev may choose from; empty (the default)
    ///     lets libev pick the best recommended one (epoll on Linux).
    ///   - flags: further options.
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/loopCreationFailed``)
    ///   if libev cannot create such a loop (for example, only unsupported backends were asked for).
    ///
    /// The corresponding C function is `ev_loop_new`.
    public init(backends: Backend = [], flags: LoopFlags = []) throws(EventLoopError) {
        LibevSystemError.installHandler()
        guard let raw = ev_loop_new(backends.rawValue | flags.rawValue) else {
            throw Self.creationFailed(backends: backends, flags: flags)
        }
        core = LoopCore(raw: raw, isDefault: false)
        core.forkChecking = flags.contains(.forkCheck)
        core.owner = self
    }

    private init(core: LoopCore) {
        self.core = core
        core.owner = self
    }

    deinit {
        core.owner = nil
        core.teardown()
    }

    /// Destroys the loop now, as dropping its last reference would: pending
    /// awaits end with ``/EventCore/EventLoopError/loopClosed``, work already submitted runs,
    /// every watcher stops (releasing its closure), cleanup watchers run and
    /// the C loop is freed. Harmless twice; any other use afterwards traps.
    ///
    /// Call it after ``run(_:)-(RunMode)`` returns, not from inside it.
    ///
    /// The corresponding C function is `ev_loop_destroy`.
    public func close() {
        core.lifecycle.checkNotRunning("close()", "break out of run() first")
        if isDefault {
            DefaultLoop.lock.withLock { _ in
                if DefaultLoop.object === self { DefaultLoop.object = nil }
            }
        }
        core.teardown()
    }

    /// The default loop: the one that handles ``ChildWatcher``s (and owns `SIGCHLD`).
    ///
    /// Every call returns the same object while the program keeps a reference
    /// to it; once all are dropped, the default loop is destroyed and the next
    /// call creates it anew. Use it from one thread.
    ///
    /// - Parameters:
    ///   - flags: options, used only when the default loop is created.
    ///   - backends: allowed backends, used only when the default loop is created.
    /// - Throws: ``/EventCore/EventLoopError``: ``/EventCore/EventLoopError/Code/loopCreationFailed``,
    ///   or ``/EventCore/EventLoopError/Code/signalOwnedByAnotherLoop`` if another loop watches `SIGCHLD`.
    ///
    /// The corresponding C function is `ev_default_loop`.
    public static func defaultLoop(flags: LoopFlags = [], backends: Backend = []) throws(EventLoopError) -> Loop {
        LibevSystemError.installHandler()
        return try DefaultLoop.lock.withLock { (_: inout Void) throws(EventLoopError) -> Loop in
            if let existing = DefaultLoop.object { return existing }
            guard let raw = ev_default_loop(backends.rawValue | flags.rawValue) else {
                throw creationFailed(backends: backends, flags: flags)
            }
            let core = LoopCore(raw: raw, isDefault: true)
            core.forkChecking = flags.contains(.forkCheck)
            do throws(EventLoopError) {
                try SignalOwnership.claim(signal: SIGCHLD, core: core)
            } catch {
                core.teardown()
                throw error
            }
            let loop = Loop(core: core)
            DefaultLoop.object = loop
            return loop
        }
    }

    /// The error for a loop libev could not create.
    private static func creationFailed(backends: Backend, flags: LoopFlags) -> EventLoopError {
        EventLoopError(.loopCreationFailed, operation: "ev_loop_new",
                       detail: "backends \(backends) (supported here: \(Backend.supported)), flags 0x\(String(flags.rawValue, radix: 16))")
    }

    /// Watchers the loop holds now (active or pending), and its pending
    /// timeout-only onces: the tests' leak check.
    package var heldWatcherCount: Int { core.heldWatchers().count + core.memory.liveStructs(OnceTimer.self).count }

    /// The `Sendable` handle other threads submit work with; see ``LoopExecutor``.
    public var executor: LoopExecutor { core.executor }

    /// Whether this is the default loop.
    ///
    /// The corresponding C function is `ev_is_default_loop`.
    public var isDefault: Bool { core.isDefault }

    /// The backend this loop waits with.
    ///
    /// The corresponding C function is `ev_backend`.
    public var backend: Backend { Backend(rawValue: ev_backend(core.checkedLoop())) }

    // MARK: running

    /// Runs the loop: waits for events and calls the watchers' callbacks.
    ///
    /// - Parameter mode: ``RunMode/untilDone`` (the default) runs until no
    ///   active watcher keeps the loop alive or ``break(_:)`` is called;
    ///   ``RunMode/once`` waits once (blocking if needed) and handles what came;
    ///   ``RunMode/noWait`` handles only what is ready now.
    /// - Returns: true if active watchers remain (the loop was broken out of,
    ///   or ran once), false if none is left.
    ///
    /// The corresponding C function is `ev_run`.
    @discardableResult
    public func run(_ mode: RunMode = .untilDone) -> Bool {
        let loop = core.checkedLoop()
        return core.lifecycle.run("run(_:)") { ev_run(loop, mode.flags) != 0 }
    }

    /// Makes ``run(_:)-(RunMode)`` return once the current iteration's callbacks have run.
    ///
    /// - Parameter how: ``BreakMode/one`` (the default) ends the innermost `run`,
    ///   ``BreakMode/all`` every nested one, ``BreakMode/cancel`` takes back an earlier break.
    ///
    /// The corresponding C function is `ev_break`.
    public func `break`(_ how: BreakMode = .one) {
        ev_break(core.checkedLoop(), how.how)
    }

    /// The loop's idea of the current time on the wall clock: the time it
    /// last woke up. Timers count from it.
    ///
    /// The corresponding C function is `ev_now`.
    public var now: WallClock.Instant { WallClock.Instant(secondsSinceEpoch: ev_now(core.checkedLoop())) }

    /// Sets ``now`` to the real current time, for code that ran long inside a callback.
    ///
    /// The corresponding C function is `ev_now_update`.
    public func updateNow() { ev_now_update(core.checkedLoop()) }

    /// The current time on the wall clock, read from the system.
    ///
    /// The corresponding C function is `ev_time`.
    public static func time() -> WallClock.Instant { WallClock.Instant(secondsSinceEpoch: ev_time()) }

    /// Stops the loop's clock, for a process about to be suspended for a long time.
    /// Pair with ``resume()``; timers then resume where they were, periodics reschedule.
    ///
    /// The corresponding C function is `ev_suspend`.
    public func suspend() { ev_suspend(core.checkedLoop()) }

    /// Restarts the loop's clock after ``suspend()``.
    ///
    /// The corresponding C function is `ev_resume`.
    public func resume() { ev_resume(core.checkedLoop()) }

    /// How many times the loop has polled for events (iterations), since it was created.
    ///
    /// The corresponding C function is `ev_iteration`.
    public var iteration: UInt32 { ev_iteration(core.checkedLoop()) }

    /// How many ``run(_:)-(RunMode)`` calls are active, nested, on this loop.
    ///
    /// The corresponding C function is `ev_depth`.
    public var depth: UInt32 { ev_depth(core.checkedLoop()) }

    /// How many watchers have events whose callbacks have not run yet.
    ///
    /// The corresponding C function is `ev_pending_count`.
    public var pendingCount: UInt32 { ev_pending_count(core.checkedLoop()) }

    /// Runs the callbacks of all pending watchers now.
    ///
    /// The corresponding C function is `ev_invoke_pending`.
    public func invokePending() {
        let loop = core.checkedLoop()
        core.lifecycle.run("invokePending()") { ev_invoke_pending(loop) }
    }

    /// Checks libev's internal data structures and aborts if they are
    /// inconsistent; a debugging aid (Debian's libev is built with the checks).
    ///
    /// The corresponding C function is `ev_verify`.
    public func verify() { ev_verify(core.checkedLoop()) }

    /// Reinitialises the loop's kernel state in a forked child, so that the
    /// loop and its watchers keep working there; ``ForkWatcher``s run before the
    /// next iteration. Call it in the child only (or create the loop with
    /// ``LoopFlags/forkCheck`` to have it done automatically).
    ///
    /// It does not throw: libev makes its new kernel state at the next
    /// iteration, where a failure is one of its fatal system errors. It is
    /// declared `throws` as the epoll loop's is, so that code written for
    /// either loop handles both alike.
    ///
    /// The corresponding C function is `ev_loop_fork`.
    public func reinitializeAfterFork() throws(EventLoopError) {
        ev_loop_fork(core.checkedLoop())
        // libev hands every descriptor to the new kernel state: check them all first.
        core.checkEveryDescriptorBeforeReify()
    }

    /// Lets the loop sleep at least `interval` before handling io events, to
    /// collect more of them per iteration (default zero: handle at once; a
    /// negative interval is zero).
    ///
    /// The corresponding C function is `ev_set_io_collect_interval`.
    public func setIOCollectInterval(_ interval: Duration) {
        ev_set_io_collect_interval(core.checkedLoop(), interval.libevInterval)
    }

    /// Lets the loop delay timers by up to `interval` to handle more of them
    /// per iteration (default zero; a negative interval is zero).
    ///
    /// The corresponding C function is `ev_set_timeout_collect_interval`.
    public func setTimeoutCollectInterval(_ interval: Duration) {
        ev_set_timeout_collect_interval(core.checkedLoop(), interval.libevInterval)
    }

    /// libev's version, such as `(4, 33)`.
    ///
    /// The corresponding C functions are `ev_version_major` and `ev_version_minor`.
    public static var libevVersion: (major: Int32, minor: Int32) { (ev_version_major(), ev_version_minor()) }
}

/// The one Swift object for libev's default loop.
private enum DefaultLoop {
    static let lock = LockedValue(())
    // Read and written only while holding `lock`; weak, so dropping the last
    // reference to the default loop destroys it.
    nonisolated(unsafe) static weak var object: Loop?
}

/// libev's fatal system errors, reported with the failed call's name.
enum LibevSystemError {
    static func installHandler() {
        _ = installed
    }

    private static let installed: Void = {
        ignoreSIGPIPE()
        ev_set_syserr_cb(Trampoline.systemError)
    }()

    /// libev calls this when a system call it cannot do without fails (its
    /// message names the call, such as `(libev) epoll_wait`). libev cannot
    /// continue after one, so this stops the program with a message that says
    /// which call failed and why, instead of libev's bare `abort()`.
    static func report(_ message: String) -> Never {
        let reason = EventLoopError.system(message)
        misuse("EV: libev cannot continue: the system call \(reason)")
    }
}
