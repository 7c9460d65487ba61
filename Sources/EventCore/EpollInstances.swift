/// The epoll instances of the package's loops (libev's on the epoll
/// backend, the epoll loop's own), by descriptor number, process-wide.
///
/// Watching an epoll instance from an epoll instance is legal, but epoll
/// refuses its own (`EINVAL`) and a cycle of instances watching each other
/// (`ELOOP`) - on which libev aborts. A loop asks here, without a system
/// call, whether a descriptor it is asked to watch is one of them, and only
/// then tries it on the kernel first. (An epoll instance a C library made
/// is not here: watching one is as safe as libev makes it.)
package enum EpollInstances {
    // A pthread lock (`LockedValue`), not `Mutex`: ThreadSanitizer cannot see
    // `Mutex`'s futex and reported each use from two loops as a race.
    private static let numbers = LockedValue<Set<Int32>>([])

    /// `fd` is now a loop's epoll instance.
    package static func insert(_ fd: Int32) {
        numbers.withLock { _ = $0.insert(fd) }
    }

    /// `fd` is no longer a loop's epoll instance (the loop closes it next).
    package static func remove(_ fd: Int32) {
        numbers.withLock { _ = $0.remove(fd) }
    }

    /// Whether `fd` is a loop's epoll instance.
    package static func contains(_ fd: Int32) -> Bool {
        numbers.withLock { $0.contains(fd) }
    }
}
