#!/usr/bin/env python3
"""A Docker/OCI registry token service for the InitramfsPS tests (Python 3 standard library only).

Serves the token endpoint of the distribution "token" auth mode on 127.0.0.1:

    GET  /token?service=<s>&scope=repository:<name>:pull,push[&scope=...]
    POST /token   (OAuth2 form: grant_type=password with username/password, or
                   grant_type=refresh_token with refresh_token; service, scope)

and answers {"token", "access_token", "expires_in", "issued_at"}: an RS256 JWT whose header
carries the signing certificate in `x5c` (base64 DER), which docker-registry 2.8 verifies
against its `rootcertbundle` (the certificate this server writes, cert.pem in --dir).

Grants: anonymous callers get `pull` only (of what they ask for); callers with valid basic
credentials (Authorization: Basic, or the password grant) get every action they ask for;
wrong credentials get 401. An unknown --service gets 400.

Test endpoints:
    GET  /stats        {"requests": N, "by_scope": {"<scope>": N, ...}, "by_user": {...},
                        "statuses": {...}, "events": [...], "tokens": [...issued JWTs...]}
    POST /stats/reset  clears the counters (not the key).
Every token request is also appended to <dir>/requests.jsonl (one JSON object a line; no
passwords: only the user name and whether the credentials were accepted).

When ready it writes <dir>/ready.json: {"port", "pid", "cert", "key", "realm"}.
It exits by itself when --parent-pid dies or after --max-lifetime seconds.
"""

import argparse
import base64
import hashlib
import json
import lifetime
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# ---------------------------------------------------------------- RSA (PKCS#1 v1.5, SHA-256)

def _der_read(buf, pos):
    """Returns (tag, content_start, content_end) of the DER element at pos."""
    tag = buf[pos]
    pos += 1
    length = buf[pos]
    pos += 1
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[pos:pos + n], 'big')
        pos += n
    return tag, pos, pos + length


def _der_children(buf, start, end):
    out = []
    pos = start
    while pos < end:
        tag, cs, ce = _der_read(buf, pos)
        out.append((tag, cs, ce))
        pos = ce
    return out


def load_rsa_private_key(pem_path):
    """Reads a PKCS#8 ('PRIVATE KEY') or PKCS#1 ('RSA PRIVATE KEY') PEM file: returns (n, d)."""
    with open(pem_path, 'r', encoding='ascii') as f:
        text = f.read()
    lines = [l for l in text.splitlines() if l and not l.startswith('-----')]
    der = base64.b64decode(''.join(lines))
    tag, cs, ce = _der_read(der, 0)
    items = _der_children(der, cs, ce)
    if 'BEGIN PRIVATE KEY' in text:
        # PrivateKeyInfo: version, algorithm, OCTET STRING { RSAPrivateKey }
        _, ocs, oce = items[2]
        tag, cs, ce = _der_read(der, ocs)
        items = _der_children(der, cs, ce)
    ints = [int.from_bytes(der[s:e], 'big') for (t, s, e) in items if t == 0x02]
    # RSAPrivateKey: version, n, e, d, p, q, dp, dq, qinv
    return ints[1], ints[3]


SHA256_DIGEST_INFO = bytes.fromhex('3031300d060960864801650304020105000420')


def rs256_sign(n, d, data):
    k = (n.bit_length() + 7) // 8
    t = SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
    em = b'\x00\x01' + b'\xff' * (k - len(t) - 3) + b'\x00' + t
    return pow(int.from_bytes(em, 'big'), d, n).to_bytes(k, 'big')


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def pem_to_der_b64(pem_path):
    with open(pem_path, 'r', encoding='ascii') as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith('-----')]
    return ''.join(lines)   # standard base64 of the DER, as x5c wants


# ---------------------------------------------------------------- server

class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.users = {}
        if args.users_file:
            with open(args.users_file, 'r', encoding='utf-8') as f:
                self.users = json.load(f)
        self.cert = os.path.abspath(os.path.join(args.dir, 'cert.pem'))
        self.key = os.path.abspath(os.path.join(args.dir, 'key.pem'))
        if not (os.path.exists(self.cert) and os.path.exists(self.key)):
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
                            '-keyout', self.key, '-out', self.cert, '-days', '2',
                            '-subj', '/CN=initramfsps-test-token-signer'],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.n, self.d = load_rsa_private_key(self.key)
        self.x5c = pem_to_der_b64(self.cert)
        self.log_path = os.path.join(args.dir, 'requests.jsonl')
        self.refresh_tokens = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = 0
            self.by_scope = {}
            self.by_user = {}
            self.statuses = {}
            self.events = []
            self.tokens = []

    def record(self, event):
        with self.lock:
            self.requests += 1
            scopes = event.get('scopes') or ['']
            for s in scopes:
                self.by_scope[s] = self.by_scope.get(s, 0) + 1
            u = event.get('user') or ''
            self.by_user[u] = self.by_user.get(u, 0) + 1
            st = str(event.get('status'))
            self.statuses[st] = self.statuses.get(st, 0) + 1
            self.events.append(event)
            with open(self.log_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(event) + '\n')

    def snapshot(self):
        with self.lock:
            return {'requests': self.requests, 'by_scope': dict(self.by_scope), 'by_user': dict(self.by_user),
                    'statuses': dict(self.statuses), 'events': list(self.events), 'tokens': list(self.tokens)}

    def make_token(self, user, scopes, granted_all):
        now = int(time.time())
        access = []
        for s in scopes:
            parts = s.split(':')
            if len(parts) < 3:
                continue
            typ, actions = parts[0], parts[-1]
            name = ':'.join(parts[1:-1])
            wanted = [a for a in actions.split(',') if a]
            if granted_all:
                got = wanted
            else:
                got = [a for a in wanted if a == 'pull']
            access.append({'type': typ, 'name': name, 'actions': got})
        header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': [self.x5c]}
        claims = {
            'iss': self.args.issuer, 'sub': user or '', 'aud': self.args.service,
            'exp': now + self.args.expires, 'nbf': now - 5, 'iat': now,
            'jti': secrets.token_hex(12), 'access': access,
        }
        signing_input = (b64url(json.dumps(header, separators=(',', ':')).encode()) + '.' +
                         b64url(json.dumps(claims, separators=(',', ':')).encode()))
        sig = rs256_sign(self.n, self.d, signing_input.encode('ascii'))
        token = signing_input + '.' + b64url(sig)
        with self.lock:
            self.tokens.append(token)
        return token, now, access


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'initramfsps-test-token/1'
    state = None   # set in main

    def log_message(self, fmt, *args):   # quiet: requests.jsonl is the log
        pass

    def send_json(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def basic_credentials(self):
        h = self.headers.get('Authorization')
        if not h:
            return None
        scheme, _, rest = h.partition(' ')
        if scheme.lower() != 'basic':
            return ('', None)   # some other scheme: treated as bad credentials
        try:
            user, _, pw = base64.b64decode(rest.strip()).decode('utf-8').partition(':')
        except Exception:
            return ('', None)
        return (user, pw)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == '/stats':
            return self.send_json(200, self.state.snapshot())
        if url.path == '/token':
            q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            return self.issue(q, self.basic_credentials(), 'GET')
        self.send_json(404, {'error': 'not found'})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length > 0 else b''
        if url.path == '/stats/reset':
            self.state.reset()
            return self.send_json(200, {'reset': True})
        if url.path == '/token':
            form = urllib.parse.parse_qs(body.decode('utf-8'), keep_blank_values=True)
            grant = (form.get('grant_type') or [''])[0]
            creds = self.basic_credentials()
            if grant == 'password':
                creds = ((form.get('username') or [''])[0], (form.get('password') or [''])[0])
            elif grant == 'refresh_token':
                rt = (form.get('refresh_token') or [''])[0]
                user = self.state.refresh_tokens.get(rt)
                if user is None:
                    return self.reply_denied(form, 'POST', grant, 'unknown refresh token')
                creds = (user, self.state.users.get(user))
            return self.issue(form, creds, 'POST', grant)
        self.send_json(404, {'error': 'not found'})

    def reply_denied(self, q, method, grant, why):
        scopes = self.scopes(q)
        self.state.record({'time': time.time(), 'method': method, 'grant': grant, 'scopes': scopes,
                           'user': None, 'authenticated': False, 'status': 401, 'why': why})
        self.send_json(401, {'errors': [{'code': 'UNAUTHORIZED', 'message': why}]},
                       [('WWW-Authenticate', 'Basic realm="initramfsps-test-token"')])

    @staticmethod
    def scopes(q):
        out = []
        for s in q.get('scope', []):
            out.extend(x for x in s.split(' ') if x)
        return out

    def issue(self, q, creds, method, grant=''):
        st = self.state
        scopes = self.scopes(q)
        service = (q.get('service') or [''])[0]
        if service and service != st.args.service:
            st.record({'time': time.time(), 'method': method, 'grant': grant, 'scopes': scopes,
                       'user': None, 'authenticated': False, 'status': 400, 'why': 'unknown service ' + service})
            return self.send_json(400, {'errors': [{'code': 'UNSUPPORTED', 'message': 'unknown service'}]})
        user = None
        authenticated = False
        if creds is not None:
            user, pw = creds
            if pw is None or st.users.get(user) != pw:
                return self.reply_denied(q, method, grant, 'bad credentials for ' + repr(user))
            authenticated = True
        token, now, access = st.make_token(user, scopes, authenticated)
        reply = {'token': token, 'access_token': token, 'expires_in': st.args.expires,
                 'issued_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}
        if authenticated and ((q.get('offline_token') or [''])[0] == 'true' or grant == 'password'):
            rt = secrets.token_hex(16)
            st.refresh_tokens[rt] = user
            reply['refresh_token'] = rt
        st.record({'time': time.time(), 'method': method, 'grant': grant, 'scopes': scopes, 'user': user,
                   'authenticated': authenticated, 'status': 200, 'access': access})
        self.send_json(200, reply)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dir', required=True, help='work directory: key, cert, ready.json, requests.jsonl')
    p.add_argument('--service', required=True)
    p.add_argument('--issuer', required=True)
    p.add_argument('--users-file', help='JSON object {"user": "password"}')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--expires', type=int, default=300)
    p.add_argument('--parent-pid', type=int, default=0)
    p.add_argument('--max-lifetime', type=float, default=1800)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    state = State(args)
    Handler.state = state
    server = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    lifetime.exit_with_parent(args.parent_pid, args.max_lifetime)
    ready = {'port': port, 'pid': os.getpid(), 'cert': state.cert, 'key': state.key,
             'realm': 'http://127.0.0.1:%d/token' % port}
    tmp = os.path.join(args.dir, 'ready.json.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(ready, f)
    os.replace(tmp, os.path.join(args.dir, 'ready.json'))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
