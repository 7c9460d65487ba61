// The same downloads as async/await tasks on the libev loop's executor: the
// code reads like the blocking way, but each await gives the loop back.
import EV
import EventCore

func asyncWay(_ addresses: [SocketAddress], timeout: Double?) -> [Download] {
    let loop = try! Loop()
    return try! loop.run { executor in
        await withTaskGroup(of: (Int, Download).self) { group in
            for (index, address) in addresses.enumerated() {
                group.addTask { (index, await asyncDownload(address, executor, timeout: timeout)) }
            }
            var downloads = [Download?](repeating: nil, count: addresses.count)
            for await (index, download) in group { downloads[index] = download }
            return downloads.map { $0! }
        }
    }
}

func asyncDownload(_ address: SocketAddress, _ executor: LoopExecutor, timeout: Double?) async -> Download {
    var download = Download(address: address)
    download.started = monotonicNow()
    do {
        let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: timeout)
        defer { socket.close() }
        try await socket.write(tutorialRequest)
        while true {
            let chunk = try await withTimeout(timeout) { try await socket.read(maximum: 1024) }
            if chunk.isEmpty { break }
            download.received(chunk)
        }
        download.finish()
    } catch {
        download.finish(describe(error))
    }
    return download
}
