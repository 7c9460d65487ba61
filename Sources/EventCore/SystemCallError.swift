#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A failed system call: which call failed, and the `errno` it set.
///
/// Every system call of the package goes through `systemCall(_:_:)` or
/// `nonBlockingCall(_:_:)`, so every failure reaches the caller as this one
/// type, named after the call (`"connect(127.0.0.1:8000)"`, `"fstat(7)"`).
/// The errno is swift-system's `Errno`, whose cases carry readable names
/// (`.connectionRefused`) and whose description is `strerror`'s text.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call that failed, with the argument that identifies it where that helps.
    public let call: String
    /// The error number the call set.
    public let errno: Errno

    /// Creates an error for `call` failing with `errno`.
    public init(call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// Creates an error for `call` from the thread's current `errno`.
    public init(call: String) {
        self.init(call: call, errno: Errno(rawValue: Glibc.errno))
    }

    /// `"connect(127.0.0.1:8000) failed: Connection refused (ECONNREFUSED)"`.
    public var description: String {
        "\(call) failed: \(errno) (\(errno.symbolicName))"
    }
}

extension Errno {
    /// The C name of the error (`ECONNREFUSED`), or `errno N` for a value this table lacks.
    public var symbolicName: String {
        switch self {
        case .permissionDenied: "EACCES"
        case .notPermitted: "EPERM"
        case .noSuchFileOrDirectory: "ENOENT"
        case .interrupted: "EINTR"
        case .ioError: "EIO"
        case .badFileDescriptor: "EBADF"
        case .resourceTemporarilyUnavailable: "EAGAIN"
        case .noMemory: "ENOMEM"
        case .badAddress: "EFAULT"
        case .fileExists: "EEXIST"
        case .invalidArgument: "EINVAL"
        case .tooManyOpenFiles: "EMFILE"
        case .tooManyOpenFilesInSystem: "ENFILE"
        case .brokenPipe: "EPIPE"
        case .addressInUse: "EADDRINUSE"
        case .addressNotAvailable: "EADDRNOTAVAIL"
        case .networkUnreachable: "ENETUNREACH"
        case .connectionAbort: "ECONNABORTED"
        case .connectionReset: "ECONNRESET"
        case .noBufferSpace: "ENOBUFS"
        case .socketIsConnected: "EISCONN"
        case .socketNotConnected: "ENOTCONN"
        case .timedOut: "ETIMEDOUT"
        case .connectionRefused: "ECONNREFUSED"
        case .noRouteToHost: "EHOSTUNREACH"
        case .nowInProgress: "EINPROGRESS"
        case .alreadyInProcess: "EALREADY"
        case .notSocket: "ENOTSOCK"
        case .noChildProcess: "ECHILD"
        case .noSuchProcess: "ESRCH"
        case .noSpace: "ENOSPC"
        case .readOnlyFileSystem: "EROFS"
        case .isDirectory: "EISDIR"
        case .notDirectory: "ENOTDIR"
        case .fileTooLarge: "EFBIG"
        case .diskQuotaExceeded: "EDQUOT"
        case .messageTooLong: "EMSGSIZE"
        case .protocolNotSupported: "EPROTONOSUPPORT"
        case .addressFamilyNotSupported: "EAFNOSUPPORT"
        case .fileNameTooLong: "ENAMETOOLONG"
        case .tooManySymbolicLinkLevels: "ELOOP"
        default: "errno \(rawValue)"
        }
    }
}

/// Runs a system call that returns -1 on failure, retrying on `EINTR`.
///
/// - Parameters:
///   - call: the name the error carries if the call fails.
///   - body: the call itself; it alone touches libc.
/// - Returns: what the call returned.
/// - Throws: ``SystemCallError`` naming `call` with the errno it set.
@inlinable
package func systemCall<Result: FixedWidthInteger>(
    _ call: @autoclosure () -> String, _ body: () -> Result
) throws(SystemCallError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Glibc.errno
        if error == EINTR { continue }
        throw SystemCallError(call: call(), errno: Errno(rawValue: error))
    }
}

/// Runs a system call on a non-blocking descriptor, retrying on `EINTR` and
/// turning `EAGAIN` / `EWOULDBLOCK` into ``IOResult/wouldBlock``.
///
/// - Parameters:
///   - call: the name the error carries if the call fails.
///   - body: the call itself; it alone touches libc.
/// - Returns: ``IOResult/processed(_:)`` with the call's result, or ``IOResult/wouldBlock``.
/// - Throws: ``SystemCallError`` naming `call` for every other errno.
@inlinable
package func nonBlockingCall<Result: FixedWidthInteger>(
    _ call: @autoclosure () -> String, _ body: () -> Result
) throws(SystemCallError) -> IOResult<Result> {
    while true {
        let result = body()
        if result != -1 { return .processed(result) }
        let error = Glibc.errno
        if error == EINTR { continue }
        if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
        throw SystemCallError(call: call(), errno: Errno(rawValue: error))
    }
}

/// Sets `SIGPIPE` to be ignored, once per process, so that writing to a peer
/// that has gone away returns `EPIPE` instead of killing the program (exit 141).
///
/// Every loop of the package calls this when it is created; call it yourself
/// before writing to sockets without a loop. The package's sends also pass
/// `MSG_NOSIGNAL`, so a program that restores `SIGPIPE` is still safe there.
public func ignoreSIGPIPE() {
    _ = sigpipeIgnored
}

private let sigpipeIgnored: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Writes `text` to standard error, unbuffered (for diagnostics that must
/// not wait in a buffer, and without touching C's global `stderr`).
public func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 {
                if n == -1 && Glibc.errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}

/// One past the highest signal number: glibc's `NSIG` (65), which Swift
/// cannot import. Both loops refuse signals outside 1..<signalNumberLimit.
package let signalNumberLimit: Int32 = 65
