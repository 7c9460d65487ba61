#if canImport(Glibc)
import Glibc
#endif

/// Which file a descriptor number referred to, as `fstat` saw it: the loops
/// compare it to tell a descriptor that was closed and its number reused.
///
/// Files that share one anonymous inode (eventfd, timerfd, signalfd, epoll)
/// cannot be told apart this way.
public struct FileIdentity: Hashable, Sendable {
    /// The device of the file.
    public var device: UInt64
    /// The inode of the file.
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// The identity of the file open as `fd`.
    ///
    /// - Throws: ``SystemCallError`` (`fstat`, `EBADF`) if `fd` is not open.
    public static func of(_ fd: Int32) throws(SystemCallError) -> FileIdentity {
        var status = stat()
        _ = try systemCall("fstat(\(fd))") { fstat(fd, &status) }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }
}
