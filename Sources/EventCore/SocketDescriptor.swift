import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking socket descriptor and the system calls the package makes on it.
///
/// A plain value: it does not close itself. Each method is one system call,
/// made through the package's one helper, so every failure is an
/// ``EventLoopError`` (``EventLoopError/Code/system(_:)``) that names the
/// call, the descriptor and, where it helps, the address
/// (`"connect(127.0.0.1:8000)"`). Writes use `send` with `MSG_NOSIGNAL`: a
/// peer that went away gives `EPIPE`, never `SIGPIPE`.
public struct SocketDescriptor: Hashable, Sendable {
    /// The descriptor.
    public let descriptor: FileDescriptor

    /// The descriptor's number, for the system calls.
    @inline(__always)
    package var fd: Int32 { descriptor.rawValue }

    /// Wraps an open socket descriptor.
    public init(_ descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// Wraps the descriptor numbered `fd` (the package's own calls).
    package init(_ fd: Int32) { descriptor = FileDescriptor(rawValue: fd) }

    /// A new non-blocking, close-on-exec stream socket of `family`: TCP for
    /// IPv4 and IPv6, a Unix-domain stream socket for ``SocketAddress/Family/unix``.
    ///
    /// The corresponding C function is `socket(SOCK_STREAM)`.
    public static func stream(_ family: SocketAddress.Family) throws(EventLoopError) -> SocketDescriptor {
        try make(family, SOCK_STREAM, "socket")
    }

    /// A new non-blocking, close-on-exec datagram socket of `family`: UDP
    /// for IPv4 and IPv6, a Unix-domain datagram socket for ``SocketAddress/Family/unix``.
    ///
    /// The corresponding C function is `socket(SOCK_DGRAM)`.
    public static func datagram(_ family: SocketAddress.Family) throws(EventLoopError) -> SocketDescriptor {
        try make(family, SOCK_DGRAM, "socket(SOCK_DGRAM)")
    }

    private static func make(_ family: SocketAddress.Family, _ type: __socket_type, _ call: String) throws(EventLoopError) -> SocketDescriptor {
        let fd = try systemCall(call) {
            socket(family.domain, Int32(type.rawValue) | CLinux_SOCK_NONBLOCK | CLinux_SOCK_CLOEXEC, 0)
        }
        return SocketDescriptor(fd)
    }

    /// Starts connecting to `address`: ``IOResult/wouldBlock`` means in progress
    /// (wait for writability, then check ``connectResult(to:)``).
    ///
    /// The corresponding C function is `connect`.
    public func connect(to address: SocketAddress) throws(EventLoopError) -> IOResult<Void> {
        let result = address.withSockaddr { pointer, length in Glibc.connect(fd, pointer, length) }
        if result == 0 { return .processed(()) }
        let error = Glibc.errno
        if error == EINPROGRESS || error == EAGAIN || error == EINTR { return .wouldBlock }
        throw .system("connect(\(address))", Errno(rawValue: error), descriptor: descriptor, peer: address)
    }

    /// The outcome of a non-blocking connect, once the socket is writable.
    ///
    /// - Throws: the connect's error, such as `ECONNREFUSED`, naming `address`.
    ///
    /// The corresponding C function is `getsockopt(SO_ERROR)`.
    public func connectResult(to address: SocketAddress) throws(EventLoopError) {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try systemCall("getsockopt(SO_ERROR)", descriptor: descriptor) { getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) }
        if error != 0 { throw .system("connect(\(address))", Errno(rawValue: error), descriptor: descriptor, peer: address) }
    }

    /// Binds to `address`.
    ///
    /// The corresponding C function is `bind`.
    public func bind(to address: SocketAddress) throws(EventLoopError) {
        _ = try systemCall("bind(\(address))", descriptor: descriptor) {
            address.withSockaddr { pointer, length in Glibc.bind(fd, pointer, length) }
        }
    }

    /// Starts listening.
    ///
    /// The corresponding C function is `listen`.
    public func listen(backlog: Int32) throws(EventLoopError) {
        _ = try systemCall("listen", descriptor: descriptor) { Glibc.listen(fd, backlog) }
    }

    /// Accepts a connection as a non-blocking, close-on-exec socket, or ``IOResult/wouldBlock``.
    ///
    /// `ECONNABORTED` (the peer gave up while queued) also counts as
    /// would-block: there is nothing to accept, try again when readable.
    ///
    /// The corresponding C function is `accept4`.
    public func accept() throws(EventLoopError) -> IOResult<(SocketDescriptor, SocketAddress?)> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let client = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    CLinux_accept4(fd, $0, &length, CLinux_SOCK_NONBLOCK | CLinux_SOCK_CLOEXEC)
                }
            }
            if client >= 0 {
                let peer = withUnsafeBytes(of: &storage) { SocketAddress($0.baseAddress!, length: Int(length)) }
                return .processed((SocketDescriptor(client), peer))
            }
            let error = Glibc.errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK || error == ECONNABORTED { return .wouldBlock }
            throw .system("accept", Errno(rawValue: error), descriptor: descriptor)
        }
    }

    /// Reads into `buffer`: the byte count (0 at end of stream) or ``IOResult/wouldBlock``.
    ///
    /// The corresponding C function is `read`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        try nonBlockingCall("read", descriptor: descriptor) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes from `buffer`: the byte count written (maybe fewer than asked) or ``IOResult/wouldBlock``.
    ///
    /// The corresponding C function is `send` with `MSG_NOSIGNAL`.
    public func write(_ buffer: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        try nonBlockingCall("send", descriptor: descriptor) { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes the bytes of `buffers` in order, in one system call (a
    /// gathering write): the byte count written from the front (maybe
    /// less than all) or ``IOResult/wouldBlock``. At most `IOV_MAX` (1024)
    /// buffers are taken per call.
    ///
    /// The corresponding C function is `sendmsg` with `MSG_NOSIGNAL` (a
    /// `writev` that never raises `SIGPIPE`).
    public func write(gathering buffers: [UnsafeRawBufferPointer]) throws(EventLoopError) -> IOResult<Int> {
        var vectors = buffers.prefix(1024).map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        return try vectors.withUnsafeMutableBufferPointer { (vectors) -> Result<IOResult<Int>, EventLoopError> in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = vectors.count
            return Result { () throws(EventLoopError) in
                try nonBlockingCall("sendmsg", descriptor: descriptor) { sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) }
            }
        }.get()
    }

    /// Ends the sending direction (the peer reads end-of-stream); reading still works.
    ///
    /// The corresponding C function is `shutdown(SHUT_WR)`.
    public func shutdownWrite() throws(EventLoopError) {
        _ = try systemCall("shutdown(SHUT_WR)", descriptor: descriptor) { shutdown(fd, Int32(SHUT_WR)) }
    }

    /// Closes the descriptor.
    ///
    /// The corresponding C function is `close`.
    public func close() {
        // Linux closes the descriptor even when close reports EINTR; never retry.
        _ = Glibc.close(fd)
    }

    /// Sets an integer socket option.
    ///
    /// The corresponding C function is `setsockopt`.
    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws(EventLoopError) {
        var value = value
        _ = try systemCall("setsockopt(\(label))", descriptor: descriptor) {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// `SO_REUSEADDR`: rebind a port whose old connections linger in TIME_WAIT.
    public func setReuseAddress() throws(EventLoopError) { try setOption(SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR") }
    /// `SO_REUSEPORT`: several sockets, one per loop, listen on one port.
    public func setReusePort() throws(EventLoopError) { try setOption(SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
    /// `TCP_NODELAY`: send small writes at once.
    public func setNoDelay() throws(EventLoopError) { try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY") }

    /// `TCP_NODELAY` on a TCP connection whose address is of `family`;
    /// nothing for a Unix-domain one (which has no Nagle delay). A failure
    /// is ignored: the connection works either way.
    package func setNoDelayIfTCP(_ family: SocketAddress.Family?) {
        if family != .unix { try? setNoDelay() }
    }

    /// `SO_LINGER` 0: closing sends a reset instead of a FIN (for tests of resets).
    public func setResetOnClose() throws(EventLoopError) {
        var value = linger(l_onoff: 1, l_linger: 0)
        _ = try systemCall("setsockopt(SO_LINGER)", descriptor: descriptor) {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, socklen_t(MemoryLayout<linger>.size))
        }
    }

    /// The address the socket is bound to.
    ///
    /// The corresponding C function is `getsockname`.
    public func localAddress() throws(EventLoopError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try systemCall("getsockname", descriptor: descriptor) {
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        guard let address = withUnsafeBytes(of: &storage, { SocketAddress($0.baseAddress!, length: Int(length)) }) else {
            throw .system("getsockname", .addressFamilyNotSupported, descriptor: descriptor)
        }
        return address
    }
}

extension SocketDescriptor {
    /// The longest queue of not-yet-accepted connections the kernel allows
    /// (`/proc/sys/net/core/somaxconn`; 4096 if it cannot be read), and so the
    /// default backlog, as Go's net package does. A shorter queue overflows
    /// when thousands of clients connect at once, and the kernel then falls
    /// back to SYN cookies: a client whose final ACK finds the queue full
    /// believes it is connected while the server never sees it - for a
    /// protocol where the server speaks first, the client waits forever.
    public static let maximumBacklog: Int32 = {
        let fd = Glibc.open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 4096 }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return 4096 }
        let text = String(decoding: buffer[..<count], as: UTF8.self).filter(\.isNumber)
        return Int32(text).flatMap { $0 > 0 ? $0 : nil } ?? 4096
    }()

    /// A listening stream socket on `address`: TCP (port 0 picks a free
    /// port) with `SO_REUSEADDR`, and `SO_REUSEPORT` when asked (one listener
    /// per loop); or a Unix-domain socket.
    ///
    /// The socket file a Unix listener made, to remove when the listener
    /// closes - unless another file has taken the path since (asyncio's
    /// `cleanup_socket`): nil for an address that is not a path.
    package struct BoundSocketFile: Sendable {
        let path: String
        let device: UInt64
        let inode: UInt64

        package init?(_ address: SocketAddress) {
            guard let path = address.unixFilePath else { return nil }
            var status = stat()
            guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { return nil }
            self.path = path
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
        }

        /// Removes the file if it is still the one bound.
        package func remove() {
            var status = stat()
            guard stat(path, &status) == 0, UInt64(status.st_dev) == device, UInt64(status.st_ino) == inode else { return }
            unlink(path)
        }
    }

    /// A Unix socket file left by a listener that is gone (a stale socket:
    /// nothing accepts on it) makes `bind` fail with `EADDRINUSE`; the error
    /// names the path and says it is stale. With `replacingStaleSocket` the
    /// stale file is removed and the bind tried again, as many servers do
    /// at start; a path a live listener holds is never taken over, and a
    /// file that is not a socket is never removed.
    ///
    /// - Parameters:
    ///   - address: where to listen.
    ///   - backlog: the queue of connections not yet accepted; by default
    ///     the system's maximum (``maximumBacklog``).
    ///   - reusePort: sets `SO_REUSEPORT`, so that several listeners (one
    ///     per loop) share the address and the kernel spreads connections.
    ///   - replacingStaleSocket: for a Unix path, remove a stale socket file first.
    public static func listening(on address: SocketAddress, backlog: Int32 = maximumBacklog, reusePort: Bool = false,
                                 replacingStaleSocket: Bool = false) throws(EventLoopError) -> SocketDescriptor {
        let socket = try stream(address.family)
        do {
            if address.family != .unix {
                try socket.setReuseAddress()
                if reusePort { try socket.setReusePort() }
            }
            do {
                try socket.bind(to: address)
            } catch where error.code == .system(.addressInUse) && address.unixFilePath != nil {
                try socket.bindOverStaleSocket(address, replacing: replacingStaleSocket, error)
            }
            try socket.listen(backlog: backlog)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// `bind` said `EADDRINUSE` for the Unix path of `address`: if nothing
    /// accepts there (a connect is refused) and the file is a socket, it is
    /// stale - removed and bound again when `replacing`, else named in the error.
    private func bindOverStaleSocket(_ address: SocketAddress, replacing: Bool, _ error: EventLoopError) throws(EventLoopError) {
        guard let path = address.unixFilePath else { throw error }
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else {
            throw EventLoopError(.system(.addressInUse), descriptor: descriptor, operation: "bind(\(address))", detail: "\(path) exists and is not a socket")
        }
        let probe = try SocketDescriptor.stream(.unix)
        defer { probe.close() }
        let live: Bool
        do {
            // A connect to a Unix socket completes or fails at once.
            _ = try probe.connect(to: address)
            live = true
        } catch {
            live = error.code != .system(.connectionRefused)
        }
        guard !live else {
            throw EventLoopError(.system(.addressInUse), descriptor: descriptor, operation: "bind(\(address))", detail: "a listener is accepting on \(path)")
        }
        guard replacing else {
            throw EventLoopError(.system(.addressInUse), descriptor: descriptor, operation: "bind(\(address))", detail: "\(path) is a stale socket (nothing accepts on it): remove it, or listen with replacingStaleSocket: true")
        }
        _ = unlink(path)
        try bind(to: address)
    }

    /// `count` listening sockets on one port (`SO_REUSEPORT` when there are
    /// several; the kernel spreads the connections): the first binds
    /// `address` (port 0 picks a free port), the others its port.
    ///
    /// - Throws: ``EventLoopError``; the sockets already made are closed.
    public static func listeningGroup(of count: Int, on address: SocketAddress,
                                      backlog: Int32 = maximumBacklog) throws(EventLoopError) -> [SocketDescriptor] {
        let reusePort = count > 1
        var sockets = [try listening(on: address, backlog: backlog, reusePort: reusePort)]
        do throws(EventLoopError) {
            var bound = address
            bound.port = try sockets[0].localAddress().port
            while sockets.count < count {
                sockets.append(try listening(on: bound, backlog: backlog, reusePort: true))
            }
        } catch {
            sockets.forEach { $0.close() }
            throw error
        }
        return sockets
    }
}
