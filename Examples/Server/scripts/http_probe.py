#!/usr/bin/env python3
"""Raw-socket probes of an HTTP server, for the tests (and by hand).

    http_probe.py PORT send TEXT        send TEXT (Python escapes: \\r\\n ...), print
                                        {"statuses": [...], "closed": bool, "response": "..."}
    http_probe.py PORT resets N         N clients send half a request, then reset (SO_LINGER 0)
    http_probe.py PORT pipelined N      N requests in one write; print {"statuses", "titles"}
    http_probe.py PORT slow-reader N S  N pipelined requests for /page/1, read nothing for S
                                        seconds, then everything; print {"responses": N}
    http_probe.py PORT hold N S         N concurrent clients, each: GET, hold S seconds, close;
                                        print {"ok": count, "failed": {...}}
    http_probe.py PORT starve N         a process pipelining GET /page/1 (4 KB of header each)
                                        without pause, reading every answer, while N probes, one after
                                        another, each GET /plaintext on a connection of its
                                        own; print {"ok", "slowest", "median", "pipelined"}:
                                        the probes' seconds, and the answers the pipelining
                                        client got meanwhile (it must have been served)
"""
import json
import multiprocessing
import re
import socket
import struct
import sys
import threading
import time


def read_until_closed(sock, timeout=5.0):
    """Everything until the server closes; closed=False if it kept the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "send":
        text = sys.argv[3].encode("latin-1").decode("unicode_escape").encode("latin-1")
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(text)
        data, closed = read_until_closed(sock, float(sys.argv[4]) if len(sys.argv) > 4 else 3.0)
        print(json.dumps({"statuses": statuses(data), "closed": closed, "response": data.decode("latin-1")[:2000]}))
    elif mode == "resets":
        for i in range(int(sys.argv[3])):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /page/1 HTTP/1.1\r\nHost: a\r\nX-Half: " if i % 2 else b"GET /page/1 HTTP/1.1\r\nHost: a\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        print(json.dumps({"resets": int(sys.argv[3])}))
    elif mode == "pipelined":
        count = int(sys.argv[3])
        sock = socket.create_connection(("127.0.0.1", port))
        requests = b"".join(b"GET /page/%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(count - 1))
        sock.sendall(requests + b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data, closed = read_until_closed(sock, 10)
        titles = [int(t) for t in re.findall(rb"<title>Page (\d+)</title>", data)]
        print(json.dumps({"statuses": statuses(data), "titles": titles, "closed": closed,
                          "plaintextLast": data.endswith(b"Hello, World!")}))
    elif mode == "slow-reader":
        count, pause = int(sys.argv[3]), float(sys.argv[4])
        sock = socket.create_connection(("127.0.0.1", port))
        # Sent from a thread: once the server stops reading (its answers
        # unread), the requests back up and sendall would block this one.
        sender = threading.Thread(target=sock.sendall, args=(b"GET /page/1 HTTP/1.1\r\nHost: a\r\n\r\n" * count,))
        sender.start()
        print("sent", flush=True)
        time.sleep(pause)
        sock.settimeout(30)
        responses, tail = 0, b""
        while responses + tail.count(b"</html>") < count:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data = tail + chunk
            responses += data.count(b"</html>")
            tail = data[-8:]
            responses -= tail.count(b"</html>")
        responses += tail.count(b"</html>")
        sender.join()
        print(json.dumps({"responses": responses}), flush=True)
    elif mode == "hold":
        count, hold = int(sys.argv[3]), float(sys.argv[4])
        results = {"ok": 0, "failed": {}}
        lock = threading.Lock()

        def client():
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
                data = b""
                while not data.endswith(b"Hello, World!"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed before the answer")
                    data += chunk
                time.sleep(hold)
                sock.close()
                with lock:
                    results["ok"] += 1
            except Exception as error:  # noqa: BLE001 - reported, counted
                with lock:
                    results["failed"][type(error).__name__] = results["failed"].get(type(error).__name__, 0) + 1

        threads = [threading.Thread(target=client) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(json.dumps(results))
    elif mode == "starve":
        starve(port, int(sys.argv[3]))
    else:
        sys.exit("unknown mode " + mode)


def pipeline_forever(port, answers):
    """Pipelines requests without pause and reads every answer (a process
    of its own: no GIL shared with the probes). Each request carries 4 KB of
    header for a short answer: the server always has a full buffer to read
    and never waits to write - a task that reads while bytes keep coming
    never gives the loop back."""
    sock = socket.create_connection(("127.0.0.1", port))
    batch = (b"GET /page/1 HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 4000 + b"\r\n\r\n") * 64

    def send():
        try:
            while True:
                sock.sendall(batch)
        except OSError:
            pass

    threading.Thread(target=send, daemon=True).start()
    tail = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            data = tail + chunk
            count = data.count(b"</html>")
            tail = data[-8:]
            count -= tail.count(b"</html>")
            with answers.get_lock():
                answers.value += count
    except OSError:
        pass


def starve(port, probes):
    answers = multiprocessing.Value("q", 0)
    hog = multiprocessing.Process(target=pipeline_forever, args=(port, answers), daemon=True)
    hog.start()
    while answers.value < 1000:  # it is being served, flat out
        time.sleep(0.01)
    latencies = []
    ok = 0
    for _ in range(probes):
        start = time.time()
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=10)
            probe.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data, _ = read_until_closed(probe, 10)
            probe.close()
            ok += data.endswith(b"Hello, World!")
        except OSError:
            pass
        latencies.append(time.time() - start)
        if latencies[-1] >= 10:
            break  # starved: one is the verdict
        time.sleep(0.02)
    before = answers.value
    time.sleep(0.2)
    pipelined = answers.value - before
    hog.terminate()
    hog.join()
    latencies.sort()
    print(json.dumps({"ok": ok, "slowest": latencies[-1], "median": latencies[len(latencies) // 2],
                      "pipelined": pipelined}))


main()
