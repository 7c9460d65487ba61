// The SwiftNIO peer of `server http`: NIOHTTP1 on one event loop, keep-alive
// and pipelining (the pipeline's pipelining assistance), the same response
// bytes for /plaintext.
//
//     nio-http PORT
import NIOCore
import NIOHTTP1
import NIOPosix

final class PlaintextHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let body = ByteBuffer(string: "Hello, World!")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Server", value: "swift-libev")
        headers.add(name: "Date", value: DateHeader.current())
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Content-Length", value: "13")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(Self.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// The Date header, formatted once a second (per thread: one loop here).
enum DateHeader {
    nonisolated(unsafe) static var second = 0
    nonisolated(unsafe) static var text = ""

    static func current() -> String {
        // Used only on the one event loop's thread.
        var now = time(nil)
        if now != second {
            second = now
            var parts = tm()
            gmtime_r(&now, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let length = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            text = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text
    }
}

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8082 : 8082
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(PlaintextHandler())
        }
    }
let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("Serving HTTP (SwiftNIO) on http://127.0.0.1:\(channel.localAddress?.port ?? port)/")
fflush(nil)
try channel.closeFuture.wait()
