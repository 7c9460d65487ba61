import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One datagram: its bytes, the address it came from (or goes to), and its
/// size on the wire, which is more than `bytes.count` when the buffer it was
/// received into was too small (the rest is lost: UDP and Unix datagram
/// sockets deliver whole datagrams or cut them).
public struct Datagram: Sendable, Hashable {
    /// The bytes (all of them, unless ``isTruncated``).
    public var bytes: [UInt8]
    /// Where it came from, for a received datagram; where it goes, for one
    /// to send (nil: the connected peer).
    public var address: SocketAddress?
    /// Its size as sent: more than `bytes.count` when it was truncated.
    public var size: Int

    /// Whether the receiving buffer was too small and the end was lost.
    public var isTruncated: Bool { size > bytes.count }

    /// A datagram of `bytes` for `address` (nil: the connected peer).
    public init(_ bytes: [UInt8], to address: SocketAddress? = nil) {
        self.bytes = bytes
        self.address = address
        size = bytes.count
    }

    /// A received datagram.
    package init(bytes: [UInt8], from address: SocketAddress?, size: Int) {
        self.bytes = bytes
        self.address = address
        self.size = size
    }
}

extension SocketDescriptor {
    /// Sends one datagram of `buffer` to `address`, or to the connected
    /// peer when nil: the bytes sent (all of them) or ``IOResult/wouldBlock``.
    ///
    /// - Throws: ``EventLoopError``: `EMSGSIZE` for a datagram larger than the
    ///   protocol allows, `ECONNREFUSED` when an earlier datagram to a
    ///   connected peer found no one listening, ...
    ///
    /// The corresponding C function is `sendto` with `MSG_NOSIGNAL`.
    public func send(_ buffer: UnsafeRawBufferPointer, to address: SocketAddress?) throws(EventLoopError) -> IOResult<Int> {
        guard let address else {
            return try nonBlockingCall("send", descriptor: descriptor) { Glibc.send(fd, buffer.baseAddress, buffer.count, CLinux_MSG_NOSIGNAL) }
        }
        return try nonBlockingCall("sendto(\(address))", descriptor: descriptor) {
            address.withSockaddr { pointer, length in sendto(fd, buffer.baseAddress, buffer.count, CLinux_MSG_NOSIGNAL, pointer, length) }
        }
    }

    /// Receives one datagram into `buffer`: how many bytes were stored, the
    /// datagram's whole size (more when it did not fit: truncated) and the
    /// sender; or ``IOResult/wouldBlock``.
    ///
    /// The corresponding C function is `recvmsg` with `MSG_TRUNC`.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError)
        -> IOResult<(count: Int, size: Int, sender: SocketAddress?)> {
        var storage = sockaddr_storage()
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let size = try withUnsafeMutablePointer(to: &storage) { (address) throws(EventLoopError) -> IOResult<Int> in
            try withUnsafeMutablePointer(to: &vector) { (vectorPointer) throws(EventLoopError) -> IOResult<Int> in
                var message = msghdr()
                message.msg_name = UnsafeMutableRawPointer(address)
                message.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                return try nonBlockingCall("recvmsg", descriptor: descriptor) { recvmsg(fd, &message, CLinux_MSG_TRUNC) }
            }
        }
        guard case .processed(let whole) = size else { return .wouldBlock }
        let sender = withUnsafeBytes(of: &storage) { SocketAddress($0.baseAddress!, length: $0.count) }
        return .processed((min(whole, buffer.count), whole, sender))
    }

    /// Receives up to `count` datagrams of at most `maximumSize` bytes each
    /// in one system call (the ones waiting now; at least one), or
    /// ``IOResult/wouldBlock``. A datagram larger than `maximumSize` comes
    /// back truncated (``Datagram/isTruncated``).
    ///
    /// The corresponding C function is `recvmmsg` with `MSG_TRUNC`.
    public func receiveBatch(count: Int, maximumSize: Int) throws(EventLoopError) -> IOResult<[Datagram]> {
        let count = max(count, 1), maximumSize = max(maximumSize, 1)
        var buffer = [UInt8](repeating: 0, count: count * maximumSize)
        var names = [sockaddr_storage](repeating: sockaddr_storage(), count: count)
        var vectors = [iovec](repeating: iovec(), count: count)
        var messages = [CLinux_mmsghdr](repeating: CLinux_mmsghdr(), count: count)
        // The buffers' closures rethrow untyped errors: the call's outcome comes out as a Result.
        let received = try buffer.withUnsafeMutableBytes { bytes in
            names.withUnsafeMutableBufferPointer { names in
                vectors.withUnsafeMutableBufferPointer { vectors in
                    for index in 0..<count {
                        vectors[index] = iovec(iov_base: bytes.baseAddress! + index * maximumSize, iov_len: maximumSize)
                        messages[index].msg_hdr.msg_name = UnsafeMutableRawPointer(names.baseAddress! + index)
                        messages[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        messages[index].msg_hdr.msg_iov = vectors.baseAddress! + index
                        messages[index].msg_hdr.msg_iovlen = 1
                    }
                    return Result { () throws(EventLoopError) in
                        try nonBlockingCall("recvmmsg", descriptor: descriptor) {
                            CLinux_recvmmsg(fd, &messages, UInt32(count), CLinux_MSG_TRUNC)
                        }
                    }
                }
            }
        }.get()
        guard case .processed(let received) = received else { return .wouldBlock }
        var datagrams: [Datagram] = []
        datagrams.reserveCapacity(Int(received))
        for index in 0..<Int(received) {
            // With MSG_TRUNC, msg_len is the datagram's whole size.
            let size = Int(messages[index].msg_len)
            let start = index * maximumSize
            let sender = withUnsafeBytes(of: &names[index]) { SocketAddress($0.baseAddress!, length: Int(messages[index].msg_hdr.msg_namelen)) }
            datagrams.append(Datagram(bytes: Array(buffer[start..<start + min(size, maximumSize)]), from: sender, size: size))
        }
        return .processed(datagrams)
    }

    /// Sends `datagrams` in one system call, each to its address (nil: the
    /// connected peer): how many were sent from the front (the kernel may
    /// take fewer), or ``IOResult/wouldBlock`` if none could be.
    ///
    /// The corresponding C function is `sendmmsg` with `MSG_NOSIGNAL`.
    public func sendBatch(_ datagrams: [Datagram]) throws(EventLoopError) -> IOResult<Int> {
        guard !datagrams.isEmpty else { return .processed(0) }
        // Each datagram's bytes and address, laid out where the kernel reads them.
        var names = [sockaddr_storage](repeating: sockaddr_storage(), count: datagrams.count)
        var nameLengths = [socklen_t](repeating: 0, count: datagrams.count)
        for (index, datagram) in datagrams.enumerated() {
            guard let address = datagram.address else { continue }
            address.withSockaddr { pointer, length in
                withUnsafeMutableBytes(of: &names[index]) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Int(length))) }
                nameLengths[index] = length
            }
        }
        let flat = datagrams.flatMap(\.bytes)
        var vectors = [iovec](repeating: iovec(), count: datagrams.count)
        var messages = [CLinux_mmsghdr](repeating: CLinux_mmsghdr(), count: datagrams.count)
        let sent = try flat.withUnsafeBytes { bytes in
            names.withUnsafeMutableBufferPointer { names in
                vectors.withUnsafeMutableBufferPointer { vectors in
                    var offset = 0
                    for (index, datagram) in datagrams.enumerated() {
                        vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress.map { $0 + offset }),
                                               iov_len: datagram.bytes.count)
                        offset += datagram.bytes.count
                        if nameLengths[index] > 0 {
                            messages[index].msg_hdr.msg_name = UnsafeMutableRawPointer(names.baseAddress! + index)
                            messages[index].msg_hdr.msg_namelen = nameLengths[index]
                        }
                        messages[index].msg_hdr.msg_iov = vectors.baseAddress! + index
                        messages[index].msg_hdr.msg_iovlen = 1
                    }
                    return Result { () throws(EventLoopError) in
                        try nonBlockingCall("sendmmsg", descriptor: descriptor) {
                            CLinux_sendmmsg(fd, &messages, UInt32(datagrams.count), CLinux_MSG_NOSIGNAL)
                        }
                    }
                }
            }
        }.get()
        guard case .processed(let count) = sent else { return .wouldBlock }
        return .processed(Int(count))
    }
}
