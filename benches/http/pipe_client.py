"""Pipelined load for instruction counts: `python3 pipe_client.py PORT CONNS BATCHES` sends
BATCHES batches of 16 pipelined GET /plaintext on each of CONNS connections and waits for the
answers; prints the number of requests. Use it against a server under
`valgrind --tool=callgrind` (wrk is too fast for valgrind), e.g. PORT 8 140 = 17,920 requests."""
import socket, sys, time
port = int(sys.argv[1]); conns = int(sys.argv[2]); batches = int(sys.argv[3]); depth = 16
req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n" * depth
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.05)
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
total = 0
for b in range(batches):
    for s in socks: s.sendall(req)
    for s in socks:
        need = depth; buf = b""
        while need:
            chunk = s.recv(65536)
            if not chunk: raise SystemExit("closed")
            buf += chunk
            n = buf.count(b"Hello, World!")
            if n >= need: break
        total += depth
print(total)
