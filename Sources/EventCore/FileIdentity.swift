#if canImport(Glibc)
import Glibc
#endif

/// Which file a descriptor number referred to, as `fstat` saw it: the loops
/// compare it to tell a descriptor that was closed and its number reused.
///
/// Files that share one anonymous inode (eventfd, timerfd, signalfd, epoll)
/// cannot be told apart this way.
package struct FileIdentity: Hashable, Sendable {
    /// The device of the file.
    package var device: UInt64
    /// The inode of the file.
    package var inode: UInt64
    /// Whether the file is one of the kernel's anonymous inodes (epoll,
    /// eventfd, timerfd, signalfd, io_uring): no file type in its mode.
    package var isAnonymous: Bool

    package init(device: UInt64, inode: UInt64, isAnonymous: Bool = false) {
        self.device = device
        self.inode = inode
        self.isAnonymous = isAnonymous
    }

    /// Device and inode in one word, for tables with an entry per descriptor
    /// (8 bytes instead of 16 at C10k). The same file always has the same
    /// fingerprint; files on one device (every socket, every pipe) never
    /// share one, since their inodes differ; files on different devices
    /// would need inodes that differ by exactly the devices' mixed bits.
    package var fingerprint: UInt64 { inode ^ (device &* 0x9E37_79B9_7F4A_7C15) }

    /// The identity of the file open as `fd`.
    ///
    /// - Throws: ``EventLoopError`` (`fstat`, `EBADF`) if `fd` is not open.
    package static func of(_ fd: Int32) throws(EventLoopError) -> FileIdentity {
        var status = stat()
        _ = try systemCall("fstat", descriptor: FileDescriptor(rawValue: fd)) { fstat(fd, &status) }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino),
                            isAnonymous: status.st_mode & S_IFMT == 0)
    }

    /// What kind of anonymous inode `fd` is (`[eventpoll]`, `[eventfd]`,
    /// `[io_uring]`, ...), from its `/proc/self/fd` link; nil if it is not one.
    package static func anonymousKind(of fd: Int32) -> String? {
        var link = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/self/fd/\(fd)", &link, link.count - 1)
        guard count > 0 else { return nil }
        let text = String(decoding: link[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.hasPrefix("anon_inode:") ? String(text.dropFirst("anon_inode:".count)) : nil
    }
}

extension FileIdentity {
    /// The identity of the file open as `fd`, for a loop about to watch it.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/badDescriptor(_:)``,
    ///   ``EventLoopError/BadDescriptor/notOpen``) if `fd` is not open.
    package static func checked(_ fd: Int32, operation: String = "watch") throws(EventLoopError) -> FileIdentity {
        do {
            return try FileIdentity.of(fd)
        } catch {
            throw EventLoopError(.badDescriptor(.notOpen), descriptor: FileDescriptor(rawValue: fd), operation: operation,
                                 detail: error.errno.map { "fstat: \($0.symbolicName)" })
        }
    }
}
