#!/usr/bin/env python3
"""A fault-injecting HTTP reverse proxy for the InitramfsPS registry tests (Python 3 stdlib only).

Listens on 127.0.0.1 and forwards every request (method, path, query, headers including Range
and Authorization, body) to --upstream (host:port, plain HTTP), and streams the answer back
(status, headers, body). The Host header is passed on unchanged, so URLs the registry builds
point back at the proxy.

Faults (--fault, a comma-separated list) apply to requests whose path matches --match (a
Python regex; default: blob URLs /v2/<name>/blobs/sha256:<hex>):

  none            pass everything through (a counting/logging proxy)
  <code>-<n>[:<ERROR_CODE>]
                  answer the first n matching requests (GET and HEAD) with status <code> and a
                  registry-style error body ({"errors":[{"code": ERROR_CODE, ...}]}; by default
                  the usual code for the status, e.g. DENIED for 403) instead of forwarding
                  them; n is once, twice, always or a number. 429 and 503 carry
                  `Retry-After: <--retry-after>` (omitted when --retry-after is negative).
                  E.g. 429-once, 503-twice, 503-always, 403-always, 404-always:NAME_UNKNOWN.
                  With --per-path the n counts per path instead of over all matching requests.
  drop-half       the first GET of each matching path: send the upstream status and headers (full
                  Content-Length), then half of the body, then shut the connection down (FIN) and
                  close it. Later requests (e.g. a `Range: bytes=N-` resume) pass through.
  drop-always     as drop-half, for every GET of a matching path (a resume too gets half of what
                  it asked for): a download that keeps dropping.
  reset-half      as drop-half but closes with a TCP reset (SO_LINGER 0) after 0.2 s.
  flip-byte       every GET of a matching path: flip (XOR 0xFF) the byte in the middle of the blob
                  (offset total_size // 2; within a 206 only when the range covers it); length kept.
  slow            stream matching GET bodies at --slow-rate bytes/s (widens race windows), in
                  pieces of at most --slow-rate bytes, so --slow-rate 1 sends one byte a second.
  cut-upload[-<n>]
                  the n-th (default: first) PATCH or PUT with a body of each matching path (use
                  --match, e.g. '/blobs/uploads/'): read half of the request body, forward nothing upstream,
                  and reset the connection (SO_LINGER 0): an upload cut mid-way, of which the
                  registry saw nothing. Later requests (the client asking the session's status,
                  and the resumed upload) pass through.
  redirect        answer matching GETs with `307 Temporary Redirect` to --redirect-to, where
                  {path} stands for the request's path and query (e.g. `/__redirect{path}`, or
                  `http://localhost:<port>{path}` for another host). A request for
                  /__redirect/<path> is forwarded upstream as /<path>, Authorization included,
                  without faults.

Every request is logged when it ends, one JSON object a line in <dir>/requests.jsonl:
  {"id", "t0", "t1" (epoch seconds, start/end), "method", "path", "query", "range" (Range header
   or null), "auth" (Authorization scheme only, never the credentials), "status" (what the
   client got), "upstream_status" (null when not forwarded), "fault" (what was injected or
   null), "bytes" (body bytes sent), "length" (Content-Length announced), "complete" (bool)}
GET /__proxy/log returns the same records as a JSON array; GET /__proxy/status returns
{"inflight": <requests being answered>, "records": <records logged>}; POST /__proxy/reset clears
the log and the fault counters.

When ready it writes <dir>/ready.json: {"port", "pid"}. It exits by itself when --parent-pid
dies or after --max-lifetime seconds.
"""

import argparse
import http.client
import itertools
import json
import lifetime
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
              'trailers', 'transfer-encoding', 'upgrade', 'proxy-connection'}
DEFAULT_MATCH = r'^/v2/.+/blobs/sha256:[0-9a-f]{64}$'
ERROR_CODES = {400: 'BAD_REQUEST', 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NOT_FOUND', 429: 'TOOMANYREQUESTS',
               500: 'UNKNOWN', 502: 'UNAVAILABLE', 503: 'UNAVAILABLE', 504: 'UNAVAILABLE'}
CHUNK = 16384


def parse_faults(spec):
    faults = []
    for item in [s.strip() for s in spec.split(',') if s.strip()]:
        m = re.fullmatch(r'(\d{3})-(once|twice|always|\d+)(?::([A-Z_]+))?', item)
        if m:
            n = {'once': 1, 'twice': 2, 'always': -1}.get(m.group(2))
            if n is None:
                n = int(m.group(2))
            faults.append(('status', (int(m.group(1)), m.group(3)), n))
        elif re.fullmatch(r'cut-upload(-\d+)?', item):
            faults.append(('cut-upload', int(item[len('cut-upload-'):]) if item != 'cut-upload' else 1, None))
        elif item in ('none', 'drop-half', 'drop-always', 'reset-half', 'flip-byte', 'slow', 'redirect'):
            if item != 'none':
                faults.append((item, None, None))
        else:
            raise SystemExit('unknown fault %r' % item)
    return faults


class State:
    def __init__(self, args):
        self.args = args
        self.faults = parse_faults(args.fault)
        self.match = re.compile(args.match)
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.log_path = os.path.join(args.dir, 'requests.jsonl')
        host, _, port = args.upstream.rpartition(':')
        self.up_host, self.up_port = host or '127.0.0.1', int(port)
        self.reset()

    def reset(self):
        with self.lock:
            self.inflight = 0
            self.records = []
            self.status_counts = {}      # key (path or '') -> matching requests answered with a fault status
            self.dropped = set()         # paths whose first GET was dropped
            self.bodies = {}             # path -> PATCH/PUT requests with a body seen (cut-upload)
            with open(self.log_path, 'w', encoding='utf-8'):
                pass

    def record(self, rec):
        with self.lock:
            self.records.append(rec)
            with open(self.log_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(rec) + '\n')

    def take_status_fault(self, path, method):
        """Returns the status to inject for this request, or None."""
        if method not in ('GET', 'HEAD'):
            return None
        with self.lock:
            for kind, code, n in self.faults:
                if kind != 'status':
                    continue
                key = path if self.args.per_path else ''
                used = self.status_counts.get(key, 0)
                if n < 0 or used < n:
                    self.status_counts[key] = used + 1
                    return code   # (status, error code or None)
        return None

    def take_drop(self, path, method):
        if method != 'GET':
            return None
        with self.lock:
            for kind, _, _ in self.faults:
                if kind == 'drop-always':
                    return kind
                if kind in ('drop-half', 'reset-half') and path not in self.dropped:
                    self.dropped.add(path)
                    return kind
        return None

    def take_cut(self, path, method):
        if method not in ('PATCH', 'PUT') or not self.has('cut-upload'):
            return False
        nth = next(n for k, n, _ in self.faults if k == 'cut-upload')
        with self.lock:
            seen = self.bodies.get(path, 0) + 1
            self.bodies[path] = seen
            return seen == nth

    def has(self, kind):
        return any(k == kind for k, _, _ in self.faults)


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'initramfsps-test-fault-proxy/1'
    state = None

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        # Answer a TLS handshake the way Go's net/http (docker-registry) does: with a plain
        # "HTTP/1.0 400". Without this, readline() would wait for a newline a ClientHello
        # may never contain. It is not an HTTP request, so it is not logged as one.
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b'\x16':
            try:
                self.connection.sendall(b'HTTP/1.0 400 Bad Request\r\n\r\nClient sent a TLS handshake to an HTTP server.\n')
            except OSError:
                pass
            self.close_connection = True
            return
        super().handle()

    # every method goes through one path
    def do_GET(self): self.proxy()
    def do_HEAD(self): self.proxy()
    def do_POST(self): self.proxy()
    def do_PUT(self): self.proxy()
    def do_PATCH(self): self.proxy()
    def do_DELETE(self): self.proxy()

    def read_request_body(self):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            parts = []
            while True:
                line = self.rfile.readline(65537).strip()
                size = int(line.split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b''.join(parts)
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length > 0 else None

    def local(self, url):
        st = self.state
        if url.path == '/__proxy/log' and self.command == 'GET':
            with st.lock:
                body = json.dumps(st.records).encode('utf-8')
        elif url.path == '/__proxy/status' and self.command == 'GET':
            with st.lock:
                body = json.dumps({'inflight': st.inflight, 'records': len(st.records)}).encode('utf-8')
        elif url.path == '/__proxy/reset' and self.command == 'POST':
            self.read_request_body()
            st.reset()
            body = b'{"reset": true}'
        else:
            body = b'{"error": "unknown proxy endpoint"}'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def proxy(self):
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith('/__proxy/'):
            return self.local(url)
        auth = self.headers.get('Authorization')
        rec = {'id': next(st.ids), 't0': time.time(), 't1': None, 'method': self.command, 'path': url.path,
               'query': url.query, 'range': self.headers.get('Range'),
               'auth': auth.split(' ', 1)[0] if auth else None, 'status': None, 'upstream_status': None,
               'fault': None, 'bytes': 0, 'length': None, 'complete': False}
        with st.lock:
            st.inflight += 1
        try:
            self.forward(url, rec)
        finally:
            rec['t1'] = time.time()
            st.record(rec)
            with st.lock:
                st.inflight = max(0, st.inflight - 1)

    def send_fault_status(self, fault, rec):
        code, errcode = fault
        body = json.dumps({'errors': [{'code': errcode or ERROR_CODES.get(code, 'UNKNOWN'),
                                       'message': 'injected by the test fault proxy (%d)' % code,
                                       'detail': None}]}).encode('utf-8')
        self.send_response(code)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Docker-Distribution-Api-Version', 'registry/2.0')
        if code in (429, 503) and self.state.args.retry_after >= 0:
            self.send_header('Retry-After', str(self.state.args.retry_after))
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)
            rec['bytes'] = len(body)
        rec['status'] = code
        rec['fault'] = str(code)
        rec['length'] = len(body)
        rec['complete'] = True

    def send_redirect(self, rec):
        target = self.state.args.redirect_to.replace('{path}', self.path)
        self.send_response(307)
        self.send_header('Location', target)
        self.send_header('Content-Length', '0')
        self.end_headers()
        rec['status'] = 307
        rec['fault'] = 'redirect'
        rec['length'] = 0
        rec['complete'] = True

    def forward(self, url, rec):
        st = self.state
        length = int(self.headers.get('Content-Length') or 0)
        if length > 0 and st.match.search(url.path) and st.take_cut(url.path, self.command):
            self.rfile.read(length // 2)
            rec['fault'] = 'cut-upload'
            rec['status'] = 0
            self.abort('reset-half')
            return
        body = self.read_request_body()
        if url.path.startswith('/__redirect/'):
            # the target of a same-host redirect: forwarded upstream without the prefix, no faults
            self.path = self.path[len('/__redirect'):]
            url = urllib.parse.urlsplit(self.path)
            matched = False
        else:
            matched = bool(st.match.search(url.path))
        if matched:
            code = st.take_status_fault(url.path, self.command)
            if code is not None:
                return self.send_fault_status(code, rec)
            if self.command == 'GET' and st.has('redirect'):
                return self.send_redirect(rec)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != 'content-length']
        if body is not None:
            headers.append(('Content-Length', str(len(body))))
        conn = http.client.HTTPConnection(st.up_host, st.up_port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            msg = ('upstream unreachable: %s' % e).encode('utf-8')
            self.send_response(502)
            self.send_header('Content-Length', str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            rec['status'] = 502
            rec['fault'] = 'upstream-error'
            return
        try:
            self.relay(resp, url, rec, matched)
        finally:
            conn.close()

    def relay(self, resp, url, rec, matched):
        st = self.state
        rec['upstream_status'] = resp.status
        rec['status'] = resp.status
        length = resp.getheader('Content-Length')
        length = int(length) if length is not None else None
        rec['length'] = length
        no_body = self.command == 'HEAD' or resp.status in (204, 304) or 100 <= resp.status < 200
        drop = None
        flip_at = None
        slow = False
        if matched and self.command == 'GET' and resp.status in (200, 206) and not no_body:
            drop = st.take_drop(url.path, self.command)
            if st.has('flip-byte'):
                flip_at = self.flip_offset(resp, length)
            slow = st.has('slow')

        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        chunked = False
        if not no_body and length is None:
            chunked = True
            self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        if no_body:
            rec['complete'] = True
            return

        limit = None
        if drop:
            limit = (length or 0) // 2
            if drop == 'drop-always':
                drop = 'drop-half'
                rec['fault'] = 'drop-always'
            rec['fault'] = rec['fault'] or drop
        elif flip_at is not None:
            rec['fault'] = 'flip-byte@%d' % flip_at
        elif slow:
            rec['fault'] = 'slow'
        sent = 0
        while True:
            want = min(CHUNK, max(1, st.args.slow_rate)) if slow else CHUNK
            if limit is not None:
                want = min(want, limit - sent)
                if want <= 0:
                    break
            data = resp.read(want)
            if not data:
                break
            if flip_at is not None and sent <= flip_at < sent + len(data):
                b = bytearray(data)
                b[flip_at - sent] ^= 0xFF
                data = bytes(b)
            if chunked:
                self.wfile.write(b'%x\r\n' % len(data) + data + b'\r\n')
            else:
                self.wfile.write(data)
            sent += len(data)
            rec['bytes'] = sent
            if slow:
                self.wfile.flush()
                time.sleep(len(data) / float(st.args.slow_rate))
        if drop:
            self.wfile.flush()
            self.abort(drop)
            return
        if chunked:
            self.wfile.write(b'0\r\n\r\n')
        self.wfile.flush()
        rec['complete'] = True

    def flip_offset(self, resp, length):
        """Offset within this response's body of the byte to flip, or None."""
        if resp.status == 200:
            return length // 2 if length else None
        m = re.fullmatch(r'bytes (\d+)-(\d+)/(\d+)', (resp.getheader('Content-Range') or '').strip())
        if not m:
            return None
        start, end, total = (int(x) for x in m.groups())
        mid = total // 2
        return mid - start if start <= mid <= end else None

    def abort(self, kind):
        self.close_connection = True
        sock = self.connection
        try:
            if kind == 'reset-half':
                time.sleep(0.2)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.wfile.close()
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that goes away mid-answer is normal here (and so are our own aborts).
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--upstream', required=True, help='host:port of the registry (plain HTTP)')
    p.add_argument('--dir', required=True, help='work directory: ready.json, requests.jsonl')
    p.add_argument('--fault', default='none')
    p.add_argument('--match', default=DEFAULT_MATCH, help='regex on the request path selecting where faults apply')
    p.add_argument('--per-path', action='store_true', help='count <code>-<n> faults per path')
    p.add_argument('--retry-after', type=int, default=1)
    p.add_argument('--slow-rate', type=int, default=1 << 20, help='bytes per second for the slow fault')
    p.add_argument('--redirect-to', default='/__redirect{path}', help='Location of the redirect fault; {path} is the request path')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--parent-pid', type=int, default=0)
    p.add_argument('--max-lifetime', type=float, default=1800)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    Handler.state = State(args)
    server = Server(('127.0.0.1', args.port), Handler)
    lifetime.announce_and_serve(server, args.dir, args.parent_pid, args.max_lifetime)


if __name__ == '__main__':
    sys.exit(main())
