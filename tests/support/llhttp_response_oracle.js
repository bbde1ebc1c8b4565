// Oracle for tests/http_client_differential.rs: Node's own HTTP client (llhttp, strict mode)
// parses raw HTTP/1.1 response streams served by a scripted server. Reads one case per line on
// stdin (`<method> <close> <hex bytes>`, as for tests/support/h11_response_oracle.py); writes
// one line per case, in order, in that oracle's canonical form. Reuse is observed as the test
// observes ours: after the response, a second request (`GET /again`) on the same keep-alive
// agent, and whether it arrived on the connection that served the case.
'use strict';
const http = require('http');
const net = require('net');

if ((process.execArgv.join(' ') + ' ' + (process.env.NODE_OPTIONS || ''))
    .includes('insecure-http-parser')) {
  console.error('--insecure-http-parser is set: not a strict oracle');
  process.exit(2);
}

const hx = (b) => (b.length ? Buffer.from(b).toString('hex') : '-');
const AGAIN = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nagain';
let cases = [];
const reused = new Map();

// Serves case `x-case` on a connection's first request; `/again` with that case's
// Content-Length-framed answer, noting whether it came on a connection that served the case.
const server = net.createServer((socket) => {
  let buf = Buffer.alloc(0);
  let served = null;
  socket.on('error', () => {});
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /x-case: (\d+)/i.exec(head);
      const len = /content-length: (\d+)/i.exec(head);
      const total = end + 4 + (len ? Number(len[1]) : 0);
      if (buf.length < total) return;
      buf = buf.subarray(total);
      const i = Number(m[1]);
      if (head.startsWith('GET /again')) {
        if (served === i) reused.set(i, true);
        socket.end(AGAIN);
        return;
      }
      served = i;
      if (cases[i].close) socket.end(cases[i].bytes);
      else socket.write(cases[i].bytes);
    }
  });
});

function canonical(res, body, reuse) {
  const fields = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    fields.push([Buffer.from(res.rawHeaders[i].toLowerCase(), 'latin1'),
      Buffer.from(res.rawHeaders[i + 1], 'latin1')]);
  }
  fields.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts = ['STATUS', String(res.statusCode)];
  for (const [n, v] of fields) parts.push(hx(n) + '=' + hx(v));
  parts.push('BODY', hx(body), 'REUSE', reuse ? 'yes' : 'no');
  return parts.join(' ');
}

function request(agent, i, method, path) {
  const headers = { 'x-case': String(i) };
  const opts = { host: '127.0.0.1', port: server.address().port, method, path, agent, headers,
    insecureHTTPParser: false };
  if (method === 'CONNECT') opts.path = '127.0.0.1:80';
  const req = http.request(opts);
  if (method === 'POST') req.end('x'); else req.end();
  return req;
}

function runCase(i) {
  const { method } = cases[i];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      resolve(outcome);
    };
    // A hang guard only (waiting for bytes that never come): the case then differs.
    const guard = setTimeout(() => { finish('PENDING'); agent.destroy(); }, 3000);
    const req = request(agent, i, method, '/');
    req.on('error', () => finish('ERROR'));
    req.on('connect', (res, socket) => {
      socket.destroy();
      finish(canonical(res, Buffer.alloc(0), false));
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => finish('ERROR'));
      res.on('error', () => finish('ERROR'));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        // Let the agent take the socket back (or drop it) before the second request.
        setImmediate(() => {
          const again = request(agent, i, 'GET', '/again');
          const end = () => { agent.destroy(); finish(canonical(res, body, reused.has(i))); };
          again.on('error', end);
          again.on('response', (r) => { r.resume(); r.on('end', end); r.on('error', end); });
        });
      });
    });
  });
}

server.listen(0, '127.0.0.1', async () => {
  cases = require('fs').readFileSync(0, 'latin1').split('\n').filter((l) => l.length)
    .map((l) => {
      const [method, close, data] = l.trim().split(' ');
      return { method, close: close === '1', bytes: data === '-' ? Buffer.alloc(0) : Buffer.from(data, 'hex') };
    });
  // In waves of 200, as the test runs ours: two sockets a case, within 1024 descriptors.
  const out = [];
  for (let start = 0; start < cases.length; start += 200) {
    const wave = cases.slice(start, start + 200).map((_, j) => runCase(start + j));
    out.push(...(await Promise.all(wave)));
  }
  process.stdout.write(out.join('\n') + '\n', () => process.exit(0));
});
