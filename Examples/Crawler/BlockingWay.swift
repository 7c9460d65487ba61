// The tutorial's blocking_way: connect, recv until the server closes, one
// server after another. While a recv waits, the whole program waits.
//
//     def blocking_way(address):
//         sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
//         sock.connect(address)  # blocks
//         poem = ''
//         while True:
//             data = sock.recv(1024)  # blocks
//             if not data:
//                 sock.close()
//                 break
//             poem += str(data)
//         return poem
import EventCore
import Glibc

func blockingWay(_ addresses: [SocketAddress], timeout: Double?) -> [Download] {
    addresses.map { blockingDownload($0, timeout: timeout) }
}

/// One download with a blocking socket; the processes and threads ways use it too.
func blockingDownload(_ address: SocketAddress, timeout: Double?) -> Download {
    var download = Download(address: address)
    download.started = monotonicNow()
    let domain = address.family == .ipv4 ? AF_INET : AF_INET6
    let fd = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else {
        download.finish(describe(SystemCallError(call: "socket")))
        return download
    }
    defer { close(fd) }
    if let timeout {
        // A blocking socket's timeouts: connect, send and recv give up after `timeout`.
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }
    let connected = address.withSockaddr { pointer, length in
        while true {
            if connect(fd, pointer, length) == 0 { return true }
            if errno != EINTR { return false }
        }
    }
    guard connected else {
        let error = errno == EINPROGRESS ? ETIMEDOUT : errno
        download.finish(describe(SystemCallError(call: "connect(\(address))", errno: .init(rawValue: error))))
        return download
    }
    var buffer = [UInt8](repeating: 0, count: 1024)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 {
            download.received(buffer[..<count])
        } else if count == 0 {
            break
        } else if errno == EINTR {
            continue
        } else if errno == EAGAIN || errno == EWOULDBLOCK {
            download.finish("no data for \(timeout ?? 0) s (timeout)")
            return download
        } else {
            download.finish(describe(SystemCallError(call: "recv(\(address))")))
            return download
        }
    }
    download.finish()
    return download
}
