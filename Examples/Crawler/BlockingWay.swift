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

func blockingWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    addresses.map { blockingDownload($0, rules) }
}

/// One download with a blocking socket; the processes and threads ways use
/// it too. It sends nothing, as the tutorial's blocking listing (and the
/// classic client) does not.
///
/// The deadline of the whole download is kept with the socket's own
/// timeouts: before each blocking call, `SO_SNDTIMEO` (which bounds
/// `connect` and `send`) or `SO_RCVTIMEO` is set to the time that is left.
func blockingDownload(_ address: SocketAddress, _ rules: DownloadRules) -> Download {
    var download = Download(address: address)
    download.started = monotonicNow()
    let deadline = download.deadline(rules)
    let domain = address.family.domain
    let fd = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else {
        download.finish(.system(EventLoopError.system("socket")))
        return download
    }
    defer { close(fd) }
    /// Sets the socket's timeout `option` to what is left of the deadline; false if nothing is.
    func limit(_ option: Int32) -> Bool {
        guard let deadline else { return true }
        let left = deadline - monotonicNow()
        guard left > 0 else { return false }
        var time = timeval(tv_sec: Int(left), tv_usec: max(Int((left - Double(Int(left))) * 1e6), 1))
        setsockopt(fd, SOL_SOCKET, option, &time, socklen_t(MemoryLayout<timeval>.size))
        return true
    }
    _ = limit(SO_SNDTIMEO)
    let connected = address.withSockaddr { pointer, length in
        while true {
            if connect(fd, pointer, length) == 0 { return true }
            if errno != EINTR { return false }
        }
    }
    guard connected else {
        let error = errno == EINPROGRESS ? ETIMEDOUT : errno
        download.finish(.system(EventLoopError.system("connect(\(address))", Errno(rawValue: error))))
        return download
    }
    var buffer = [UInt8](repeating: 0, count: 1024)
    while true {
        guard limit(SO_RCVTIMEO) else { download.timedOut(rules); return download }
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 {
            guard download.received(buffer[..<count], rules) else { return download }
        } else if count == 0 {
            break
        } else if errno == EINTR {
            continue
        } else if errno == EAGAIN || errno == EWOULDBLOCK {
            download.timedOut(rules)
            return download
        } else {
            download.finish(.system(EventLoopError.system("recv(\(address))")))
            return download
        }
    }
    download.finish()
    return download
}
