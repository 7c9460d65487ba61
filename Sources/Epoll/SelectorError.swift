import CLinux
import EventCore
import Glibc

/// Why the selector refused a request.
public enum SelectorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The same file is registered already (Python raises KeyError).
    case alreadyRegistered(Int32)
    /// The descriptor is not registered.
    case notRegistered(Int32)
    /// A system call failed: the descriptor is not open, or epoll cannot watch it.
    case system(SystemCallError)

    public var description: String {
        switch self {
        case .alreadyRegistered(let fd): "descriptor \(fd) is already registered"
        case .notRegistered(let fd): "descriptor \(fd) is not registered"
        case .system(let error): error.description
        }
    }
}
