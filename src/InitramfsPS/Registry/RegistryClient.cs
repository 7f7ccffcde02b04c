using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Registry
{
    /// <summary>Settings of a <see cref="RegistryClient"/>.</summary>
    public sealed class RegistryOptions
    {
        /// <summary>Credentials given explicitly; when null the auth files are consulted.</summary>
        public RegistryCredential? Credential { get; init; }

        /// <summary>Allow plain HTTP to a registry that is not on a loopback address.</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>How many times a request is tried before the registry is declared unavailable.</summary>
        public int Attempts { get; init; } = 6;

        /// <summary>The first back-off delay; it doubles on each retry.</summary>
        public TimeSpan FirstDelay { get; init; } = TimeSpan.FromMilliseconds(500);

        /// <summary>Where the client reports what it does (never secrets).</summary>
        public Action<string>? Verbose { get; init; }
    }

    /// <summary>
    /// A client of the OCI distribution API for one repository: the Bearer-token and Basic auth
    /// challenges, tokens cached per scope for their lifetime, retries with back-off on 429
    /// (honouring Retry-After), 5xx and dropped connections, and blob downloads that are hashed as
    /// they stream, resumed with a Range request after a drop, and committed to the cache only
    /// when their digest and size check out.
    /// </summary>
    public sealed class RegistryClient : IDisposable
    {
        /// <summary>Every manifest type we read, so a registry never answers 404 for an OCI manifest.</summary>
        private static readonly string[] ManifestAccept =
        {
            MediaTypes.OciIndex, MediaTypes.OciManifest, MediaTypes.DockerManifestList, MediaTypes.DockerManifest,
            MediaTypes.DockerSchema1Signed, MediaTypes.DockerSchema1,
        };

        private readonly HttpClient http;
        private readonly ImageReference reference;
        private readonly RegistryOptions options;
        private readonly string baseUrl;
        private readonly string scope;
        private readonly ConcurrentDictionary<string, (string Token, DateTimeOffset Expires)> tokens = new(StringComparer.Ordinal);
        private readonly SemaphoreSlim authLock = new(1, 1);
        private RegistryCredential? credential;
        private bool credentialLooked;
        private AuthenticationHeaderValue? basic;

        /// <summary>Opens a client for the repository of <paramref name="reference"/>.</summary>
        public RegistryClient(ImageReference reference, RegistryOptions options)
        {
            this.reference = reference;
            this.options = options;
            string host = reference.ApiHost!;
            bool plain = IsLoopback(host) || options.AllowPlainHttp;
            baseUrl = (plain ? "http://" : "https://") + host + "/v2/";
            scope = $"repository:{reference.Repository}:pull";
            credential = options.Credential;
            credentialLooked = options.Credential is not null;
            http = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = ConnectAsync,
                AutomaticDecompression = DecompressionMethods.None,
                ConnectTimeout = TimeSpan.FromSeconds(30),
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                // Redirects to blob storage must not carry our Authorization header: .NET drops it on redirect.
                AllowAutoRedirect = true,
            })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("InitramfsPS", "0.1"));
        }

        /// <summary>Set when a server answered our TLS handshake in plain HTTP: it serves HTTP only.</summary>
        private volatile bool answeredInPlainHttp;

        private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                return new FirstBytesStream(new System.Net.Sockets.NetworkStream(socket, ownsSocket: true), () => answeredInPlainHttp = true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        /// <summary>Notices when the first bytes a server sends are "HTTP/" (an HTTP server's answer to a TLS hello).</summary>
        private sealed class FirstBytesStream : Stream
        {
            private readonly Stream inner;
            private readonly Action onPlainHttp;
            private bool looked;

            public FirstBytesStream(Stream inner, Action onPlainHttp)
            {
                this.inner = inner;
                this.onPlainHttp = onPlainHttp;
            }

            public override int Read(byte[] buffer, int offset, int count) => Look(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));
            public override int Read(Span<byte> buffer) => Look(buffer[..inner.Read(buffer)]);
            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                return Look(buffer.Span[..n]);
            }
            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
                => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            private int Look(ReadOnlySpan<byte> read)
            {
                if (!looked && read.Length > 0)
                {
                    looked = true;
                    if (read.StartsWith("HTTP/"u8))
                    {
                        onPlainHttp();
                    }
                }
                return read.Length;
            }

            public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
            public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
            public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
            public override void Flush() => inner.Flush();
            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => true;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    inner.Dispose();
                }
                base.Dispose(disposing);
            }
        }

        /// <summary>True for localhost, 127.0.0.0/8 and ::1, where plain HTTP is allowed without asking.</summary>
        public static bool IsLoopback(string hostAndPort)
        {
            string host = hostAndPort;
            if (host.StartsWith('['))
            {
                int end = host.IndexOf(']', StringComparison.Ordinal);
                host = end > 0 ? host[1..end] : host;
            }
            else if (host.Contains(':', StringComparison.Ordinal))
            {
                host = host[..host.LastIndexOf(':')];
            }
            return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
        }

        /// <summary>Fetches a manifest or index by tag or digest, checking its digest.</summary>
        public async Task<(byte[] Bytes, Descriptor Descriptor)> GetManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
        {
            try
            {
                return await FetchManifestAsync(tagOrDigest, cancellationToken).ConfigureAwait(false);
            }
            catch (InitramfsException ex) when (ex.ErrorId == "TagNotFound")
            {
                throw await ExplainMissingTagAsync(tagOrDigest, ex, cancellationToken).ConfigureAwait(false);
            }
        }

        /// <summary>
        /// Registries answer MANIFEST_UNKNOWN for a tag of a repository that does not exist too; the
        /// tag list tells the two apart, and names the tags there are.
        /// </summary>
        private async Task<InitramfsException> ExplainMissingTagAsync(string tag, InitramfsException original, CancellationToken cancellationToken)
        {
            try
            {
                using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"{baseUrl}{reference.Repository}/tags/list?n=20"), "tags", cancellationToken).ConfigureAwait(false);
                using var doc = JsonDocument.Parse(await ReadLimitedAsync(response.Content, 1 << 20, cancellationToken).ConfigureAwait(false));
                var tags = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("tags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()).ToList()
                    : new List<string?>();
                return new InitramfsException("TagNotFound", FailureKind.NotFound,
                    $"The tag '{tag}' does not exist in {reference.Registry}/{reference.Repository}. Tags: {(tags.Count == 0 ? "(none)" : string.Join(", ", tags))}.", tag, original);
            }
            catch (InitramfsException ex) when (ex.ErrorId is "RepositoryNotFound" or "TagNotFound")
            {
                return new InitramfsException("RepositoryNotFound", FailureKind.NotFound,
                    $"The repository '{reference.Repository}' does not exist on {reference.Registry}.", reference.Repository, original);
            }
            catch (Exception ex) when (ex is InitramfsException or JsonException or HttpRequestException or InvalidOperationException)
            {
                return original;
            }
        }

        private async Task<(byte[] Bytes, Descriptor Descriptor)> FetchManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
        {
            string url = $"{baseUrl}{reference.Repository}/manifests/{tagOrDigest}";
            using var response = await SendAsync(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, url);
                foreach (string type in ManifestAccept)
                {
                    request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
                }
                return request;
            }, tagOrDigest, cancellationToken).ConfigureAwait(false);
            var bytes = await ReadLimitedAsync(response.Content, 4 << 20, cancellationToken).ConfigureAwait(false);
            string algorithm = Digest.TryParse(tagOrDigest, out var pinned) ? pinned.Algorithm : "sha256";
            var actual = Digest.Compute(algorithm, bytes);
            if (Digest.TryParse(tagOrDigest, out var wanted) && wanted != actual)
            {
                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                    $"The registry answered {reference.Repository}@{wanted} with bytes that hash to {actual}.", wanted.ToString());
            }
            if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.FirstOrDefault(), out var claimed)
                && claimed.Algorithm == actual.Algorithm && claimed != actual)
            {
                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                    $"The manifest of {reference} hashes to {actual}, but the registry says {claimed}.", claimed.ToString());
            }
            string? mediaType = response.Content.Headers.ContentType?.MediaType;
            return (bytes, new Descriptor(mediaType is "application/json" or "text/plain" ? null : mediaType, actual, bytes.Length));
        }

        /// <summary>
        /// Downloads a blob into the cache unless it is there. The bytes are hashed as they arrive;
        /// a dropped connection resumes with a Range request; the blob is committed only when its
        /// size and digest match, so a damaged download never lands under a digest. <paramref name="sink"/>,
        /// when given, sees the same bytes in the same order as they arrive (and is told when the
        /// download starts over), to begin work on a blob before it is whole; it is not called when the
        /// blob is cached already.
        /// </summary>
        public async Task DownloadBlobAsync(Descriptor blob, BlobStore cache, Action<long>? progress, CancellationToken cancellationToken, IBlobSink? sink = null)
        {
            if (cache.Has(blob.Digest))
            {
                progress?.Invoke(blob.Size);
                return;
            }
            using var blobLock = await cache.LockAsync(blob.Digest, cancellationToken).ConfigureAwait(false);
            if (cache.Has(blob.Digest))
            {
                // Another process downloaded it while we waited for the lock.
                progress?.Invoke(blob.Size);
                return;
            }
            string url = $"{baseUrl}{reference.Repository}/blobs/{blob.Digest}";
            using var writer = cache.CreateWriter();
            var hash = blob.Digest.CreateHash();
            try
            {
                long written = 0;
                var buffer = new byte[1 << 16];
                for (int attempt = 1; ; attempt++)
                {
                    long from = written;
                    using var response = await SendAsync(() =>
                    {
                        var request = new HttpRequestMessage(HttpMethod.Get, url);
                        if (from > 0)
                        {
                            request.Headers.Range = new RangeHeaderValue(from, null);
                        }
                        return request;
                    }, blob.Digest.ToString(), cancellationToken).ConfigureAwait(false);
                    if (from > 0 && response.StatusCode != HttpStatusCode.PartialContent)
                    {
                        // The registry ignored the Range: start over.
                        options.Verbose?.Invoke($"{blob.Digest.ShortHex}: the registry does not resume; downloading again from the start.");
                        writer.Stream.SetLength(0);
                        writer.Stream.Position = 0;
                        hash.Dispose();
                        hash = blob.Digest.CreateHash();
                        written = 0;
                        sink?.Restart();
                    }
                    try
                    {
                        using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                        int n;
                        while ((n = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                        {
                            if (written + n > blob.Size)
                            {
                                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                                    $"The blob {blob.Digest} is longer than the {blob.Size} bytes its descriptor says.", blob.Digest.ToString());
                            }
                            hash.AppendData(buffer, 0, n);
                            writer.Write(buffer, n);
                            written += n;
                            progress?.Invoke(written);
                            if (sink is not null)
                            {
                                await sink.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                            }
                        }
                        break;
                    }
                    catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested && attempt < options.Attempts)
                    {
                        options.Verbose?.Invoke($"{blob.Digest.ShortHex}: connection dropped after {written} bytes ({ex.Message}); resuming.");
                        await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
                    }
                }
                if (written != blob.Size || !blob.Digest.Matches(hash.GetHashAndReset()))
                {
                    throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                        $"The blob {blob.Digest} of {reference} arrived as {written} bytes that do not match its digest; nothing was cached.", blob.Digest.ToString());
                }
                writer.Commit(blob.Digest);
            }
            finally
            {
                hash.Dispose();
            }
        }

        /// <summary>
        /// Sends a request, answering auth challenges once and retrying 429, 5xx and dropped
        /// connections with back-off. Returns a successful response; anything else becomes an error.
        /// </summary>
        private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> makeRequest, string what, CancellationToken cancellationToken)
        {
            bool challenged = false;
            for (int attempt = 1; ; attempt++)
            {
                using var request = makeRequest();
                var auth = CurrentAuthorization();
                if (auth is not null)
                {
                    request.Headers.Authorization = auth;
                }
                options.Verbose?.Invoke($"{request.Method} {request.RequestUri}{(request.Headers.Range is { } r ? " " + r : string.Empty)}");
                HttpResponseMessage response;
                try
                {
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                }
                catch (HttpRequestException ex) when (!IsTransient(ex))
                {
                    if (answeredInPlainHttp)
                    {
                        throw new InitramfsException("PlainHttpRefused", FailureKind.Security,
                            $"{reference.Registry} serves plain HTTP, not HTTPS. Nothing was sent over plain HTTP; -AllowPlainHttp allows it " +
                            "(unencrypted: anyone on the path can read and change the traffic, credentials included).", reference.Registry, ex);
                    }
                    throw Unavailable(ex.Message, ex);
                }
                catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested)
                {
                    // A refused connection is more often a wrong port than a restarting registry: try briefly.
                    bool refused = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError };
                    if (attempt >= (refused ? Math.Min(3, options.Attempts) : options.Attempts))
                    {
                        throw Unavailable(ex.Message, ex);
                    }
                    options.Verbose?.Invoke($"{request.RequestUri}: {ex.Message}; retrying.");
                    await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                if (response.IsSuccessStatusCode)
                {
                    return response;
                }
                using (response)
                {
                    var status = response.StatusCode;
                    if (status == HttpStatusCode.Unauthorized && !challenged)
                    {
                        challenged = true;
                        await AnswerChallengeAsync(response, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    if ((status == HttpStatusCode.TooManyRequests || (int)status >= 500) && attempt < options.Attempts)
                    {
                        var delay = RetryAfter(response) ?? Backoff(attempt);
                        options.Verbose?.Invoke($"{request.RequestUri}: {(int)status} {response.ReasonPhrase}; retrying in {delay.TotalSeconds:0.#} s.");
                        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    string body = await SafeBodyAsync(response, cancellationToken).ConfigureAwait(false);
                    throw Failure(status, body, what);
                }
            }
        }

        private AuthenticationHeaderValue? CurrentAuthorization()
        {
            if (tokens.TryGetValue(scope, out var token) && token.Expires > DateTimeOffset.UtcNow)
            {
                return new AuthenticationHeaderValue("Bearer", token.Token);
            }
            return basic;
        }

        private async Task AnswerChallengeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
        {
            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            if (challenge is null)
            {
                throw new InitramfsException("RegistryCredentialsRefused", FailureKind.Security,
                    $"{reference.Registry} refused the request (401) without saying how to authenticate.", reference.Registry);
            }
            await authLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                EnsureCredential();
                if (string.Equals(challenge.Scheme, "Basic", StringComparison.OrdinalIgnoreCase))
                {
                    if (credential is null || basic is not null)
                    {
                        throw Refused();
                    }
                    options.Verbose?.Invoke($"{reference.Registry} asks for Basic auth; using the credentials of {credential}.");
                    basic = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                    return;
                }
                if (!string.Equals(challenge.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.NotImplemented,
                        $"{reference.Registry} asks for '{challenge.Scheme}' authentication, which is not supported.", reference.Registry);
                }
                if (tokens.TryGetValue(scope, out var cached) && cached.Expires > DateTimeOffset.UtcNow)
                {
                    // A token we already hold was refused: it does not grant what we asked.
                    tokens.TryRemove(scope, out _);
                    throw Refused();
                }
                var parameters = ParseChallenge(challenge.Parameter ?? string.Empty);
                if (!parameters.TryGetValue("realm", out string? realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, $"{reference.Registry} sent a Bearer challenge without a valid realm.", reference.Registry);
                }
                var query = new StringBuilder();
                if (parameters.TryGetValue("service", out string? service))
                {
                    query.Append("service=").Append(Uri.EscapeDataString(service));
                }
                query.Append(query.Length > 0 ? "&" : string.Empty).Append("scope=").Append(Uri.EscapeDataString(parameters.TryGetValue("scope", out string? s) ? s : scope));
                var tokenUrl = new UriBuilder(realmUri) { Query = query.ToString() }.Uri;
                using var tokenRequest = new HttpRequestMessage(HttpMethod.Get, tokenUrl);
                if (credential is not null)
                {
                    tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                }
                options.Verbose?.Invoke($"GET {realmUri.GetLeftPart(UriPartial.Path)} for a token ({(credential is null ? "anonymous" : "as " + credential)}).");
                using var tokenResponse = await http.SendAsync(tokenRequest, cancellationToken).ConfigureAwait(false);
                if (tokenResponse.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    throw Refused();
                }
                if (!tokenResponse.IsSuccessStatusCode)
                {
                    throw Unavailable($"the token service answered {(int)tokenResponse.StatusCode}", null);
                }
                var json = await ReadLimitedAsync(tokenResponse.Content, 1 << 20, cancellationToken).ConfigureAwait(false);
                using var doc = JsonDocument.Parse(json);
                string? token = StringProperty(doc.RootElement, "token") ?? StringProperty(doc.RootElement, "access_token");
                if (string.IsNullOrEmpty(token))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, "The token service answered without a token.", reference.Registry);
                }
                int lifetime = doc.RootElement.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int seconds) && seconds > 0 ? seconds : 60;
                // Renew a little early so a token never expires in the middle of a request.
                tokens[scope] = (token, DateTimeOffset.UtcNow.AddSeconds(Math.Max(1, lifetime - 10)));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                // InvalidOperationException: a string that is not valid UTF-8 (JsonDocument checks it only when read).
                throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, $"The token service answered with invalid JSON: {ex.Message}", reference.Registry, ex);
            }
            finally
            {
                authLock.Release();
            }
        }

        private void EnsureCredential()
        {
            if (!credentialLooked)
            {
                credentialLooked = true;
                credential = RegistryCredentials.Find(reference.Registry!);
                if (credential is not null)
                {
                    options.Verbose?.Invoke($"Using credentials for {reference.Registry}: {credential}.");
                }
            }
        }

        private static Dictionary<string, string> ParseChallenge(string parameter)
        {
            var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            int i = 0;
            while (i < parameter.Length)
            {
                while (i < parameter.Length && (parameter[i] == ',' || char.IsWhiteSpace(parameter[i])))
                {
                    i++;
                }
                int eq = parameter.IndexOf('=', i);
                if (eq < 0)
                {
                    break;
                }
                string key = parameter[i..eq].Trim();
                i = eq + 1;
                string value;
                if (i < parameter.Length && parameter[i] == '"')
                {
                    int end = parameter.IndexOf('"', i + 1);
                    end = end < 0 ? parameter.Length : end;
                    value = parameter[(i + 1)..end];
                    i = end + 1;
                }
                else
                {
                    int end = parameter.IndexOf(',', i);
                    end = end < 0 ? parameter.Length : end;
                    value = parameter[i..end].Trim();
                    i = end;
                }
                result[key] = value;
            }
            return result;
        }

        private InitramfsException Refused() => credential is null
            ? new InitramfsException("RegistryCredentialsRequired", FailureKind.Security,
                $"{reference.Registry} requires credentials for {reference.Repository}; pass -Credential or log in (auth.json, ~/.docker/config.json).", reference.Registry)
            : new InitramfsException("RegistryCredentialsRefused", FailureKind.Security,
                $"{reference.Registry} refused the credentials of user '{credential.Username}' (from {credential.Origin}) for {reference.Repository}.", reference.Registry);

        private InitramfsException Unavailable(string why, Exception? inner) =>
            new("RegistryUnavailable", FailureKind.NotFound,
                $"{reference.Registry} could not be reached: {why}." +
                (baseUrl.StartsWith("https:", StringComparison.Ordinal) ? " If it serves plain HTTP only, -AllowPlainHttp allows that (unencrypted, credentials included)." : string.Empty),
                reference.Registry, inner);

        private InitramfsException Failure(HttpStatusCode status, string body, string what)
        {
            string code = ErrorCode(body);
            switch (status)
            {
                case HttpStatusCode.Unauthorized:
                    return Refused();
                case HttpStatusCode.Forbidden:
                    return new InitramfsException("RegistryAccessDenied", FailureKind.Security,
                        $"{reference.Registry} denied access to {reference.Repository}{(credential is null ? " for anonymous pulls" : $" for user '{credential.Username}'")}.", reference.Registry);
                case HttpStatusCode.NotFound when code == "NAME_UNKNOWN":
                    return new InitramfsException("RepositoryNotFound", FailureKind.NotFound,
                        $"The repository '{reference.Repository}' does not exist on {reference.Registry}.", reference.Repository);
                case HttpStatusCode.NotFound when code is "MANIFEST_UNKNOWN" or "" && !what.StartsWith("sha", StringComparison.Ordinal):
                    return new InitramfsException("TagNotFound", FailureKind.NotFound,
                        $"The tag '{what}' does not exist in {reference.Registry}/{reference.Repository}.", what);
                case HttpStatusCode.NotFound:
                    return new InitramfsException("ManifestNotFound", FailureKind.NotFound,
                        $"{reference.Registry}/{reference.Repository} has no {(code == "BLOB_UNKNOWN" ? "blob" : "manifest")} {what}.", what);
                default:
                    return (int)status >= 500 || status == HttpStatusCode.TooManyRequests
                        ? Unavailable($"{(int)status} {status}", null)
                        : new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                            $"{reference.Registry} answered {(int)status} {status} for {what}{(code.Length > 0 ? " (" + code + ")" : string.Empty)}.", what);
            }
        }

        /// <summary>A string property of a JSON object; null for anything else (a hostile answer must not throw InvalidOperationException).</summary>
        private static string? StringProperty(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        private static string ErrorCode(string body)
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
                {
                    foreach (var e in errors.EnumerateArray())
                    {
                        if (StringProperty(e, "code") is { } code)
                        {
                            return code;
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
            }
            return string.Empty;
        }

        private static async Task<string> SafeBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
        {
            try
            {
                return Encoding.UTF8.GetString(await ReadLimitedAsync(response.Content, 64 << 10, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or InitramfsException)
            {
                return string.Empty;
            }
        }

        private static async Task<byte[]> ReadLimitedAsync(HttpContent content, int limit, CancellationToken cancellationToken)
        {
            using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var memory = new MemoryStream();
            var buffer = new byte[1 << 14];
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (memory.Length + n > limit)
                {
                    throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded, $"A registry response is larger than {limit} bytes.", null);
                }
                memory.Write(buffer, 0, n);
            }
            return memory.ToArray();
        }

        /// <summary>
        /// Dropped connections, resets and timeouts are retried; a name that does not resolve or a
        /// TLS handshake that fails will not get better by asking again, so they fail at once.
        /// </summary>
        private static bool IsTransient(Exception ex) => ex switch
        {
            HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError } => false,
            HttpRequestException or IOException => true,
            TaskCanceledException { InnerException: TimeoutException } => true,
            _ => false,
        };

        private TimeSpan Backoff(int attempt) =>
            TimeSpan.FromMilliseconds(Math.Min(options.FirstDelay.TotalMilliseconds * Math.Pow(2, attempt - 1), 15_000));

        private static TimeSpan? RetryAfter(HttpResponseMessage response)
        {
            var retry = response.Headers.RetryAfter;
            TimeSpan? delay = retry?.Delta ?? (retry?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
            return delay is { } d ? TimeSpan.FromSeconds(Math.Clamp(d.TotalSeconds, 0, 60)) : null;
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            http.Dispose();
            authLock.Dispose();
        }
    }
}
