/// The descriptor was closed: while a task waited on it, or before an
/// operation of a socket that had been closed.
public struct DescriptorClosedError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The descriptor number.
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }
    public var description: String { "descriptor \(fd) is closed" }
}
