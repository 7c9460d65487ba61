import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// Receives what an ``HTTPParser`` parses.
public protocol HTTPMessageSink: AnyObject {
    /// A whole message. Return `true` to pause the parser before the next
    /// one (the output is over its high-water mark); ``HTTPParser/resume()`` resumes.
    /// It must not call the parser's ``HTTPParser/execute(_:)`` or
    /// ``HTTPParser/finish()`` (debug builds trap).
    func parsed(_ message: inout HTTPMessage) -> Bool

    /// A request's head asked for `100 Continue` (`Expect: 100-continue`
    /// on HTTP/1.1, with a body to come) and passed every check: the
    /// server answers `100 Continue` now, before the body arrives (RFC 9110,
    /// 10.1.1). Not called for a request refused at its head (413, ...).
    /// Like ``parsed(_:)``, it must not call the parser.
    func continueExpected()
}

extension HTTPMessageSink {
    /// Does nothing: a response parser's sink, or a server that does not answer `100 Continue`.
    public func continueExpected() {}
}
