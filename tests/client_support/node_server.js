// Node's own HTTP server (llhttp), for tests/http_client_real.rs. Two listeners (two
// origins) share one handler; prints "PORT1 PORT2". argv[2]: keepAliveTimeout in ms.
'use strict';
const http = require('http');

let nextId = 0;
const closed = new Set();

function handler(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/duplex') {
    // Streams the body back as it arrives (chunked), reading as fast as the client reads.
    req.pipe(res);
    return;
  }
  if (url.pathname === '/reject') {
    // Refuses the upload without reading it, and closes.
    res.statusCode = 413;
    res.setHeader('connection', 'close');
    res.end('too large');
    return;
  }
  const q = url.searchParams;
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('latin1');
    const id = String(req.socket.id);
    switch (url.pathname) {
      case '/conn':
        res.end(id);
        break;
      case '/closed':
        res.end(closed.has(Number(q.get('id'))) ? 'yes' : 'no');
        break;
      case '/echo': {
        // One line per item; '-' for a header that was not sent.
        const h = (name) => req.headers[name] === undefined ? '-' : req.headers[name];
        res.end([
          req.method, req.url, 'body=' + body, 'auth=' + h('authorization'),
          'cookie=' + h('cookie'), 'ctype=' + h('content-type'), 'clen=' + h('content-length'),
          'te=' + h('transfer-encoding'), 'host=' + h('host'), 'ae=' + h('accept-encoding'),
          'conn=' + id,
        ].join('\n'));
        break;
      }
      case '/stream':
        // Written in pieces without a length: chunked.
        res.write('one,');
        setImmediate(() => { res.write('two,'); setImmediate(() => res.end('three')); });
        break;
      case '/trailers':
        res.writeHead(200, { Trailer: 'X-Sum' });
        res.write('abc');
        res.addTrailers({ 'X-Sum': '3' });
        res.end();
        break;
      case '/hints':
        res.writeEarlyHints({ link: '</style.css>; rel=preload' }, () => {
          res.setHeader('x-final', 'yes');
          res.end('final:' + id);
        });
        break;
      case '/head':
        res.setHeader('content-length', '100');
        res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(100));
        break;
      case '/status':
        res.statusCode = Number(q.get('code'));
        res.setHeader('x-conn', id);
        if (q.get('length')) res.setHeader('content-length', q.get('length'));
        res.end();
        break;
      case '/close':
        res.setHeader('connection', 'close');
        res.end(id);
        break;
      case '/redirect':
        res.statusCode = Number(q.get('code'));
        res.setHeader('location', q.get('to'));
        res.end('moved');
        break;
      case '/loop':
        res.statusCode = 302;
        res.setHeader('location', '/loop?n=' + (Number(q.get('n') || 0) + 1));
        res.end();
        break;
      case '/silent':
        break; // never answers
      case '/stall-body':
        res.setHeader('content-length', '10');
        res.write('part');
        break; // the rest never comes
      case '/destroy':
        res.setHeader('content-length', '100');
        res.write('partial', () => req.socket.destroy());
        break;
      case '/destroy-chunked':
        res.write('partial', () => req.socket.destroy());
        break;
      case '/big-header':
        res.setHeader('x-big', 'a'.repeat(Number(q.get('n'))));
        res.end('ok');
        break;
      case '/latin':
        res.setHeader('x-latin', 'caf\u00e9 \u00ff'); // sent as UTF-8 bytes
        res.end('ok');
        break;
      default:
        res.statusCode = 404;
        res.end('not found');
    }
  });
}

function serve() {
  const server = http.createServer(handler);
  server.keepAliveTimeout = Number(process.argv[2] || 30000);
  server.headersTimeout = 60000;
  server.requestTimeout = 0;
  server.on('connection', (socket) => {
    socket.id = nextId++;
    socket.on('close', () => closed.add(socket.id));
  });
  return server;
}

const a = serve();
const b = serve();
a.listen(0, '127.0.0.1', () => {
  b.listen(0, '127.0.0.1', () => {
    console.log(a.address().port + ' ' + b.address().port);
  });
});
// The test process went away: so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
