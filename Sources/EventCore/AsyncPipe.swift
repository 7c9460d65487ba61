#if canImport(Glibc)
import Glibc
#endif

/// A pipe, a terminal or a file used from async code on a loop - the
/// standard input and output of a program on the loop (asyncio's
/// `connect_read_pipe` and `connect_write_pipe`).
///
/// A pipe or terminal is made non-blocking and waited on through the loop,
/// as ``AsyncSocket`` is; its original flags come back at ``close()``, since
/// a terminal's are shared with the shell that started the program. A
/// regular file, which no poller can watch (epoll refuses it) and which is
/// always ready, is read and written directly.
///
/// ```swift
/// let input = try AsyncPipe.standardInput(on: executor)
/// let output = try AsyncPipe.standardOutput(on: executor)
/// while case let bytes = try await input.read(maximum: 65536), !bytes.isEmpty {
///     try await output.write(bytes)
/// }
/// ```
///
/// A pipe belongs to the task that uses it (it is not `Sendable`): one for
/// input and one for output may be used by two tasks at once.
public final class AsyncPipe {
    /// The descriptor.
    public let descriptor: FileDescriptor
    /// Whether it is a regular file (read and written without the loop).
    public let isRegularFile: Bool
    private let readiness: (any DescriptorReadiness)?
    private let restoredFlags: Int32?
    private let closesDescriptor: Bool
    private var closed = false

    /// Uses `descriptor` on the loop of `executor`.
    ///
    /// - Parameters:
    ///   - descriptor: a pipe, terminal, character device or regular file.
    ///   - executor: the executor of the loop whose readiness waits it uses.
    ///   - closesDescriptor: whether ``close()`` closes the descriptor (not
    ///     for the standard streams, which stay open for the process).
    /// - Throws: ``EventLoopError`` if the descriptor is not open, or is a
    ///   socket or directory (use ``AsyncSocket`` for a socket).
    public init(adopting descriptor: FileDescriptor, on executor: any EventLoopExecutor, closesDescriptor: Bool = true) throws(EventLoopError) {
        var status = stat()
        guard fstat(descriptor.rawValue, &status) == 0 else {
            throw EventLoopError(.badDescriptor(.notOpen), descriptor: descriptor, operation: "AsyncPipe")
        }
        let type = status.st_mode & S_IFMT
        guard type != S_IFDIR, type != S_IFSOCK else {
            throw EventLoopError(.invalidArgument, descriptor: descriptor, operation: "AsyncPipe",
                                 detail: type == S_IFDIR ? "a directory is not a stream" : "a socket is an AsyncSocket")
        }
        self.descriptor = descriptor
        self.closesDescriptor = closesDescriptor
        isRegularFile = type == S_IFREG
        if isRegularFile {
            readiness = nil
            restoredFlags = nil
        } else {
            let flags = fcntl(descriptor.rawValue, F_GETFL)
            if flags >= 0 && flags & O_NONBLOCK == 0 {
                _ = fcntl(descriptor.rawValue, F_SETFL, flags | O_NONBLOCK)
                restoredFlags = flags
            } else {
                restoredFlags = nil
            }
            readiness = executor.readiness(for: descriptor)
        }
    }

    /// The process's standard input (descriptor 0), left open at ``close()``.
    public static func standardInput(on executor: any EventLoopExecutor) throws(EventLoopError) -> AsyncPipe {
        try AsyncPipe(adopting: FileDescriptor(rawValue: 0), on: executor, closesDescriptor: false)
    }

    /// The process's standard output (descriptor 1), left open at ``close()``.
    public static func standardOutput(on executor: any EventLoopExecutor) throws(EventLoopError) -> AsyncPipe {
        try AsyncPipe(adopting: FileDescriptor(rawValue: 1), on: executor, closesDescriptor: false)
    }

    deinit { close() }

    /// Reads what is available into `buffer`, waiting until something is.
    ///
    /// - Returns: the byte count; 0 at the end (of the file, or when every
    ///   writer of the pipe has closed it).
    /// - Throws: ``EventLoopError`` naming `read` and the descriptor; the
    ///   task's deadline; `CancellationError`.
    nonisolated(nonsending) public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        try checkOpen()
        try Deadline.checkCurrent()
        while true {
            switch try nonBlockingCall("read", descriptor: descriptor, { Glibc.read(descriptor.rawValue, buffer.baseAddress, buffer.count) }) {
            case .processed(let count): return count
            case .wouldBlock: try await readiness!.waitReadable()
            }
            try checkOpen()
        }
    }

    /// Reads what is available, up to `maximum` bytes, waiting until something is.
    ///
    /// - Returns: the bytes; empty at the end.
    nonisolated(nonsending) public func read(maximum: Int = AsyncSocket.defaultReadSize) async throws -> [UInt8] {
        try await readBytes(maximum: maximum) { try await read(into: $0) }
    }

    /// Writes all of `bytes`, waiting whenever the pipe is full.
    ///
    /// - Throws: ``EventLoopError`` (`EPIPE` when the reader has gone: no
    ///   `SIGPIPE`, which the loops ignore); the task's deadline; `CancellationError`.
    nonisolated(nonsending) public func write(_ bytes: [UInt8]) async throws {
        try checkOpen()
        try Deadline.checkCurrent()
        var offset = 0
        while offset < bytes.count {
            let result = bytes[offset...].withUnsafeBytes { buffer in
                Result { () throws(EventLoopError) in
                    try nonBlockingCall("write", descriptor: descriptor, { Glibc.write(descriptor.rawValue, buffer.baseAddress, buffer.count) })
                }
            }
            switch try result.get() {
            case .processed(let count): offset += count
            case .wouldBlock: try await readiness!.waitWritable()
            }
            try checkOpen()
        }
    }

    /// Stops the loop's watch, gives the descriptor its flags back, and
    /// closes it if it was to. Harmless twice; reads and writes afterwards
    /// throw ``EventLoopError/Code/descriptorClosed``.
    public func close() {
        guard !closed else { return }
        closed = true
        readiness?.cancel()
        if let restoredFlags { _ = fcntl(descriptor.rawValue, F_SETFL, restoredFlags) }
        if closesDescriptor { _ = Glibc.close(descriptor.rawValue) }
    }

    private func checkOpen() throws(EventLoopError) {
        if closed { throw EventLoopError(.descriptorClosed, descriptor: descriptor) }
    }
}

/// What `read(into:)` reads into a buffer of `maximum` bytes, as an array of
/// its own size: the `read(maximum:)` of the streams that have no cheaper way.
nonisolated(nonsending) package func readBytes(
    maximum: Int, _ read: nonisolated(nonsending) (UnsafeMutableRawBufferPointer) async throws -> Int
) async throws -> [UInt8] {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(maximum, 1), alignment: 1)
    defer { buffer.deallocate() }
    let count = try await read(buffer)
    return Array(buffer[..<count])
}
