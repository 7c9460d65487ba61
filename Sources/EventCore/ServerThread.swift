#if canImport(Glibc)
import Glibc
#endif

/// A plain thread for blocking servers (a thread per client), with a small stack: a server of
/// thousands of threads should not reserve 8 MiB of address space for each.
public final class ServerThread: @unchecked Sendable {
    // Sendable: `thread` is written once in init, before the object is shared.
    private var thread = pthread_t()
    public static let stackSize = 256 * 1024

    /// Starts a thread running `body`.
    ///
    /// - Throws: ``EventCore/SystemCallError`` if the thread cannot be created (`EAGAIN`: a limit reached).
    public init(_ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            public init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, Self.stackSize)
        let context = Unmanaged.passRetained(Box(body))
        let result = pthread_create(&thread, &attributes, { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context.toOpaque())
        if result != 0 {
            context.release()
            throw SystemCallError(call: "pthread_create", errno: .init(rawValue: result))
        }
    }

    public func join() { pthread_join(thread, nil) }

    public func detach() { pthread_detach(thread) }
}
