// The same downloads on libev: an io watcher waits for the connect (writable),
// then for each chunk (readable); a timer per download is its deadline.
// The loop's run() returns when no watcher is left.
import EV
import EventCore
import Glibc

func libevWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    let loop = try! Loop()
    let downloads = addresses.map { LibevDownload(address: $0, loop: loop, rules: rules) }
    for download in downloads { download.start() }
    loop.run()
    return downloads.map(\.download)
}

final class LibevDownload {
    var download: Download
    let loop: Loop
    let rules: DownloadRules
    var socket = SocketDescriptor(-1)
    var io: IOWatcher?
    var timer: TimerWatcher?
    var isConnected = false

    init(address: SocketAddress, loop: Loop, rules: DownloadRules) {
        download = Download(address: address)
        self.loop = loop
        self.rules = rules
    }

    func start() {
        download.started = monotonicNow()
        do {
            socket = try SocketDescriptor.stream(download.address.family)
            _ = try socket.connect(to: download.address)
            // One watcher: writable means connected, then readable means a chunk.
            io = try loop.io(socket.descriptor, .write) { [unowned self] _, _ in
                if isConnected { readChunk() } else { connected() }
            }
            if let timeout = rules.timeout {
                // The whole download's deadline (the loop's clock is fresh: this runs before loop.run()).
                timer = try loop.timer(after: timeout) { [unowned self] _ in
                    finish(.timedOut(after: timeout))
                }
            }
        } catch {
            finish(DownloadFailure(error))
        }
    }

    func connected() {
        do {
            try socket.connectResult(to: download.address)
            if !rules.request.isEmpty { _ = try rules.request.withUnsafeBytes { try socket.write($0) } }
            isConnected = true
            io?.events = .read
        } catch {
            finish(DownloadFailure(error))
        }
    }

    func readChunk() {
        var chunk = [UInt8](repeating: 0, count: 1024)
        do {
            switch try chunk.withUnsafeMutableBytes({ try socket.read(into: $0) }) {
            case .processed(0): finish(nil)
            case .processed(let count):
                if !download.received(chunk[..<count], rules) { finish(nil) }
            case .wouldBlock: break
            }
        } catch {
            finish(DownloadFailure(error))
        }
    }

    func finish(_ error: DownloadFailure?) {
        guard io != nil || timer != nil || socket.fd >= 0 else { return }
        io?.stop()
        timer?.stop()
        io = nil
        timer = nil
        if socket.fd >= 0 { socket.close() }
        socket = SocketDescriptor(-1)
        download.finish(error)
    }
}
