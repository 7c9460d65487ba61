/// The descriptor was closed while a task waited on it.
public struct DescriptorClosedError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The descriptor number.
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }
    public var description: String { "descriptor \(fd) was closed while a task waited for it" }
}
