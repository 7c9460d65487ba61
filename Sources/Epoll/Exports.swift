// `import Epoll` brings the loops' common vocabulary too: EventLoopError,
// `FileDescriptor`, the async sockets.
@_exported import EventCore
