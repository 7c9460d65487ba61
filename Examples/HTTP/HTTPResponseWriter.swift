import CHTTPParser

// The response writer of a server connection: what a request gets - the
// site's prepared answer for the common case, or a head and a body written
// out - appended to the connection's output.
extension HTTPServerConnection {
    // inout: passing the parser's message by value copied it (a retain and
    // a release of each of its arrays per request).
    func respond(to message: inout HTTPMessage) {
        let isHead = message.method == HTTP_HEAD
        guard message.method == HTTP_GET || isHead else {
            let name = String(cString: http_method_str(message.method))
            return answer(405, "text/plain; charset=utf-8", Array("405 Method Not Allowed: \(name); this server answers GET and HEAD\n".utf8),
                          message, isHead: false, extra: "Allow: GET, HEAD\r\n")
        }
        let route = message.target.first == UInt8(ascii: "/")
            ? HTTPSite.route(message.target, pages: context.site.pages)
            : HTTPSite.route(originForm(message.target), pages: context.site.pages)
        switch route {
        case .page(let index): context.stats.pageFetches[index + 1] += 1
        case .index: context.stats.pageFetches[0] += 1
        case .plaintext, .notFound: break
        }
        // The common case - a kept-alive HTTP/1.1 GET of the site - from
        // answers prepared once, appended in one go.
        if !isHead && message.keepAlive && message.minor >= 1 && context.hasPreparedAnswer(for: route) {
            context.stats.answered(200)
            output.append(contentsOf: context.okHeadLines())
            _ = context.appendPreparedAnswer(for: route, to: &output)
            return
        }
        switch route {
        case .plaintext:
            answer(200, "text/plain", HTTPSite.plaintext, message, isHead: isHead)
        case .page(let index):
            answer(200, "text/html; charset=utf-8", context.site.html(page: index), message, isHead: isHead)
        case .index:
            answer(200, "text/html; charset=utf-8", context.site.indexHTML, message, isHead: isHead)
        case .notFound:
            answer(404, "text/plain; charset=utf-8", Array("404 Not Found: \(String(decoding: message.target, as: UTF8.self))\n".utf8),
                   message, isHead: isHead)
        }
    }

    private func answer(_ status: Int, _ contentType: String, _ body: [UInt8], _ message: HTTPMessage, isHead: Bool, extra: String? = nil) {
        // HTTP/1.0 keeps the connection only when asked to, and must be told it is kept.
        writeHead(status, contentType: contentType, length: body.count, keepAlive: message.keepAlive,
                  extra: extra, http10: message.minor == 0)
        if !isHead { output.append(contentsOf: body) }
        context.stats.answered(status)
    }

    func writeHead(_ status: Int, contentType: String, length: Int, keepAlive: Bool, extra: String?, http10: Bool = false) {
        if status == 200 {
            output.append(contentsOf: HTTPServerConnection.okLine)
        } else {
            output.append(contentsOf: "HTTP/1.1 \(status) \(HTTPStatus.phrase(status))\r\n".utf8)
        }
        output.append(contentsOf: HTTPServerConnection.serverLine)
        output.append(contentsOf: context.dateLine())
        output.append(contentsOf: "Content-Type: ".utf8)
        output.append(contentsOf: contentType.utf8)
        output.append(contentsOf: "\r\nContent-Length: ".utf8)
        appendDecimal(length)
        output.append(contentsOf: [13, 10])
        if let extra { output.append(contentsOf: extra.utf8) }
        if !keepAlive {
            output.append(contentsOf: "Connection: close\r\n".utf8)
        } else if http10 {
            output.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        output.append(contentsOf: [13, 10])
    }

    private func appendDecimal(_ value: Int) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = value
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(48 + rest % 10)
                rest /= 10
            } while rest > 0
            output.append(contentsOf: buffer[start...])
        }
    }

    static let okLine = Array("HTTP/1.1 200 OK\r\n".utf8)
    static let continueAnswer = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    static let serverLine = Array("Server: swift-libev\r\n".utf8)
}
