// A small HTTP proxy on Node's http server, for tests/http_client_connect.rs: CONNECT tunnels
// (the 'connect' event) with Basic auth "test" (dGVzdA==), plain forward requests echoed, and
// a TCP echo server to tunnel to. Prints "PROXY_PORT ECHO_PORT".
'use strict';
const http = require('http');
const net = require('net');

const AUTH = 'Basic dGVzdA==';

const proxy = http.createServer((req, res) => {
  // A forward request: the absolute-form target as Node saw it.
  res.end(req.method + ' ' + req.url + ' host=' + req.headers.host);
});

proxy.on('connect', (req, socket, head) => {
  if (req.headers['proxy-authorization'] !== AUTH) {
    socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n' +
      'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 13\r\n' +
      'Connection: close\r\n\r\nauth required');
    return;
  }
  const [host, port] = req.url.split(':');
  const upstream = net.connect(Number(port), host, () => {
    // The head and the first tunnel bytes in one write: they reach the client together.
    socket.write('HTTP/1.1 200 Connection Established\r\nProxy-Agent: node\r\n\r\nvia node\n');
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on('error', () => {
    socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nbad gateway');
  });
  socket.on('error', () => upstream.destroy());
});

// Echoes, and ends its side when the client ends its own.
const echo = net.createServer((s) => s.pipe(s));

proxy.listen(0, '127.0.0.1', () => {
  echo.listen(0, '127.0.0.1', () => {
    console.log(proxy.address().port + ' ' + echo.address().port);
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
