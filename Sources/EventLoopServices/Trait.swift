// The product's dependencies (ServiceLifecycle, swift-log, swift-metrics)
// come with the package trait of the same name, off by default so that an
// app using only the loops resolves none of them.
#if !EventLoopServices
#error("""
    EventLoopServices needs the swift-libev package trait of the same name: depend on the package with \
    .package(url: ..., from: ..., traits: ["EventLoopServices"]), or build this package itself with \
    --traits EventLoopServices (the Makefile does)
    """)
#endif
