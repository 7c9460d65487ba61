#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import SystemPackage

extension Errno {
    /// The C name of the error (`ECONNREFUSED`), or `errno N` for a value
    /// this table lacks: the package's error messages show both names.
    package var symbolicName: String {
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

/// Runs a system call that returns -1 on failure, retrying on `EINTR`:
/// every system call of the package goes through here or
/// ``nonBlockingCall(_:descriptor:_:)``, so every failure reaches the caller as
/// one ``EventLoopError`` (``EventLoopError/Code/system(_:)``) that names the call.
///
/// - Parameters:
///   - call: the name the error carries if the call fails.
///   - descriptor: the descriptor the call is about, for the error.
///   - body: the call itself; it alone touches libc.
/// - Returns: what the call returned.
/// - Throws: ``EventLoopError`` naming `call` with the errno it set.
@inlinable
package func systemCall<Result: FixedWidthInteger>(
    _ call: @autoclosure () -> String, descriptor: FileDescriptor? = nil, _ body: () -> Result
) throws(EventLoopError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Glibc.errno
        if error == EINTR { continue }
        throw EventLoopError.system(call(), Errno(rawValue: error), descriptor: descriptor)
    }
}

/// Runs a system call on a non-blocking descriptor, retrying on `EINTR` and
/// turning `EAGAIN` / `EWOULDBLOCK` into ``IOResult/wouldBlock``.
///
/// - Parameters:
///   - call: the name the error carries if the call fails.
///   - descriptor: the descriptor the call is about, for the error.
///   - body: the call itself; it alone touches libc.
/// - Returns: ``IOResult/processed(_:)`` with the call's result, or ``IOResult/wouldBlock``.
/// - Throws: ``EventLoopError`` naming `call` for every other errno.
@inlinable
package func nonBlockingCall<Result: FixedWidthInteger>(
    _ call: @autoclosure () -> String, descriptor: FileDescriptor? = nil, _ body: () -> Result
) throws(EventLoopError) -> IOResult<Result> {
    while true {
        let result = body()
        if result != -1 { return .processed(result) }
        let error = Glibc.errno
        if error == EINTR { continue }
        if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
        throw EventLoopError.system(call(), Errno(rawValue: error), descriptor: descriptor)
    }
}

/// The package's one process-wide change, and how to opt out of it.
///
/// Writing to a peer that has gone away raises `SIGPIPE`, whose default
/// action ends the program (exit 141). The package's own sockets never
/// raise it - every send passes `MSG_NOSIGNAL` (Linux has no `SO_NOSIGPIPE`)
/// - but a program's own `write` to a socket or pipe would, and so would
/// C libraries on the loop; so the first loop the package makes sets
/// `SIGPIPE` to be ignored, as SwiftNIO does on Linux. Child processes
/// inherit an ignored signal: a program that spawns children (shell
/// pipelines, `head`) may want the default back.
///
/// Set ``ignoresSIGPIPE`` to false before the first loop is made to leave
/// `SIGPIPE` as it is; the package works the same (its sends use
/// `MSG_NOSIGNAL`).
public enum ProcessSettings {
    private static let ignoring = Atomic(true)

    /// Whether the package sets `SIGPIPE` to be ignored when it makes its
    /// first loop (true unless set to false before then).
    public static var ignoresSIGPIPE: Bool {
        get { ignoring.load(ordering: .acquiring) }
        set { ignoring.store(newValue, ordering: .releasing) }
    }
}

/// Sets `SIGPIPE` to be ignored, once per process, unless
/// ``ProcessSettings/ignoresSIGPIPE`` says not to: every loop calls it when
/// it is made.
package func ignoreSIGPIPE() {
    guard ProcessSettings.ignoresSIGPIPE else { return }
    _ = sigpipeIgnored
}

private let sigpipeIgnored: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Writes `text` to standard error, unbuffered (for diagnostics that must
/// not wait in a buffer, and without touching C's global `stderr`).
package func writeStandardError(_ text: String) {
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

extension EventLoopError {
    /// Nil when `signal` can be watched (1..<``signalNumberLimit``, not
    /// `SIGKILL` or `SIGSTOP`, which cannot be caught); else the error both
    /// loops throw for it, naming the number.
    package static func unwatchable(signal: Int32, operation: String) -> EventLoopError? {
        if signal > 0, signal < signalNumberLimit, signal != SIGKILL, signal != SIGSTOP { return nil }
        return EventLoopError(.invalidArgument, operation: operation,
                              detail: "signal \(signal) cannot be watched: it must be in 1..<\(signalNumberLimit) and not SIGKILL or SIGSTOP")
    }
}
