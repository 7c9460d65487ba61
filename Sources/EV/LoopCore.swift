import CLibev
import CLinux
@_spi(EventLoops) import EventCore
import Glibc

/// What a ``Loop`` shares with its watchers: the C loop, the thread rule, the
/// list of watchers the loop keeps alive, and the descriptors its io watchers use.
///
/// Watchers hold the core strongly, never the ``Loop``: a program can drop its
/// loop while watchers are active, the loop is then destroyed, and the core
/// remembers it (`raw == nil`) so that a watcher outliving it fails clearly.
final class LoopCore {
    /// The C loop; nil once destroyed.
    private(set) var raw: OpaquePointer?
    /// Whether this is libev's default loop, the one that handles child watchers.
    let isDefault: Bool
    /// The public object, for ``Watcher/loop``. Not a strong reference, so that
    /// watchers never keep a loop alive; not `weak`, because a weak reference
    /// moves the loop's reference count to a side table and slows every retain
    /// of it. Sound because `Loop.deinit` sets it to nil before anything else,
    /// so it never names a freed (or deinitialising) object.
    unowned(unsafe) var owner: Loop? {
        didSet { executor.loop = owner }
    }
    /// The cross-thread entry point.
    let executor: LoopExecutor
    /// The loop's life: open, running on a thread, closing, closed (the
    /// executor's, one mechanism for both loops).
    /// (Kept here too, so that each check reaches it in one load.)
    let lifecycle: LoopLifecycle
    /// The executor's libev side: its wake-up, prepare and idle watchers.
    let waker: LibevWaker
    /// Whether io events are checked against the file each watcher was started on.
    /// epoll forgets a closed descriptor by itself; the other backends do not.
    let verifiesDescriptorsOnEvent: Bool
    /// Whether the backend is epoll, whose kernel registrations tell a
    /// reused number from its old file without an `fstat` (see
    /// ``claimDescriptor(_:)``); the other backends fingerprint the file.
    private let registersWithKernel: Bool

    /// The libev structs of this loop's watchers, and the loop's references to them.
    // Unchecked for exclusivity: used on the loop's thread only (checked by
    // its callers), and no access can overlap another - its methods call no
    // user code and release nothing - while the runtime's check cost an
    // access-set insert at every watcher's birth and death.
    @exclusivity(unchecked) var memory = WatcherMemory()
    /// Per descriptor number: how many started io watchers use it, and what
    /// is known of its file.
    private var descriptors = DescriptorTable<DescriptorRecord>()
    /// Scratch for the batched check before libev hands descriptors to the kernel.
    private var pollSet: [pollfd] = []
    /// Descriptors whose io watchers started, stopped or changed since the
    /// last check (see ``checkDescriptorsBeforeReify()``).
    private var changedDescriptors: [Int32] = []
    /// Whether every watched descriptor is checked before libev hands them to
    /// the kernel again: always on the poll backend (a closed descriptor in
    /// poll's set is `POLLNVAL`, on which libev aborts), once after a fork.
    private var checksEveryDescriptor: Bool
    private var checkEveryDescriptorOnce = false
    /// The process that last checked, for loops that notice a fork themselves (`EVFLAG_FORKCHECK`).
    private var checkedInProcess = getpid()
    /// This loop's epoll instance, when its backend is epoll (entered in
    /// ``/EventCore/EpollInstances``; found again after a fork).
    private(set) var backendDescriptor: Int32?

    /// Finds the loop's epoll instance and enters it in ``/EventCore/EpollInstances``.
    private func findBackendDescriptor() {
        guard let raw, ev_backend(raw) == UInt32(EVBACKEND_EPOLL) else { return }
        backendDescriptor = Trampoline.backendDescriptor(of: raw)
        if let backendDescriptor { EpollInstances.insert(backendDescriptor) }
    }

    /// Leaves ``/EventCore/EpollInstances`` (the loop is closed, or libev
    /// makes a new instance after a fork).
    private func forgetBackendDescriptor() {
        if let backendDescriptor { EpollInstances.remove(backendDescriptor) }
        backendDescriptor = nil
    }

    init(raw: OpaquePointer, isDefault: Bool) {
        self.raw = raw
        self.isDefault = isDefault
        self.verifiesDescriptorsOnEvent = Backend(rawValue: ev_backend(raw)) != .epoll
        self.registersWithKernel = Backend(rawValue: ev_backend(raw)) == .epoll
        self.checksEveryDescriptor = Backend(rawValue: ev_backend(raw)) == .poll
        waker = LibevWaker(loop: raw)
        self.executor = LoopExecutor(waker: waker, name: "EV")
        lifecycle = executor.lifecycle
        waker.start(for: executor)
        Trampoline.installPendingHook(raw, self)
        findBackendDescriptor()
    }

    /// The C loop for an operation that needs it: traps with a clear message
    /// if the loop is closed (or being released: a cleanup callback may only
    /// stop watchers), or if another thread is running it - in release
    /// builds too (see ``LoopLifecycle/checkThread(_:)``).
    @inline(__always)
    func checkedLoop(_ function: StaticString = #function) -> OpaquePointer {
        lifecycle.checkUsable(function)
        return raw.unsafelyUnwrapped // non-nil until the lifecycle is closed
    }

    /// The C loop if it still exists; for operations that are harmless no-ops
    /// on a closed loop, and allowed while it is released (stopping a watcher).
    @inline(__always)
    func loopIfAlive(_ function: StaticString = #function) -> OpaquePointer? {
        guard let raw else { return nil }
        lifecycle.checkThread(function)
        return raw
    }

    /// Traps when called from a thread other than the one running the loop.
    @inline(__always)
    func checkThread(_ function: StaticString) {
        lifecycle.checkThread(function)
    }

    // MARK: held watchers

    /// The watchers the loop holds (active or pending), as strong references (a snapshot).
    func heldWatchers() -> [Watcher] {
        memory.heldWatchers()
    }

    // MARK: descriptors

    /// Refuses a descriptor that libev would abort on once it hands it to
    /// the kernel: this loop's own epoll instance, and an epoll instance that
    /// would close a cycle of epoll instances watching each other (`ELOOP`).
    /// Only the package's loops' instances are tried (``/EventCore/EpollInstances``,
    /// no system call for any other descriptor).
    ///
    /// An epoll instance is tried for real: added to this loop's epoll with no
    /// events (so it reports nothing), and left there - libev's own `ADD`
    /// then finds it (`EEXIST`) and sets the events, as its epoll backend
    /// expects of a descriptor it registered before. Left there, the kernel
    /// sees the nesting at once, so two loops on two threads that start
    /// watching each other at the same moment cannot both pass the check
    /// before either registers.
    func checkWatchable(_ fd: Int32) throws(EventLoopError) {
        guard let raw, ev_backend(raw) == UInt32(EVBACKEND_EPOLL), EpollInstances.contains(fd) else { return }
        let descriptor = FileDescriptor(rawValue: fd)
        guard let own = backendDescriptor else { throw EventLoopError(.badDescriptor(.epollCycle), descriptor: descriptor) }
        if fd == own { throw EventLoopError(.badDescriptor(.ownBackend), descriptor: descriptor, operation: "ev_io_start") }
        var event = epoll_event()
        event.events = 0
        if epoll_ctl(own, EPOLL_CTL_ADD, fd, &event) == 0 || errno == EEXIST { return }
        if errno == ELOOP || errno == EINVAL {
            throw EventLoopError(.badDescriptor(.epollCycle), descriptor: descriptor, operation: "ev_io_start")
        }
        // Anything else (ENOSPC: max_user_watches) libev reports itself, as an error event.
    }

    /// Records that an io watcher starts on `fd` - with no system call in
    /// the common case, as C libev makes none: the descriptor goes to the
    /// kernel at the loop's next iteration, and one that is not open by then
    /// is found in one batched `poll` for all of them
    /// (``checkDescriptorsBeforeReify()``), its watchers retired.
    ///
    /// When started watchers of this loop already use the number, it may
    /// have been closed and reused for another file: those watchers must
    /// never see the new file's events. On epoll the kernel tells: libev's
    /// registration of the old file is gone when it was closed, so adding
    /// the number (with no events, as ``checkWatchable(_:)`` does) succeeds
    /// for a new file and says `EEXIST` for the same one. The other backends
    /// compare the file's fingerprint (`fstat`). The old watchers of a reused
    /// number are retired (stopped, and sent ``Events/error``).
    ///
    /// - Throws: ``/EventCore/EventLoopError`` for a negative number, an
    ///   epoll instance that cannot be watched (see ``checkWatchable(_:)``),
    ///   or - where the file is looked at - one that is not open.
    func claimDescriptor(_ fd: Int32) throws(EventLoopError) {
        guard fd >= 0 else {
            throw EventLoopError(.badDescriptor(.notOpen), descriptor: FileDescriptor(rawValue: fd), operation: "ev_io_start")
        }
        try checkWatchable(fd)
        var record = descriptors[FileDescriptor(rawValue: fd)] ?? DescriptorRecord()
        if registersWithKernel {
            if record.watchers > 0 && record.handedToKernel && isReusedNumber(fd) {
                retireWatchers(on: fd)
                record = descriptors[FileDescriptor(rawValue: fd)] ?? DescriptorRecord()
            }
        } else {
            let identity = try FileIdentity.checked(fd, operation: "ev_io_start")
            if record.watchers > 0 && record.fingerprint != identity.fingerprint {
                retireWatchers(on: fd)
                record = descriptors[FileDescriptor(rawValue: fd)] ?? DescriptorRecord()
            }
            record.fingerprint = identity.fingerprint
        }
        record.watchers += 1
        descriptors[FileDescriptor(rawValue: fd)] = record
        noteChange(fd)
    }

    /// Whether `fd`, which libev has registered with the loop's epoll, now
    /// names another file: the kernel forgot the registration when the old
    /// file was closed, so adding the number succeeds - and is taken back at
    /// once: libev, which believes its old registration is there, would
    /// find this one (`EEXIST`) with the mask it expects and leave it
    /// without events.
    private func isReusedNumber(_ fd: Int32) -> Bool {
        guard let own = backendDescriptor else { return false }
        var event = epoll_event()
        event.events = 0
        guard epoll_ctl(own, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        _ = epoll_ctl(own, EPOLL_CTL_DEL, fd, &event)
        return true
    }

    /// Whether `fd` is still the file the io watchers started on it saw
    /// (the backends other than epoll, at each event).
    func isStillClaimed(_ fd: Int32) -> Bool {
        guard let identity = try? FileIdentity.of(fd) else { return false }
        return descriptors[FileDescriptor(rawValue: fd)]?.fingerprint == identity.fingerprint
    }

    /// Records that an io watcher on `fd` stopped.
    func releaseDescriptor(_ fd: Int32) {
        descriptors.update(FileDescriptor(rawValue: fd)) { record in
            guard var current = record else { return }
            current.watchers -= 1
            // No watcher left: the next one on the number starts afresh
            // (libev leaves the old registration to the kernel, which
            // forgets it when the file closes).
            record = current.watchers > 0 ? current : nil
        }
        noteChange(fd)
    }

    /// libev will hand `fd`'s watchers to the kernel at its next `fd_reify`.
    @inline(__always)
    func noteChange(_ fd: Int32) {
        if changedDescriptors.last != fd { changedDescriptors.append(fd) }
    }

    /// Called after every batch of callbacks libev runs (its invoke-pending
    /// hook), so also at the start of each `ev_run` and in each iteration's
    /// prepare round (the executor's prepare watcher is always active): right
    /// before libev hands the descriptors whose watchers changed to the kernel
    /// (`fd_reify`), or all of them after a fork. A descriptor closed
    /// under an active watcher there would be `EBADF` to `epoll_ctl` or
    /// io_uring, or `POLLNVAL` to poll, and libev aborts on each; so its
    /// watchers are retired now (stopped, and sent ``Events/error``), as are
    /// those of a number that was closed and reused for another file.
    func checkDescriptorsBeforeReify() {
        guard raw != nil, !lifecycle.isClosingOrClosed else { return }
        if checksEveryDescriptor || checkEveryDescriptorOnce || checkedInProcess != getpidIfForkChecking() {
            if checkEveryDescriptorOnce && registersWithKernel {
                // After a fork libev has made a new epoll instance by now.
                forgetBackendDescriptor()
                findBackendDescriptor()
            }
            checkEveryDescriptorOnce = false
            checkedInProcess = getpidIfForkChecking()
            changedDescriptors.removeAll(keepingCapacity: true)
            check(descriptors.descriptors.map(\.rawValue))
            return
        }
        guard !changedDescriptors.isEmpty else { return }
        let changed = changedDescriptors
        changedDescriptors.removeAll(keepingCapacity: true)
        check(changed)
    }

    /// Retires the watchers of each of `numbers` (those with watchers) that
    /// is not open, or - on the backends that fingerprint - is another file
    /// now; on epoll, one `poll` for all of them (`POLLNVAL`: not open), and
    /// the rest are marked handed to the kernel.
    private func check(_ numbers: [Int32]) {
        guard registersWithKernel else {
            for fd in numbers where (descriptors[FileDescriptor(rawValue: fd)]?.watchers ?? 0) > 0 { verify(fd) }
            return
        }
        pollSet.removeAll(keepingCapacity: true)
        for fd in numbers where (descriptors[FileDescriptor(rawValue: fd)]?.watchers ?? 0) > 0 {
            pollSet.append(pollfd(fd: fd, events: 0, revents: 0))
        }
        guard !pollSet.isEmpty else { return }
        let ready = pollSet.withUnsafeMutableBufferPointer { set in
            while true {
                let count = poll(set.baseAddress, nfds_t(set.count), 0)
                if count >= 0 || errno != EINTR { return count }
            }
        }
        for entry in pollSet {
            if ready > 0 && entry.revents & Int16(POLLNVAL) != 0 {
                retireWatchers(on: entry.fd)
            } else {
                descriptors.update(FileDescriptor(rawValue: entry.fd)) { $0?.handedToKernel = true }
            }
        }
    }

    /// After ``Loop/reinitializeAfterFork()``: libev hands every descriptor to
    /// the kernel again, so every one is checked first.
    func checkEveryDescriptorBeforeReify() {
        checkEveryDescriptorOnce = true
    }

    /// Whether this loop notices a fork itself (`EVFLAG_FORKCHECK`); then
    /// the process id is compared at each check (a system call), else not.
    var forkChecking = false

    private func getpidIfForkChecking() -> pid_t {
        forkChecking ? getpid() : checkedInProcess
    }

    /// Retires `fd`'s watchers unless it is still open as the file they
    /// started on (the backends that fingerprint).
    private func verify(_ fd: Int32) {
        if let identity = try? FileIdentity.of(fd), identity.fingerprint == descriptors[FileDescriptor(rawValue: fd)]?.fingerprint { return }
        retireWatchers(on: fd)
    }

    private func retireWatchers(on fd: Int32) {
        for case let io as IOWatcher in heldWatchers() where io.isStarted && io.fd == fd {
            io.stop()
            io.feed(.error)
        }
    }

    // MARK: teardown

    /// Closes the C loop through the lifecycle: pending awaits end with
    /// ``/EventCore/EventLoopError/loopClosed``, the work already accepted
    /// (from other threads and tasks) runs until none is left, every watcher
    /// stops (releasing it); then cleanup watchers run and the loop is freed.
    /// Harmless twice.
    func teardown(_ function: StaticString = #function) {
        guard let raw else { return }
        executor.close(function, dropWatches: {
            for watcher in heldWatchers() where !watcher.isCleanup {
                watcher.detachForTeardown(raw)
            }
            OnceTimer.dropAll(self, stoppingOn: raw)
        }, release: {
            waker.stopWatchers()
            forgetBackendDescriptor()
            ev_loop_destroy(raw)
            for watcher in heldWatchers() {
                watcher.detachAfterDestroy()
            }
            // A once that a cleanup watcher or a released closure started meanwhile.
            OnceTimer.dropAll(self, stoppingOn: nil)
            self.raw = nil
            if isDefault { SignalOwnership.release(signal: SIGCHLD, core: self) }
        })
    }
}

/// What a loop knows of a descriptor its io watchers use: how many started
/// watchers use it, whether libev has handed it to the kernel (epoll), and
/// the fingerprint of its file (the other backends).
struct DescriptorRecord {
    var fingerprint: UInt64 = 0
    var watchers: Int32 = 0
    var handedToKernel = false
}
