// libFuzzer target: arbitrary bytes through the server's request path, and
// through the crawler's response parser.
//
//     make fuzz                     # 30 s, as `make test` runs it
//     make fuzz FUZZ_SECONDS=300    # five minutes
//
// Built with the sources of Examples/HTTP (no event loop: the path from
// bytes received to bytes answered is all there), `-sanitize=fuzzer,address`.
// What each input does: HTTPFuzzDriver (Examples/HTTP/HTTPFuzzDriver.swift).
// A crasher goes into Fuzz/corpus, which the tests replay (HTTPTests).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    HTTPFuzzDriver.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
