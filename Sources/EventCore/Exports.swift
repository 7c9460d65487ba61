// swift-system's types are the package's vocabulary for descriptors and
// errors (`FileDescriptor`, `Errno`): an app that imports EventCore (or EV,
// or Epoll) names them without importing SystemPackage itself.
@_exported import SystemPackage
