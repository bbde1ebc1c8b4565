// Oracle for tests/http_differential.rs: Node's own HTTP server (llhttp, strict mode) parses
// raw HTTP/1.1 request streams. Reads one case per line on stdin (raw bytes in hex); writes one
// line per case, in order, in the canonical form of tests/support/h11_oracle.py.
'use strict';
const http = require('http');
const net = require('net');

if (http.globalAgent && (process.execArgv.join(' ') + ' ' + (process.env.NODE_OPTIONS || ''))
    .includes('insecure-http-parser')) {
  console.error('--insecure-http-parser is set: not a strict oracle');
  process.exit(2);
}

const hx = (b) => (b.length ? Buffer.from(b).toString('hex') : '-');
const logs = new Map();

function canonical(req, chunks) {
    const fields = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      fields.push([Buffer.from(req.rawHeaders[i].toLowerCase(), 'latin1'),
        Buffer.from(req.rawHeaders[i + 1], 'latin1')]);
    }
    fields.sort((a, b) => Buffer.compare(a[0], b[0]));
    const parts = ['REQ', hx(Buffer.from(req.method, 'latin1')), hx(Buffer.from(req.url, 'latin1')),
      hx(Buffer.from('HTTP/' + req.httpVersion, 'latin1'))];
    for (const [n, v] of fields) parts.push(hx(n) + '=' + hx(v));
    parts.push('BODY', hx(Buffer.concat(chunks)), ';');
    return parts.join(' ');
}

const server = http.createServer({ insecureHTTPParser: false }, (req, res) => {
  const log = logs.get(req.socket.remotePort);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  log.inBody = true;
  // After a parse error (`clientError`, which comes first) the request is aborted too.
  req.on('aborted', () => { if (log.end === 'clean') log.end = 'incomplete'; });
  req.on('error', () => { if (log.end === 'clean') log.end = 'incomplete'; });
  req.on('end', () => {
    log.inBody = false;
    log.reqs.push(canonical(req, chunks));
    res.setHeader('content-length', '0');
    res.end();
  });
});
// CONNECT leaves the HTTP parser (Node emits it apart): logged, answered, closed.
server.on('connect', (req, socket) => {
  logs.get(socket.remotePort).reqs.push(canonical(req, []));
  socket.on('error', () => {});
  socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
});
server.on('connection', (socket) => {
  logs.set(socket.remotePort, { reqs: [], end: 'clean', inBody: false });
});
server.on('clientError', (err, socket) => {
  const log = logs.get(socket.remotePort);
  // EOF inside a body is an incomplete message; inside a head, a clean end (as for h11).
  if (log && err.code === 'HPE_INVALID_EOF_STATE') log.end = log.inBody ? 'incomplete' : 'clean';
  else if (log) log.end = 'reject';
  socket.destroy();
});
server.keepAliveTimeout = 0;

function runCase(data) {
  return new Promise((resolve) => {
    const client = net.connect(server.address().port, '127.0.0.1', () => {
      const port = client.localPort;
      const got = [];
      client.on('data', (c) => got.push(c));
      client.on('error', () => {});
      // A hang guard only (Node waiting for bytes that never come): the case then differs.
      const guard = setTimeout(() => { hung = true; client.destroy(); }, 3000);
      let hung = false;
      client.on('close', () => {
        clearTimeout(guard);
        // The server's side may log after the client saw the close; give it a turn.
        setImmediate(() => {
          const log = logs.get(port) || { reqs: [], end: 'clean' };
          logs.delete(port);
          // A rejection Node answers itself (a missing Host: 400) reaches no handler.
          const statuses = Buffer.concat(got).toString('latin1').match(/HTTP\/1\.1 \d\d\d/g) || [];
          if (statuses.some((s) => !s.endsWith(' 200') && !s.endsWith(' 100'))) log.end = 'reject';
          if (hung) log.end = 'hung';
          resolve(log.reqs.concat(['END', log.end]).join(' '));
        });
      });
      client.end(data);
    });
  });
}

server.listen(0, '127.0.0.1', async () => {
  const input = require('fs').readFileSync(0, 'latin1').split('\n').filter((l) => l.length);
  // All at once: each case has its own connection.
  const out = await Promise.all(input.map((line) => runCase(Buffer.from(line.trim(), 'hex'))));
  // Exit once written: writes to a pipe are asynchronous.
  process.stdout.write(out.join('\n') + '\n', () => process.exit(0));
});
