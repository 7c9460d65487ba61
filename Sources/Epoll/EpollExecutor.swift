import CLinux
import EventCore
import Glibc
import Synchronization

/// The `Sendable` face of an ``EpollLoop``: its `TaskExecutor` (with
/// ``serialExecutor`` for actors), the door for work from other threads, and
/// the async awaits - the same surface as the libev loop's executor.
///
/// Work from other threads goes on a locked queue; the submission that finds
/// it empty writes the loop's eventfd, but only if the loop may be asleep in
/// `epoll_wait` (an atomic flag the loop raises just before it polls). Work
/// from the loop's own thread takes a lock-free local queue, and runs without
/// a wake-up at the end of the iteration.
public final class EpollExecutor: TaskExecutor, LoopWorkSink, CrossThreadSubmitting, @unchecked Sendable {
    // Sendable because other threads touch only `queue`'s locked inbox, the
    // atomic `isPolling`, and `wakeFD` (written with `write(2)`, thread-safe;
    // changed only by reinitializeAfterFork in a single-threaded child). Every
    // other property is touched on the loop's thread only.

    private let queue = LoopWorkQueue()
    /// The loop as a `SerialExecutor`, for actors.
    public let serialExecutor = LoopSerialExecutor()
    private let unownedSerial: UnownedSerialExecutor
    var wakeFD: Int32
    /// Raised by the loop just before `epoll_wait`; a submission then writes the eventfd.
    let isPolling = Atomic(false)
    /// The loop, for the awaits (loop thread only); nil once destroyed.
    unowned(unsafe) var loop: EpollLoop?
    /// The pending awaits, ended with ``EpollError/loopClosed`` at teardown.
    package let waits = PendingWaitList()

    init(wakeFD: Int32) {
        self.wakeFD = wakeFD
        unownedSerial = UnownedSerialExecutor(ordinary: serialExecutor)
        serialExecutor.sink = self
    }

    /// Whether the calling thread is running this loop right now.
    public var isCurrent: Bool { CurrentLoop.isCurrent(self) }

    /// Runs `work` on the loop's thread, after the work submitted before it.
    ///
    /// - Throws: ``EpollError/loopClosed`` if the loop has been destroyed.
    public func execute(_ work: @escaping @Sendable () -> Void) throws(EpollError) {
        if isCurrent {
            _ = queue.enqueueLocal(.closure(work))
        } else if !submitRemote(.closure(work)) {
            throw .loopClosed
        }
    }

    /// ``execute(_:)``, for the loops' common protocol.
    public func submit(_ work: @escaping @Sendable () -> Void) throws {
        try execute(work)
    }

    /// Asks the loop to stop after its current iteration, from any thread.
    public func stopLoop() {
        try? execute { [unowned self] in loop?.stop() }
    }

    /// Runs a task's job on the loop's thread (the `TaskExecutor` requirement).
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueueWork(.taskJob(UnownedJob(job)))
    }

    /// Queues a job (from any thread); traps if the loop is gone.
    public func enqueueWork(_ work: LoopWork) {
        if isCurrent {
            _ = queue.enqueueLocal(work)
        } else if !submitRemote(work) {
            fatalError("Epoll: a task job was enqueued on the executor of a destroyed loop; the task could never resume.")
        }
    }

    /// The loop's ``serialExecutor`` as an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { unownedSerial }

    private func submitRemote(_ work: LoopWork) -> Bool {
        queue.submit(work) {
            // Only a loop that may be asleep needs the write; a busy one looks
            // at the queue before it polls again (see EpollLoop.iterate).
            if isPolling.load(ordering: .sequentiallyConsistent) {
                var one: UInt64 = 1
                _ = Glibc.write(wakeFD, &one, 8)
            }
        }
    }

    var hasLocalWork: Bool { queue.hasLocalWork }
    var hasSubmittedWork: Bool { queue.hasSubmittedWork }

    /// Runs one batch of submitted and one of local work (loop thread).
    func runJobs() {
        queue.runBatches(run)
    }

    func drain() { queue.drain(run) }
    func closeIfIdle() -> Bool { queue.closeIfIdle() }

    private func run(_ work: LoopWork) {
        switch work {
        case .closure(let body): body()
        case .taskJob(let job): job.runSynchronously(on: asUnownedTaskExecutor())
        case .actorJob(let job): job.runSynchronously(on: unownedSerial)
        }
    }
}
