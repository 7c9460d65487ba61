import CLinux
import EventCore
import Glibc

/// A descriptor registered with a ``Selector``: Python's `selectors.SelectorKey`.
public struct SelectorKey<Data> {
    /// The descriptor.
    public let fd: Int32
    /// The readiness it is registered for.
    public var events: Interest
    /// What the registration carries: for the tutorial, the callback to run.
    public var data: Data
}
