#!/usr/bin/env python3
"""A misbehaving OCI registry for the InitramfsPS hardening tests (Python 3 standard library only).

Listens on 127.0.0.1 and serves one small image of its own (a config and one tar+gzip layer
holding /init) under any repository name, with the misbehaviour that the repository's last
path component names (`/v2/rogue/<behaviour>/manifests/<tag>`). It does what no proxy in
front of a real registry can: echo the request's Authorization header back, hang, stream
forever, point a Bearer challenge at a realm that is not HTTP.

Credentials: --user/--password (Basic) and --token (the Bearer token /token issues to that
user). Behaviours marked [basic] demand `Authorization: Basic` with those credentials (a 401
`WWW-Authenticate: Basic` otherwise); [bearer] demand `Authorization: Bearer <token>` (a 401
Bearer challenge whose realm is this server's /token otherwise); the rest need nothing.

  ok                 [basic]  the image, nothing wrong (a control)
  echo-body          [basic]  manifests: 400 whose JSON body echoes the Authorization header in
                              the error's code, message and detail, plain, quoted, JSON-escaped
                              (`\\/`, `\\u002b`) and split across a line break
  echo-reason        [basic]  manifests: 503 (Retry-After: 0) whose reason phrase echoes it
  echo-challenge     [basic]  manifests: the image; blobs: 401 with a Bearer challenge whose realm
                              path and error_description echo it; that realm (/token/...) then
                              answers 400 with the header echoed in its body and reason phrase
  echo-denied        [basic]  manifests: 401 with a Basic challenge whose error_description echoes
                              it (the credentials were sent, and refused)
  echo-token         [bearer] manifests: 400, the header (Bearer <token>) echoed in the body and
                              the reason phrase
  echo-token-error   [bearer] the token service answers 400, echoing the Basic header in its
                              body and reason phrase
  hang                        manifests: read the request, never answer (until the client leaves)
  token-hang         [bearer] the token service never answers
  endless-manifest            manifests: 200 and a body that never ends
  endless-token      [bearer] the token service: 200 and a body that never ends
  endless-error               manifests: 400 and a body that never ends
  huge-length                 manifests: 200 announcing Content-Length 1 GiB, then a trickle
  big-config                  a manifest whose config descriptor says 64 MiB; the config: endless
  newline-digest              a manifest whose layer digest ends in a newline
  realm-file         [bearer] a Bearer challenge with realm file:///etc/passwd
  realm-ftp          [bearer] a Bearer challenge with realm ftp://127.0.0.1:<port>/token
  realm-tls          [bearer] a Bearer challenge with realm https://127.0.0.1:<tls port>/token,
                              served with a self-signed certificate no client trusts

Endless bodies stop after --endless-cap bytes (then the connection is closed), so a client
that reads them whole cannot take the machine's memory.

Every request is logged when it ends, one JSON object a line in <dir>/requests.jsonl:
  {"id", "t0", "t1", "method", "path", "behaviour", "auth" (scheme only), "status", "bytes"
   (body bytes sent), "complete"}
GET /__rogue/status returns {"inflight": N, "records": N}.

When ready it writes <dir>/ready.json: {"port", "pid", "tls_port", "stalled_port"}. stalled_port
is a listening socket whose accept queue is full: a connection to it is never established (the
kernel drops the SYN), so a client's connect hangs. It exits by itself when --parent-pid dies
or after --max-lifetime seconds.
"""

import argparse
import base64
import gzip
import hashlib
import io
import itertools
import json
import lifetime
import os
import select
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASIC = {'ok', 'echo-body', 'echo-reason', 'echo-challenge', 'echo-denied'}
BEARER = {'echo-token', 'echo-token-error', 'token-hang', 'endless-token', 'realm-file', 'realm-ftp', 'realm-tls'}
CHUNK = 65536


def sha256(b):
    return 'sha256:' + hashlib.sha256(b).hexdigest()


def make_image():
    """(config bytes, layer bytes): a config and a tar+gzip layer with an executable /init."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode='w', format=tarfile.PAX_FORMAT) as t:
        data = b'#!/bin/sh\necho rogue\n'
        info = tarfile.TarInfo('init')
        info.size, info.mode, info.mtime = len(data), 0o755, 1700000000
        t.addfile(info, io.BytesIO(data))
    raw = tar.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps({
        'architecture': 'amd64', 'os': 'linux',
        'config': {'Entrypoint': ['/init']},
        'rootfs': {'type': 'layers', 'diff_ids': [sha256(raw)]},
    }, sort_keys=True).encode()
    return config, layer


def manifest(config, layer, config_size=None, layer_digest=None):
    return json.dumps({
        'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': sha256(config),
                   'size': config_size if config_size is not None else len(config)},
        'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip',
                    'digest': layer_digest or sha256(layer), 'size': len(layer)}],
    }).encode()


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.inflight = 0
        self.records = 0
        self.log_path = os.path.join(args.dir, 'requests.jsonl')
        open(self.log_path, 'w').close()
        self.config, self.layer = make_image()
        self.port = 0
        self.tls_port = 0

    def record(self, rec):
        with self.lock:
            self.records += 1
            with open(self.log_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(rec) + '\n')


def echo_variants(header):
    """The header as a careless server might repeat it: plain, quoted, JSON-escaped, split."""
    escaped = header.replace('/', '\\/').replace('+', '\\u002b')
    half = len(header) // 2 + 3
    return [header, '"%s"' % header, escaped, header[:half] + '\n' + header[half:]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'initramfsps-test-rogue-registry/1'
    state = None

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        if url.path == '/__rogue/status':
            with st.lock:
                body = json.dumps({'inflight': st.inflight, 'records': st.records}).encode()
            return self.send(200, body)
        auth = self.headers.get('Authorization')
        self.rec = {'id': next(st.ids), 't0': time.time(), 't1': None, 'method': self.command, 'path': url.path,
                    'behaviour': None, 'auth': auth.split(' ', 1)[0] if auth else None, 'status': None,
                    'bytes': 0, 'complete': False}
        with st.lock:
            st.inflight += 1
        try:
            self.route(url, auth)
        except (ConnectionError, BrokenPipeError, socket.timeout, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            self.rec['t1'] = time.time()
            st.record(self.rec)
            with st.lock:
                st.inflight = max(0, st.inflight - 1)

    do_HEAD = do_GET

    # ------------------------------------------------------------------ answers

    def send(self, code, body, headers=None, reason=None, content_type='application/json'):
        self.send_response_only(code, reason)
        self.send_header('Server', self.server_version)
        self.send_header('Date', self.date_time_string())
        self.send_header('Content-Type', content_type)
        self.send_header('Docker-Distribution-Api-Version', 'registry/2.0')
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)
            if hasattr(self, 'rec'):
                self.rec['bytes'] = len(body)
        if hasattr(self, 'rec'):
            self.rec['status'] = code
            self.rec['complete'] = True

    def error_body(self, code, message, detail=None):
        return json.dumps({'errors': [{'code': code, 'message': message, 'detail': detail}]}).encode()

    def echo_body(self, header):
        v = echo_variants(header)
        # written by hand so the JSON-escaped form stays escaped on the wire
        return ('{"errors":[{"code":%s,"message":%s,"detail":{"authorization":%s,"escaped":"%s","split":%s}}]}' % (
            json.dumps(header), json.dumps('request rejected: Authorization: ' + v[1]), json.dumps(header),
            v[2].replace('"', '\\"'), json.dumps(v[3]))).encode()

    def challenge_basic(self):
        body = self.error_body('UNAUTHORIZED', 'authentication required')
        self.send(401, body, {'WWW-Authenticate': 'Basic realm="rogue"'})

    def challenge_bearer(self, behaviour, repo):
        st = self.state
        realm = {
            'realm-file': 'file:///etc/passwd',
            'realm-ftp': 'ftp://127.0.0.1:%d/token' % st.port,
            'realm-tls': 'https://127.0.0.1:%d/token' % st.tls_port,
        }.get(behaviour, 'http://127.0.0.1:%d/token' % st.port)
        body = self.error_body('UNAUTHORIZED', 'authentication required')
        self.send(401, body, {'WWW-Authenticate': 'Bearer realm="%s",service="rogue",scope="repository:%s:pull"' % (realm, repo)})

    def endless(self, code, prefix, reason=None):
        """A chunked body that never ends (until --endless-cap bytes, then the connection closes)."""
        self.send_response_only(code, reason)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        self.rec['status'] = code
        filler = b'a' * CHUNK
        data = prefix + filler[len(prefix):]
        sent = 0
        while sent < self.state.args.endless_cap:
            self.wfile.write(b'%x\r\n' % len(data) + data + b'\r\n')
            sent += len(data)
            self.rec['bytes'] = sent
            data = filler
        self.close_connection = True

    def hang(self):
        """Never answer; return when the client closes the connection."""
        self.close_connection = True
        deadline = time.monotonic() + self.state.args.max_lifetime
        sock = self.connection
        while time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], 0.5)
            if r:
                try:
                    if not sock.recv(4096):
                        return
                except OSError:
                    return

    # ------------------------------------------------------------------ routing

    def route(self, url, auth):
        st = self.state
        a = st.args
        path = url.path
        if path == '/token' or path.startswith('/token/'):
            return self.token(url, auth)
        if not path.startswith('/v2/'):
            return self.send(404, self.error_body('NOT_FOUND', 'no such endpoint'))
        rest = path[len('/v2/'):]
        kind = None
        for k in ('/manifests/', '/blobs/', '/tags/'):
            if k in rest:
                kind = k.strip('/')
                repo, ref = rest.split(k, 1)
                break
        if kind is None:
            return self.send(200, b'{}')
        behaviour = repo.rsplit('/', 1)[-1]
        self.rec['behaviour'] = behaviour
        basic = 'Basic ' + base64.b64encode(('%s:%s' % (a.user, a.password)).encode()).decode()
        if behaviour in BASIC and auth != basic:
            return self.challenge_basic()
        if behaviour in BEARER and auth != 'Bearer ' + a.token:
            return self.challenge_bearer(behaviour, repo)

        config, layer = st.config, st.layer
        if kind == 'manifests':
            if behaviour == 'echo-body':
                return self.send(400, self.echo_body(auth))
            if behaviour == 'echo-reason':
                return self.send(503, self.error_body('UNAVAILABLE', 'try again'), {'Retry-After': '0'},
                                 reason='Unavailable for %s' % auth)
            if behaviour == 'echo-denied':
                return self.send(401, self.error_body('UNAUTHORIZED', 'refused'), {
                    'WWW-Authenticate': 'Basic realm="rogue",error="invalid_credentials",error_description="%s is refused"' % auth})
            if behaviour == 'echo-token':
                return self.send(400, self.echo_body(auth), reason='Bad token %s' % auth)
            if behaviour == 'hang':
                return self.hang()
            if behaviour == 'endless-manifest':
                return self.endless(200, b'{"schemaVersion":2,"x":"')
            if behaviour == 'endless-error':
                return self.endless(400, b'{"errors":[{"code":"DENIED","message":"')
            if behaviour == 'huge-length':
                self.send_response_only(200)
                self.send_header('Content-Type', 'application/vnd.oci.image.manifest.v1+json')
                self.send_header('Content-Length', str(1 << 30))
                self.end_headers()
                self.rec['status'] = 200
                self.close_connection = True
                for _ in range(60):
                    self.wfile.write(b' ')
                    self.wfile.flush()
                    self.rec['bytes'] += 1
                    time.sleep(0.5)
                return
            if behaviour == 'big-config':
                body = manifest(config, layer, config_size=64 << 20)
            elif behaviour == 'newline-digest':
                body = manifest(config, layer, layer_digest=sha256(layer) + '\n')
            else:
                body = manifest(config, layer)
            return self.send(200, body, {'Docker-Content-Digest': sha256(body)},
                             content_type='application/vnd.oci.image.manifest.v1+json')
        if kind == 'blobs':
            if behaviour == 'echo-challenge':
                quoted = urllib.parse.quote(auth, safe='')
                return self.send(401, self.error_body('UNAUTHORIZED', 'token required'), {
                    'WWW-Authenticate': 'Bearer realm="http://127.0.0.1:%d/token/%s",service="rogue",error="invalid_token",'
                                        'error_description="the credentials %s are not accepted here"' % (st.port, quoted, auth)})
            if behaviour == 'big-config' and ref == sha256(config):
                return self.endless(200, b'{')
            if ref == sha256(config):
                return self.send(200, config, content_type='application/octet-stream')
            if ref == sha256(layer):
                return self.send(200, layer, content_type='application/octet-stream')
            return self.send(404, self.error_body('BLOB_UNKNOWN', 'blob unknown'))
        return self.send(200, json.dumps({'name': repo, 'tags': ['1.0']}).encode())

    def token(self, url, auth):
        a = self.state.args
        q = urllib.parse.parse_qs(url.query)
        scope = (q.get('scope') or [''])[0]
        behaviour = scope.split(':')[1].rsplit('/', 1)[-1] if scope.count(':') >= 2 else ''
        if url.path.startswith('/token/'):
            behaviour = 'echo-challenge'
        self.rec['behaviour'] = 'token:' + behaviour
        if behaviour == 'echo-challenge':
            return self.send(400, self.echo_body(auth or ''), reason='Bad request from %s' % auth)
        if behaviour == 'echo-token-error':
            return self.send(400, self.echo_body(auth or ''), reason='Not for %s' % auth)
        if behaviour == 'token-hang':
            return self.hang()
        if behaviour == 'endless-token':
            return self.endless(200, b'{"token":"')
        basic = 'Basic ' + base64.b64encode(('%s:%s' % (a.user, a.password)).encode()).decode()
        if auth != basic:
            return self.send(401, self.error_body('UNAUTHORIZED', 'bad credentials'))
        return self.send(200, json.dumps({'token': a.token, 'expires_in': 300}).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, ssl.SSLError, OSError)):
            return
        super().handle_error(request, client_address)


def self_signed(directory):
    cert, key = os.path.join(directory, 'tls-cert.pem'), os.path.join(directory, 'tls-key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
                    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dir', required=True)
    p.add_argument('--user', default='rogue-user')
    p.add_argument('--password', default='rogue-password')
    p.add_argument('--token', default='rogue-token')
    p.add_argument('--endless-cap', type=int, default=256 << 20)
    p.add_argument('--parent-pid', type=int, default=0)
    p.add_argument('--max-lifetime', type=float, default=1800)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    state = State(args)
    Handler.state = state
    server = Server(('127.0.0.1', 0), Handler)
    state.port = server.server_address[1]

    # the same handler behind TLS with a certificate no client trusts
    cert, key = self_signed(args.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls = Server(('127.0.0.1', 0), Handler)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    state.tls_port = tls.server_address[1]

    # a listener whose accept queue is full: further connects are never established
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.bind(('127.0.0.1', 0))
    stalled.listen(0)
    stalled_port = stalled.getsockname()[1]
    filler = socket.create_connection(('127.0.0.1', stalled_port), timeout=5)

    lifetime.exit_with_parent(args.parent_pid, args.max_lifetime)
    threading.Thread(target=tls.serve_forever, kwargs={'poll_interval': 0.2}, daemon=True).start()
    tmp = os.path.join(args.dir, 'ready.json.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump({'port': state.port, 'pid': os.getpid(), 'tls_port': state.tls_port, 'stalled_port': stalled_port}, f)
    os.replace(tmp, os.path.join(args.dir, 'ready.json'))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    filler.close()
    stalled.close()


if __name__ == '__main__':
    sys.exit(main())
