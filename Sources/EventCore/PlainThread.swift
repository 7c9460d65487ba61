import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread running a closure: the package's one helper for a
/// thread that is not an event loop's - a thread per client in the blocking
/// servers, the threads way of the poetry client, a test's second thread.
/// ``EventLoopThread`` runs a loop on one.
///
/// ```swift
/// let worker = try PlainThread { compute() }
/// worker.join()
/// ```
package final class PlainThread: Sendable {
    private let thread: pthread_t
    private let joinedOrDetached = LockedValue(false)

    /// 256 KiB: enough for a blocking server's per-client thread, and a
    /// server of thousands of them reserves 256 KiB of address space for
    /// each instead of the default 8 MiB.
    package static let smallStackSize = 256 * 1024

    /// Starts a thread that runs `body`.
    ///
    /// - Parameters:
    ///   - stackSize: the thread's stack, in bytes; nil for the system's default (8 MiB).
    ///   - cpu: a CPU to pin the thread to (benchmarks), or nil.
    ///   - body: what the thread runs; it ends when `body` returns.
    /// - Throws: ``EventLoopError`` naming `pthread_create` (`EAGAIN`: a limit of threads reached).
    package init(stackSize: Int? = nil, cpu: Int32? = nil, _ body: @escaping @Sendable () -> Void) throws(EventLoopError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if let stackSize { pthread_attr_setstacksize(&attributes, stackSize) }
        let start = ThreadStart(cpu: cpu, body)
        // Unmanaged: pthread_create passes one pointer; the new thread takes
        // the retained reference back (or this init does, if the thread failed).
        let context = Unmanaged.passRetained(start)
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { context in
            Unmanaged<ThreadStart>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context.toOpaque())
        guard result == 0 else {
            context.release()
            throw .system("pthread_create", Errno(rawValue: result))
        }
        self.thread = thread
    }

    /// Waits until the thread's body has returned. Harmless twice; not after ``detach()``.
    package func join() {
        joinedOrDetached.withLock { done in
            guard !done else { return }
            pthread_join(thread, nil)
            done = true
        }
    }

    /// Lets the thread end on its own, never joined (a server's per-client thread).
    package func detach() {
        joinedOrDetached.withLock { done in
            guard !done else { return }
            pthread_detach(thread)
            done = true
        }
    }
}

/// What a new thread runs, handed to `pthread_create` through an Unmanaged pointer.
private final class ThreadStart: Sendable {
    let cpu: Int32?
    let body: @Sendable () -> Void

    init(cpu: Int32?, _ body: @escaping @Sendable () -> Void) {
        self.cpu = cpu
        self.body = body
    }

    func run() {
        if let cpu { _ = CLinux_pin_to_cpu(cpu) }
        body()
    }
}
