#!/usr/bin/env python3
"""A small OCI registry with the referrers API, for the InitramfsPS tests (Python 3 stdlib only).

docker-registry 2.8, which the other tests run, predates OCI 1.1: it has no referrers API and
ignores a manifest's `subject`. This server implements the subset of the distribution spec
(v1.1) that Publish-Initramfs, Save-Initramfs and Find-Initramfs use, with the referrers API:

  GET  /v2/                                     200 {}
  HEAD|GET /v2/<name>/blobs/<digest>            200 (body on GET, Range requests answered 206) | 404 BLOB_UNKNOWN
  POST /v2/<name>/blobs/uploads/                202, Location of a session
       ?mount=<digest>&from=<repo>              201 when <repo> has the blob, else 202 (a session)
       ?digest=<digest> with a body             201 (monolithic POST)
  PATCH <session> (Content-Range optional)      202, Range 0-<last>; a Content-Range that does not
                                                start at the session's size is 416
  PUT  <session>?digest=<digest> [body]         201, Docker-Content-Digest | 400 DIGEST_INVALID
  GET  <session>                                204, Range 0-<last> | 404 BLOB_UPLOAD_UNKNOWN
  PUT  /v2/<name>/manifests/<tag|digest>        201, Docker-Content-Digest; every blob and manifest
                                                it names (config, layers, index entries) must be
                                                in <name> (400 MANIFEST_BLOB_UNKNOWN); with a
                                                `subject`: the `OCI-Subject: <digest>` header
  HEAD|GET /v2/<name>/manifests/<tag|digest>    200 with its Content-Type | 404 MANIFEST_UNKNOWN
  GET  /v2/<name>/referrers/<digest>            200 an OCI image index of the manifests in <name>
       [?artifactType=<type>]                   whose subject is <digest> (each descriptor with
                                                artifactType and annotations); with the filter,
                                                `OCI-Filters-Applied: artifactType`
  GET  /v2/<name>/tags/list                     200 {"name", "tags"}
  DELETE /v2/<name>/manifests/<digest>          202

Storage is in memory. Upload bodies are capped by --max-blob (413 past it).

--hostile makes it misbehave, for the tests of a client's bounds:
  endless-manifest     every manifest GET: 200 and a body that never ends (stopped after
                       --endless-cap bytes, then the connection is closed)
  endless-upload-error every POST to /blobs/uploads/: 400 and a body that never ends
  foreign-location     every POST to /blobs/uploads/: 202 with a Location on another host

Every request is logged when it ends, one JSON object a line in <dir>/requests.jsonl:
  {"id", "t0", "t1", "method", "path", "query", "status", "bytes_in" (request body bytes read),
   "bytes_out" (response body bytes), "auth" (Authorization scheme only)}
GET /__registry/status returns {"inflight", "records"}; POST /__registry/reset clears the log.

When ready it writes <dir>/ready.json: {"port", "pid"}. It exits by itself when --parent-pid
dies or after --max-lifetime seconds.
"""

import argparse
import hashlib
import itertools
import json
import lifetime
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = r'(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)'
DIGEST = r'(?P<digest>sha256:[0-9a-f]{64})'
REF = r'(?P<ref>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64})'
ROUTES = [
    ('blob', re.compile(r'^/v2/' + NAME + r'/blobs/' + DIGEST + r'$')),
    ('uploads', re.compile(r'^/v2/' + NAME + r'/blobs/uploads/?$')),
    ('session', re.compile(r'^/v2/' + NAME + r'/blobs/uploads/(?P<id>[0-9a-f-]{36})$')),
    ('manifest', re.compile(r'^/v2/' + NAME + r'/manifests/' + REF + r'$')),
    ('referrers', re.compile(r'^/v2/' + NAME + r'/referrers/' + DIGEST + r'$')),
    ('tags', re.compile(r'^/v2/' + NAME + r'/tags/list$')),
]
INDEX = 'application/vnd.oci.image.index.v1+json'
MANIFEST = 'application/vnd.oci.image.manifest.v1+json'


class Store:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.blobs = {}          # digest -> bytes
        self.repo_blobs = {}     # repo -> set(digest)
        self.manifests = {}      # digest -> (media type, bytes)
        self.repo_manifests = {} # repo -> set(digest)
        self.tags = {}           # repo -> {tag: digest}
        self.sessions = {}       # id -> {"repo", "data": bytearray}
        self.ids = itertools.count(1)
        self.log_path = os.path.join(args.dir, 'requests.jsonl')
        self.inflight = 0
        self.records = 0
        open(self.log_path, 'w', encoding='utf-8').close()

    def record(self, rec):
        with self.lock:
            self.records += 1
            with open(self.log_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(rec) + '\n')

    def reset_log(self):
        with self.lock:
            self.records = 0
            open(self.log_path, 'w', encoding='utf-8').close()


def sha256(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'initramfsps-test-referrers-registry/1'
    store = None

    def log_message(self, fmt, *args):
        pass

    def do_GET(self): self.dispatch()
    def do_HEAD(self): self.dispatch()
    def do_POST(self): self.dispatch()
    def do_PUT(self): self.dispatch()
    def do_PATCH(self): self.dispatch()
    def do_DELETE(self): self.dispatch()

    # --- plumbing ---

    def dispatch(self):
        st = self.store
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get('Authorization')
        self.rec = {'id': next(st.ids), 't0': time.time(), 't1': None, 'method': self.command, 'path': url.path,
                    'query': url.query, 'status': None, 'bytes_in': 0, 'bytes_out': 0,
                    'auth': auth.split(' ', 1)[0] if auth else None}
        if url.path.startswith('/__registry/'):
            return self.local(url.path)
        with st.lock:
            st.inflight += 1
        try:
            self.route(url.path)
        except ConnectionError:
            self.close_connection = True
        finally:
            self.rec['t1'] = time.time()
            st.record(self.rec)
            with st.lock:
                st.inflight = max(0, st.inflight - 1)

    def local(self, path):
        st = self.store
        if path == '/__registry/status':
            with st.lock:
                body = {'inflight': st.inflight, 'records': st.records}
        elif path == '/__registry/reset' and self.command == 'POST':
            self.body()
            st.reset_log()
            body = {'reset': True}
        else:
            body = {'error': 'unknown endpoint'}
        self.send_json(200, body, log=False)

    def body(self):
        if 'chunked' in (self.headers.get('Transfer-Encoding') or '').lower():
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline(65537).strip().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    break
                total += size
                if total > self.store.args.max_blob:
                    raise TooLarge()
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            data = b''.join(parts)
            self.rec['bytes_in'] += len(data)
            return data
        length = int(self.headers.get('Content-Length') or 0)
        if length > self.store.args.max_blob:
            raise TooLarge()
        data = self.rfile.read(length) if length > 0 else b''
        if len(data) != length:
            raise ConnectionError('body cut short')
        self.rec['bytes_in'] += len(data)
        return data

    def send(self, status, body=b'', headers=None, log=True):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('Docker-Distribution-Api-Version', 'registry/2.0')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD' and body:
            self.wfile.write(body)
        if log:
            self.rec['status'] = status
            self.rec['bytes_out'] = len(body) if self.command != 'HEAD' else 0

    def send_json(self, status, obj, headers=None, log=True):
        h = {'Content-Type': 'application/json'}
        h.update(headers or {})
        self.send(status, json.dumps(obj).encode('utf-8'), h, log)

    def error(self, status, code, message):
        self.send_json(status, {'errors': [{'code': code, 'message': message, 'detail': None}]})

    def route(self, path):
        if path in ('/v2/', '/v2'):
            return self.send_json(200, {})
        for kind, rx in ROUTES:
            m = rx.match(path)
            if m:
                try:
                    return getattr(self, kind)(**m.groupdict())
                except TooLarge:
                    self.close_connection = True
                    return self.error(413, 'SIZE_INVALID', 'the body is larger than --max-blob')
        self.error(404, 'NOT_FOUND', 'no such endpoint')

    def session_url(self, name, sid):
        return '/v2/%s/blobs/uploads/%s' % (name, sid)

    def has_blob(self, name, digest):
        with self.store.lock:
            return digest in self.store.repo_blobs.get(name, set())

    def add_blob(self, name, digest, data):
        with self.store.lock:
            self.store.blobs[digest] = bytes(data)
            self.store.repo_blobs.setdefault(name, set()).add(digest)

    # --- blobs ---

    def blob(self, name, digest):
        if self.command == 'DELETE':
            with self.store.lock:
                self.store.repo_blobs.get(name, set()).discard(digest)
            return self.send(202)
        if self.command not in ('GET', 'HEAD'):
            return self.error(405, 'UNSUPPORTED', 'method not allowed')
        if not self.has_blob(name, digest):
            return self.error(404, 'BLOB_UNKNOWN', 'blob unknown to registry')
        data = self.store.blobs[digest]
        headers = {'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest}
        rng = re.fullmatch(r'bytes=(\d+)-(\d*)', self.headers.get('Range') or '')
        if rng and int(rng.group(1)) < len(data):
            start = int(rng.group(1))
            end = int(rng.group(2)) if rng.group(2) else len(data) - 1
            headers['Content-Range'] = 'bytes %d-%d/%d' % (start, end, len(data))
            return self.send(206, data[start:end + 1], headers)
        return self.send(200, data, headers)

    def endless(self, status):
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.rec['status'] = status
        chunk = b'{"errors":[' * 4096
        sent = 0
        try:
            while sent < self.store.args.endless_cap:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        self.rec['bytes_out'] = sent
        self.close_connection = True

    def uploads(self, name):
        if self.command != 'POST':
            return self.error(405, 'UNSUPPORTED', 'method not allowed')
        data = self.body()
        hostile = self.store.args.hostile
        if hostile == 'endless-upload-error':
            return self.endless(400)
        if hostile == 'foreign-location':
            return self.send(202, headers={'Location': 'http://127.0.0.2:%d/v2/%s/blobs/uploads/%s' % (self.server.server_address[1], name, uuid.uuid4())})
        mount = (self.query.get('mount') or [None])[0]
        source = (self.query.get('from') or [None])[0]
        if mount and source and self.has_blob(source, mount):
            self.add_blob(name, mount, self.store.blobs[mount])
            return self.send(201, headers={'Location': '/v2/%s/blobs/%s' % (name, mount), 'Docker-Content-Digest': mount})
        digest = (self.query.get('digest') or [None])[0]
        if digest and not mount:
            if sha256(data) != digest:
                return self.error(400, 'DIGEST_INVALID', 'provided digest did not match uploaded content')
            self.add_blob(name, digest, data)
            return self.send(201, headers={'Location': '/v2/%s/blobs/%s' % (name, digest), 'Docker-Content-Digest': digest})
        sid = str(uuid.uuid4())
        with self.store.lock:
            self.store.sessions[sid] = {'repo': name, 'data': bytearray()}
        self.send(202, headers={'Location': self.session_url(name, sid), 'Range': '0-0', 'Docker-Upload-UUID': sid})

    def session(self, name, id):
        with self.store.lock:
            s = self.store.sessions.get(id)
        if s is None or s['repo'] != name:
            if self.command in ('PATCH', 'PUT'):
                self.body()
            return self.error(404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
        headers = {'Location': self.session_url(name, id), 'Docker-Upload-UUID': id}
        if self.command == 'GET':
            headers['Range'] = '0-%d' % max(0, len(s['data']) - 1)
            return self.send(204, headers=headers)
        if self.command == 'DELETE':
            with self.store.lock:
                self.store.sessions.pop(id, None)
            return self.send(204)
        cr = re.fullmatch(r'(\d+)-(\d+)', self.headers.get('Content-Range') or '')
        if cr and int(cr.group(1)) != len(s['data']):
            self.body()
            headers['Range'] = '0-%d' % max(0, len(s['data']) - 1)
            return self.send(416, headers=headers)
        data = self.body()
        if len(s['data']) + len(data) > self.store.args.max_blob:
            return self.error(413, 'SIZE_INVALID', 'the blob is larger than --max-blob')
        s['data'].extend(data)
        if self.command == 'PATCH':
            headers['Range'] = '0-%d' % max(0, len(s['data']) - 1)
            return self.send(202, headers=headers)
        if self.command != 'PUT':
            return self.error(405, 'UNSUPPORTED', 'method not allowed')
        digest = (self.query.get('digest') or [None])[0]
        if not digest or sha256(bytes(s['data'])) != digest:
            return self.error(400, 'DIGEST_INVALID', 'provided digest did not match uploaded content')
        self.add_blob(name, digest, s['data'])
        with self.store.lock:
            self.store.sessions.pop(id, None)
        self.send(201, headers={'Location': '/v2/%s/blobs/%s' % (name, digest), 'Docker-Content-Digest': digest})

    # --- manifests ---

    def resolve(self, name, ref):
        with self.store.lock:
            digest = ref if ref.startswith('sha256:') else self.store.tags.get(name, {}).get(ref)
            if digest and digest in self.store.repo_manifests.get(name, set()):
                return digest
        return None

    def manifest(self, name, ref):
        st = self.store
        if self.command == 'GET' and st.args.hostile == 'endless-manifest':
            return self.endless(200)
        if self.command in ('GET', 'HEAD'):
            digest = self.resolve(name, ref)
            if digest is None:
                return self.error(404, 'MANIFEST_UNKNOWN', 'manifest unknown')
            media, data = st.manifests[digest]
            return self.send(200, data, {'Content-Type': media, 'Docker-Content-Digest': digest})
        if self.command == 'DELETE':
            with st.lock:
                st.repo_manifests.get(name, set()).discard(ref)
                for t, d in list(st.tags.get(name, {}).items()):
                    if d == ref:
                        del st.tags[name][t]
            return self.send(202)
        if self.command != 'PUT':
            return self.error(405, 'UNSUPPORTED', 'method not allowed')
        data = self.body()
        if len(data) > 4 << 20:
            return self.error(413, 'SIZE_INVALID', 'manifest too large')
        media = (self.headers.get('Content-Type') or '').split(';')[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            return self.error(400, 'MANIFEST_INVALID', 'not JSON')
        if not isinstance(doc, dict):
            return self.error(400, 'MANIFEST_INVALID', 'not an object')
        media = media or doc.get('mediaType') or MANIFEST
        digest = sha256(data)
        if ref.startswith('sha256:') and ref != digest:
            return self.error(400, 'DIGEST_INVALID', 'the manifest does not hash to the digest in the URL')
        blobs = [doc.get('config')] + list(doc.get('layers') or []) if media != INDEX else []
        for b in blobs:
            if isinstance(b, dict) and not self.has_blob(name, b.get('digest')):
                return self.error(400, 'MANIFEST_BLOB_UNKNOWN', 'blob unknown: %s' % b.get('digest'))
        for m in (doc.get('manifests') or []) if media == INDEX else []:
            if isinstance(m, dict) and self.resolve(name, m.get('digest') or '') is None:
                return self.error(400, 'MANIFEST_BLOB_UNKNOWN', 'manifest unknown: %s' % m.get('digest'))
        with st.lock:
            st.manifests[digest] = (media, data)
            st.repo_manifests.setdefault(name, set()).add(digest)
            if not ref.startswith('sha256:'):
                st.tags.setdefault(name, {})[ref] = digest
        headers = {'Location': '/v2/%s/manifests/%s' % (name, digest), 'Docker-Content-Digest': digest}
        subject = doc.get('subject')
        if isinstance(subject, dict) and subject.get('digest'):
            headers['OCI-Subject'] = subject['digest']
        self.send(201, headers=headers)

    def referrers(self, name, digest):
        if self.command not in ('GET', 'HEAD'):
            return self.error(405, 'UNSUPPORTED', 'method not allowed')
        wanted = (self.query.get('artifactType') or [None])[0]
        found = []
        with self.store.lock:
            candidates = sorted(self.store.repo_manifests.get(name, set()))
            for d in candidates:
                media, data = self.store.manifests[d]
                try:
                    doc = json.loads(data)
                except ValueError:
                    continue
                subject = doc.get('subject') if isinstance(doc, dict) else None
                if not isinstance(subject, dict) or subject.get('digest') != digest:
                    continue
                artifact_type = doc.get('artifactType') or (doc.get('config') or {}).get('mediaType')
                if wanted and artifact_type != wanted:
                    continue
                entry = {'mediaType': media, 'digest': d, 'size': len(data), 'artifactType': artifact_type}
                if doc.get('annotations'):
                    entry['annotations'] = doc['annotations']
                found.append(entry)
        headers = {'Content-Type': INDEX}
        if wanted:
            headers['OCI-Filters-Applied'] = 'artifactType'
        body = json.dumps({'schemaVersion': 2, 'mediaType': INDEX, 'manifests': found}).encode('utf-8')
        self.send(200, body, headers)

    def tags(self, name):
        with self.store.lock:
            tags = sorted(self.store.tags.get(name, {}))
        if not tags and name not in self.store.repo_manifests:
            return self.error(404, 'NAME_UNKNOWN', 'repository name not known to registry')
        self.send_json(200, {'name': name, 'tags': tags})


class TooLarge(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dir', required=True, help='work directory: ready.json, requests.jsonl')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--max-blob', type=int, default=1 << 30, help='the largest blob or request body taken')
    p.add_argument('--hostile', default='none', choices=['none', 'endless-manifest', 'endless-upload-error', 'foreign-location'])
    p.add_argument('--endless-cap', type=int, default=256 << 20, help='bytes after which an endless body stops')
    p.add_argument('--parent-pid', type=int, default=0)
    p.add_argument('--max-lifetime', type=float, default=1800)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    Handler.store = Store(args)
    server = Server(('127.0.0.1', args.port), Handler)
    lifetime.announce_and_serve(server, args.dir, args.parent_pid, args.max_lifetime)


if __name__ == '__main__':
    sys.exit(main())
