import Glibc

/// A plain POSIX thread running a closure, for tests that need a real second thread.
public final class Thread: @unchecked Sendable {
    // Sendable: `thread` is written once in init, before the object is shared,
    // and read only by `join`.
    private var thread = pthread_t()

    /// Starts a thread that runs `body`.
    public init(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Waits for the thread to end.
    public func join() {
        pthread_join(thread, nil)
    }
}
