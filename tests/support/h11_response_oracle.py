"""Oracle for tests/http_client_differential.rs: parses raw HTTP/1.1 response streams with h11
(client role).

Reads one case per line on stdin: `<method> <close> <hex bytes>` (`close` is 1 when the server
closes the connection after the bytes). Writes one line per case in the canonical form the test
builds from our client: `STATUS <code> <name>=<value>... BODY <body> REUSE yes|no` (fields
hex-encoded, names lowercased, sorted by name, values in order), or `ERROR`, or `PENDING` (the
parser still waits for bytes that never come).
"""
import sys

import h11


def hx(b):
    return b.hex() or "-"


def run(method, close, data):
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", "127.0.0.1")]
    body = b""
    if method == "POST":
        body = b"x"
        headers.append(("content-length", "1"))
    target = "127.0.0.1:80" if method == "CONNECT" else "/"
    conn.send(h11.Request(method=method, target=target, headers=headers))
    if body:
        conn.send(h11.Data(data=body))
    if method != "CONNECT":
        conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    if close:
        conn.receive_data(b"")
    response, got = None, bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return "ERROR"
        if event is h11.NEED_DATA:
            return "PENDING"
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = event
            continue
        if isinstance(event, h11.Data):
            got += event.data
            continue
        if event is h11.PAUSED and response is not None and method == "CONNECT":
            # A 2xx to CONNECT: the tunnel starts; no body, never reused.
            return canonical(response, got, False)
        if isinstance(event, h11.EndOfMessage):
            trailing, closed = conn.trailing_data
            reuse = (
                conn.our_state is h11.DONE
                and conn.their_state is h11.DONE
                and not trailing
                and not closed
            )
            return canonical(response, got, reuse)
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return "ERROR"


def canonical(response, body, reuse):
    fields = sorted(((n.lower(), v) for n, v in response.headers.raw_items()), key=lambda f: f[0])
    parts = ["STATUS", str(response.status_code)]
    parts += ["%s=%s" % (hx(n), hx(v)) for n, v in fields]
    parts += ["BODY", hx(bytes(body)), "REUSE", "yes" if reuse else "no"]
    return " ".join(parts)


for line in sys.stdin:
    method, close, data = line.split()
    data = b"" if data == "-" else bytes.fromhex(data)
    print(run(method, close == "1", data))
