# Python's http.server, for tests/http_client_real.rs: argv[1] is the protocol version the
# handler speaks ("HTTP/1.0", the module's default, or "HTTP/1.1"). Prints its port.
import http.server
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = sys.argv[1]

    def log_message(self, *args):
        pass

    def reply(self, body, head_only=False):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/port":
            # The client's port tells the test which connection carried the request.
            self.reply(str(self.client_address[1]).encode())
        elif self.path == "/nolength":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until close")
            self.close_connection = True
        else:
            self.send_error(404)

    def do_HEAD(self):
        self.reply(str(self.client_address[1]).encode(), head_only=True)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.reply(self.rfile.read(length))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The test process went away: so do we.
sys.stdin.read()
