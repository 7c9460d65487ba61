// The tutorial's nonblocking_way: a non-blocking socket, and loops that
// retry send and recv until they work. Nothing blocks - and nothing waits
// either: the loops spin, burning a core, one server after another.
//
//     sock.setblocking(False)
//     try:
//         sock.connect(address)
//     except BlockingIOError:
//         pass
//     while True:
//         try:
//             sock.send(request); break
//         except OSError:
//             pass
//     while True:
//         try:
//             data = sock.recv(1024)
//             ...
//         except OSError:
//             pass
import EventCore
import Glibc

func busyWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    addresses.map { busyDownload($0, rules) }
}

func busyDownload(_ address: SocketAddress, _ rules: DownloadRules) -> Download {
    var download = Download(address: address)
    download.started = monotonicNow()
    let deadline = download.deadline(rules) ?? .infinity
    let socket: SocketDescriptor
    do {
        socket = try SocketDescriptor.stream(address.family)
        _ = try socket.connect(to: address)
    } catch {
        download.finish(DownloadFailure(error))
        return download
    }
    defer { socket.close() }
    // Retry until the connection is up (ENOTCONN and EAGAIN until then) and
    // the request, if any, is sent.
    var sent = 0
    var connected = false
    while !connected || sent < rules.request.count {
        let result = rules.request[sent...].withUnsafeBytes { send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if result >= 0 {
            connected = true
            sent += result
        } else if errno == ENOTCONN || errno == EAGAIN || errno == EINTR {
            if monotonicNow() > deadline { download.timedOut(rules); return download }
        } else {
            // The connect failed (refused, unreachable): its error, not send's.
            var error: Int32 = 0
            var length = socklen_t(4)
            getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            download.finish(.system(EventLoopError.system("connect(\(address))", Errno(rawValue: error == 0 ? errno : error))))
            return download
        }
    }
    var buffer = [UInt8](repeating: 0, count: 1024)
    while true {
        let count = recv(socket.fd, &buffer, buffer.count, 0)
        if count > 0 {
            guard download.received(buffer[..<count], rules) else { return download }
        } else if count == 0 {
            break
        } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
            // Nothing yet: try again at once - the busy way's whole point.
        } else {
            download.finish(.system(EventLoopError.system("recv(\(address))")))
            return download
        }
        if monotonicNow() > deadline { download.timedOut(rules); return download }
    }
    download.finish()
    return download
}
