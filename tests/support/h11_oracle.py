"""Oracle for tests/http_differential.rs: parses raw HTTP/1.1 request streams with h11.

Reads one case per line on stdin (the raw bytes in hex); writes one line per case on stdout in
the canonical form the test builds from our server's echoes:
`REQ <method> <target> <version> <name>=<value>... BODY <body> ;` per request (every field
hex-encoded, header fields sorted by name, values in order), then `END clean|reject|incomplete`.
"""
import sys

import h11


def hx(b):
    return b.hex() or "-"


def canonical(req, body):
    fields = sorted(((n.lower(), v) for n, v in req.headers.raw_items()), key=lambda f: f[0])
    parts = ["REQ", hx(req.method), hx(req.target), hx(b"HTTP/" + req.http_version)]
    parts += ["%s=%s" % (hx(n), hx(v)) for n, v in fields]
    parts += ["BODY", hx(bytes(body)), ";"]
    return " ".join(parts)


def run(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out = []
    req, body, closed = None, bytearray(), False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            if not closed:
                return out, "reject"
            # EOF inside a head counts as a clean end (nothing was answered); inside a body
            # it is an incomplete message.
            return out, "incomplete" if req is not None else "clean"
        if event is h11.NEED_DATA:
            if closed:
                return out, "incomplete" if req is not None else "clean"
            conn.receive_data(b"")
            closed = True
            continue
        if isinstance(event, h11.Request):
            req, body = event, bytearray()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append(canonical(req, body))
            method, req = req.method, None
            # Answer, so that h11 lets the next pipelined request through.
            # (Not 2xx to CONNECT: no tunnel; nor to anything else asking for an upgrade.)
            status = 404 if method == b"CONNECT" else 200
            conn.send(h11.Response(status_code=status, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return out, "clean"
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return out, "clean"
        elif isinstance(event, h11.ConnectionClosed):
            return out, "clean"
        elif event is h11.PAUSED:
            return out, "clean"


for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    out, end = run(data)
    print(" ".join(out + ["END", end]))
