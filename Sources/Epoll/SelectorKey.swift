import EventCore

/// A descriptor registered with a ``Selector``: Python's `selectors.SelectorKey`.
public struct SelectorKey<Data> {
    /// The descriptor.
    public let descriptor: FileDescriptor
    /// The readiness it is registered for.
    public var events: Interest
    /// What the registration carries: for the tutorial, the callback to run.
    public var data: Data
    /// The registration's generation, beside the number in `epoll_data`.
    let generation: UInt32

    /// The descriptor's number.
    @inline(__always)
    var fd: Int32 { descriptor.rawValue }
}
