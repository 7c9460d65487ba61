/// The size of the read buffer each loop of the server and the crawler
/// shares among its connections: 64 KiB, as much as one read takes (a
/// socket's receive buffer holds about that between two reads at C10k).
let loopReadBufferBytes = 64 * 1024
