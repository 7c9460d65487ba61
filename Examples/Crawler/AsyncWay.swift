// The same downloads as async/await tasks on a loop's executor - libev's
// (`--way async`) or the hand-written epoll loop's (`--way async-epoll`), one
// code: it reads like the blocking way, but each await gives the loop back.
import EventCore

func asyncWay<L: EventLoop>(_ addresses: [SocketAddress], _ rules: DownloadRules, _ make: () throws -> L) -> [Download] {
    let loop = try! make()
    defer { loop.close() }
    return try! loop.run { executor in
        await withTaskGroup(of: (Int, Download).self) { group in
            for (index, address) in addresses.enumerated() {
                group.addTask { (index, await asyncDownload(address, executor, rules)) }
            }
            var downloads = [Download?](repeating: nil, count: addresses.count)
            for await (index, download) in group { downloads[index] = download }
            return downloads.map { $0! }
        }
    }
}

/// One download as straight-line code; `withTimeout` bounds all of it.
func asyncDownload(_ address: SocketAddress, _ executor: some EventLoopExecutor, _ rules: DownloadRules) async -> Download {
    var download = Download(address: address)
    download.started = monotonicNow()
    do {
        try await withTimeout(rules.timeout) {
            let socket = try await AsyncSocket.connect(to: address, on: executor)
            defer { socket.close() }
            if !rules.request.isEmpty { try await socket.write(rules.request) }
            while true {
                let chunk = try await socket.read(maximum: 1024)
                if chunk.isEmpty { break }
                guard download.received(chunk, rules) else { return }
            }
            download.finish()
        }
    } catch let error as EventLoopError where error.code == .timedOut {
        download.finish(.timedOut(after: rules.timeout))
    } catch {
        download.finish(DownloadFailure(error))
    }
    return download
}
