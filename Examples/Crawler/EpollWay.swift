// The tutorial's event loop, written as its listing writes it: a Crawler
// object per address whose callbacks the selector returns, and a loop that
// calls them - on the package's hand-written epoll Selector.
//
//     class Crawler:
//         def fetch(self):
//             ...connect, non-blocking...
//             selector.register(self.sock.fileno(), EVENT_WRITE, self.connected)
//         def connected(self, key, mask):
//             selector.unregister(key.descriptor)
//             self.sock.send(get)
//             selector.register(key.descriptor, EVENT_READ, self.read_response)
//         def read_response(self, key, mask):
//             chunk = self.sock.recv(1024)
//             if chunk: self.response += chunk
//             else:
//                 selector.unregister(key.descriptor)
//                 ...if no addresses are left: stopped = True
//
//     def loop():
//         while not stopped:
//             events = selector.select()
//             for event_key, event_mask in events:
//                 callback = event_key.data
//                 callback(event_key, event_mask)
import Epoll
import EventCore
import Glibc

/// What the selector carries for each descriptor: the callback to call.
typealias Callback = (SelectorKey<Any>, Interest) -> Void

func epollWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    let selector = try! Selector<Any>()
    var remaining = addresses.count
    var stopped = addresses.isEmpty
    let crawlers = addresses.map { address in
        Crawler(address: address, selector: selector, rules: rules) {
            remaining -= 1
            if remaining == 0 { stopped = true }
        }
    }
    for crawler in crawlers { crawler.fetch() }

    // The event loop.
    while !stopped {
        // The one addition to the listing: wake up for the earliest deadline.
        let deadlines = crawlers.filter(\.isRunning).compactMap { $0.download.deadline(rules) }
        _ = try! selector.select(timeout: deadlines.min().map { LoopTime.duration(max($0 - monotonicNow(), 0)) }) { key, mask in
            let callback = key.data as! Callback
            callback(key, mask)
        }
        for crawler in crawlers where crawler.isRunning {
            if let deadline = crawler.download.deadline(rules), monotonicNow() >= deadline {
                crawler.fail(.timedOut(after: rules.timeout))
            }
        }
    }
    return crawlers.map(\.download)
}

/// The tutorial's Crawler: one download, driven by the selector's callbacks.
final class Crawler {
    let address: SocketAddress
    let selector: Selector<Any>
    let rules: DownloadRules
    let done: () -> Void
    var socket = SocketDescriptor(-1)
    var download: Download
    var isRunning = true

    init(address: SocketAddress, selector: Selector<Any>, rules: DownloadRules, done: @escaping () -> Void) {
        self.address = address
        self.selector = selector
        self.rules = rules
        self.done = done
        download = Download(address: address)
    }

    func fetch() {
        download.started = monotonicNow()
        do {
            socket = try SocketDescriptor.stream(address.family)
            _ = try socket.connect(to: address) // EINPROGRESS: the selector says when
            try selector.register(socket.descriptor, .write, data: connected as Callback)
        } catch {
            fail(DownloadFailure(error))
        }
    }

    func connected(_ key: SelectorKey<Any>, _ mask: Interest) {
        _ = try? selector.unregister(key.descriptor)
        do {
            try socket.connectResult(to: address)
            if !rules.request.isEmpty { _ = try rules.request.withUnsafeBytes { try socket.write($0) } }
            try selector.register(key.descriptor, .read, data: readResponse as Callback)
        } catch {
            fail(DownloadFailure(error))
        }
    }

    func readResponse(_ key: SelectorKey<Any>, _ mask: Interest) {
        var chunk = [UInt8](repeating: 0, count: 1024)
        do {
            switch try chunk.withUnsafeMutableBytes({ try socket.read(into: $0) }) {
            case .processed(0):
                _ = try? selector.unregister(key.descriptor)
                finish(nil)
            case .processed(let count):
                if !download.received(chunk[..<count], rules) { fail(nil) }
            case .wouldBlock:
                break
            }
        } catch {
            fail(DownloadFailure(error))
        }
    }

    func fail(_ message: DownloadFailure?) {
        if socket.fd >= 0 { _ = try? selector.unregister(socket.descriptor) }
        finish(message)
    }

    private func finish(_ error: DownloadFailure?) {
        guard isRunning else { return }
        isRunning = false
        download.finish(error)
        socket.close()
        done()
    }
}
