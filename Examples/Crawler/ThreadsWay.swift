// The tutorial's thread_way, corrected: a thread per download, all started
// before any is joined, so the downloads overlap.
//
// The tutorial's listing calls t.start() and then t.join() *inside* the loop:
//
//     for i, address in enumerate(addresses):
//         t = Thread(target=get_poetry, args=(address, ))
//         t.start()
//         t.join()
//
// which waits for each thread before starting the next - the blocking way
// with extra steps. Its "about 10 s" cannot come from that code.
import EventCore
import Glibc

func threadsWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    let results = LockedValue([Download?](repeating: nil, count: addresses.count))
    let threads = addresses.enumerated().map { index, address in
        try! PlainThread {
            let download = blockingDownload(address, rules)
            results.withLock { $0[index] = download }
        }
    }
    threads.forEach { $0.join() }
    return results.withLock { $0.map { $0! } }
}
