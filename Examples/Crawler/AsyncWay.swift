// The same downloads as async/await tasks on the libev loop's executor: the
// code reads like the blocking way, but each await gives the loop back.
import EV
import EventCore

func asyncWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    let loop = try! Loop()
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
func asyncDownload(_ address: SocketAddress, _ executor: LoopExecutor, _ rules: DownloadRules) async -> Download {
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
    } catch {
        download.finish(describe(error))
    }
    return download
}
