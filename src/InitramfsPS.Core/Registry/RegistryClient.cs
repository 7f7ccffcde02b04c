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
using InitramfsPS.IO;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Registry
{
    /// <summary>Settings of a <see cref="RegistryClient"/>.</summary>
    public sealed class RegistryOptions
    {
        /// <summary>Credentials given explicitly; when null the auth files are consulted.</summary>
        public RegistryCredential? Credential { get; init; }

        /// <summary>Allow plain HTTP to a registry that is not on a loopback address.</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>Timeouts, the minimum transfer rate and the number of attempts.</summary>
        public RegistryLimits Limits { get; init; } = RegistryLimits.Default;

        /// <summary>The first back-off delay; it doubles on each retry.</summary>
        public TimeSpan FirstDelay { get; init; } = TimeSpan.FromMilliseconds(500);

        /// <summary>Where the client reports what it does (never secrets).</summary>
        public Action<string>? Verbose { get; init; }
    }

    /// <summary>
    /// A client of the OCI distribution API for one repository: the Bearer-token and Basic auth
    /// challenges, tokens cached per scope for their lifetime, retries with back-off on 429
    /// (honouring Retry-After), 5xx, dropped connections and stalls, and blob downloads that are
    /// hashed as they stream, resumed with a Range request after a drop, and committed to the cache
    /// only when their digest and size check out.
    /// <para>
    /// Hardened against the registry itself: every request has a connect and a first-byte
    /// timeout and every body a minimum rate (<see cref="RegistryLimits"/>); every body that is
    /// not a blob is read with a hard cap as it streams; redirects are followed here, keeping the
    /// Authorization header for the same scheme, host and port only; every text a server wrote
    /// passes <see cref="SecretScrubber.ServerText"/> before it reaches a message; and every
    /// failure leaves as an <see cref="InitramfsException"/> with a stable id (<see cref="Contain"/>).
    /// </para>
    /// </summary>
    public sealed class RegistryClient : IDisposable
    {
        /// <summary>The most a manifest, an index or a config may weigh: it is read whole.</summary>
        public const int ManifestCap = 4 << 20;

        /// <summary>The most a token answer may weigh.</summary>
        public const int TokenCap = 1 << 20;

        /// <summary>The most a tag list may weigh.</summary>
        public const int TagListCap = 1 << 20;

        /// <summary>How much of an error body is read (the rest is dropped with the connection).</summary>
        public const int ErrorBodyCap = 64 << 10;

        private const int MaxRedirects = 10;

        /// <summary>Every manifest type we read, so a registry never answers 404 for an OCI manifest.</summary>
        private static readonly string[] ManifestAccept =
        {
            MediaTypes.OciIndex, MediaTypes.OciManifest, MediaTypes.DockerManifestList, MediaTypes.DockerManifest,
            MediaTypes.DockerSchema1Signed, MediaTypes.DockerSchema1,
        };

        private readonly HttpClient http;
        private readonly ImageReference reference;
        private readonly RegistryOptions options;
        private readonly RegistryLimits limits;
        private readonly string baseUrl;
        private readonly string scope;
        private readonly ConcurrentDictionary<string, (string Token, DateTimeOffset Expires)> tokens = new(StringComparer.Ordinal);
        private readonly SemaphoreSlim authLock = new(1, 1);
        private readonly SecretScrubber secrets = new();
        private RegistryCredential? credential;
        private bool credentialLooked;
        private AuthenticationHeaderValue? basic;

        /// <summary>Opens a client for the repository of <paramref name="reference"/>.</summary>
        public RegistryClient(ImageReference reference, RegistryOptions options)
        {
            this.reference = reference;
            this.options = options;
            limits = options.Limits;
            string host = reference.ApiHost!;
            bool plain = IsLoopback(host) || options.AllowPlainHttp;
            baseUrl = (plain ? "http://" : "https://") + host + "/v2/";
            scope = $"repository:{reference.Repository}:pull";
            credential = options.Credential;
            credentialLooked = options.Credential is not null;
            secrets.AddCredential(credential);
            http = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = ConnectAsync,
                AutomaticDecompression = DecompressionMethods.None,
                // TCP and TLS handshakes together.
                ConnectTimeout = limits.ConnectTimeout > TimeSpan.Zero ? limits.ConnectTimeout : Timeout.InfiniteTimeSpan,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                // Redirects are followed by SendOnceAsync, which decides where the Authorization header goes.
                AllowAutoRedirect = false,
            })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("InitramfsPS", "0.1"));
        }

        /// <summary>What masks secrets in the text servers write; it knows the credential and every token received.</summary>
        public SecretScrubber Secrets => secrets;

        /// <summary>Set when a server answered our TLS handshake in plain HTTP: it serves HTTP only.</summary>
        private volatile bool answeredInPlainHttp;

        private void Say(string message) => options.Verbose?.Invoke(secrets.Scrub(message));

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

        /// <summary>One kind of request: what it is about (for errors such as TagNotFound), how messages name it, and whether it goes to the token service.</summary>
        private sealed record Call(string What, string Label, bool ToTokenService = false);

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
                var call = new Call("tags", $"the tag list of {reference.Repository}");
                var bytes = await RequestAsync(() => new HttpRequestMessage(HttpMethod.Get, $"{baseUrl}{reference.Repository}/tags/list?n=20"), call,
                    (response, ct) => ReadCappedAsync(response, TagListCap, call.Label, ct), cancellationToken).ConfigureAwait(false);
                using var doc = JsonDocument.Parse(bytes);
                var tags = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("tags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => secrets.ServerText(x.GetString(), 128)).ToList()
                    : new List<string>();
                return new InitramfsException("TagNotFound", FailureKind.NotFound,
                    $"The tag '{tag}' does not exist in {reference.Registry}/{reference.Repository}. Tags: {(tags.Count == 0 ? "(none)" : string.Join(", ", tags))}.", tag, original);
            }
            catch (InitramfsException ex) when (ex.ErrorId is "RepositoryNotFound" or "TagNotFound")
            {
                return new InitramfsException("RepositoryNotFound", FailureKind.NotFound,
                    $"The repository '{reference.Repository}' does not exist on {reference.Registry}.", reference.Repository, original);
            }
            catch (Exception ex) when (ex is InitramfsException or JsonException or InvalidOperationException)
            {
                return original;
            }
        }

        private async Task<(byte[] Bytes, Descriptor Descriptor)> FetchManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
        {
            string url = $"{baseUrl}{reference.Repository}/manifests/{tagOrDigest}";
            var call = new Call(tagOrDigest, $"the manifest '{tagOrDigest}' of {reference.Repository}");
            return await RequestAsync(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, url);
                foreach (string type in ManifestAccept)
                {
                    request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
                }
                return request;
            }, call, async (response, ct) =>
            {
                var bytes = await ReadCappedAsync(response, ManifestCap, call.Label, ct).ConfigureAwait(false);
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
            }, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>
        /// Downloads a blob into the cache unless it is there. The bytes are hashed as they arrive;
        /// a dropped or stalled connection resumes with a Range request; the blob is committed only
        /// when its size and digest match, so a damaged download never lands under a digest.
        /// <paramref name="sink"/>, when given, sees the same bytes in the same order as they arrive
        /// (and is told when the download starts over), to begin work on a blob before it is whole;
        /// it is not called when the blob is cached already.
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
            var call = new Call(blob.Digest.ToString(), $"the blob {blob.Digest.ShortHex} of {reference.Repository}");
            using var writer = cache.CreateWriter();
            var hash = blob.Digest.CreateHash();
            try
            {
                long written = 0;
                var buffer = new byte[1 << 16];
                await RequestAsync(() =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, url);
                    if (written > 0)
                    {
                        request.Headers.Range = new RangeHeaderValue(written, null);
                    }
                    return request;
                }, call, async (response, ct) =>
                {
                    if (written > 0 && response.StatusCode != HttpStatusCode.PartialContent)
                    {
                        // The registry ignored the Range: start over.
                        Say($"{blob.Digest.ShortHex}: the registry does not resume; downloading again from the start.");
                        writer.Stream.SetLength(0);
                        writer.Stream.Position = 0;
                        hash.Dispose();
                        hash = blob.Digest.CreateHash();
                        written = 0;
                        sink?.Restart();
                    }
                    using var body = new StallGuardStream(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false), limits.StallWindow, limits.MinBytesPerSecond);
                    int n;
                    while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
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
                            await sink.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        }
                    }
                    return true;
                }, cancellationToken).ConfigureAwait(false);
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
        /// Sends a request and reads its answer with <paramref name="read"/>, answering an auth
        /// challenge once and retrying 429, 5xx, dropped connections, timeouts and stalls (while
        /// sending or while reading) with back-off, up to <see cref="RegistryLimits.Attempts"/>
        /// times. Anything else becomes an error.
        /// </summary>
        private async Task<T> RequestAsync<T>(Func<HttpRequestMessage> makeRequest, Call call, Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
        {
            bool challenged = false;
            for (int attempt = 1; ; attempt++)
            {
                using var request = makeRequest();
                if (!call.ToTokenService && CurrentAuthorization() is { } auth)
                {
                    request.Headers.Authorization = auth;
                }
                // A token service's address (realm, service, scope) is the registry's words.
                string uri = call.ToTokenService ? secrets.ServerText(request.RequestUri!.ToString(), 400) : request.RequestUri!.ToString();
                Say($"{request.Method} {uri}{(request.Headers.Range is { } r ? " " + r : string.Empty)}");
                HttpResponseMessage response;
                try
                {
                    response = await SendOnceAsync(request, call, cancellationToken).ConfigureAwait(false);
                }
                catch (HttpRequestException ex) when (!IsTransient(ex))
                {
                    if (answeredInPlainHttp && !call.ToTokenService)
                    {
                        throw new InitramfsException("PlainHttpRefused", FailureKind.Security,
                            $"{reference.Registry} serves plain HTTP, not HTTPS. Nothing was sent over plain HTTP; -AllowPlainHttp allows it " +
                            "(unencrypted: anyone on the path can read and change the traffic, credentials included).", reference.Registry);
                    }
                    throw Unavailable($"{call.Label}: {Explain(ex)}");
                }
                catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested)
                {
                    // A refused connection is more often a wrong port than a restarting registry: try briefly.
                    bool refused = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } && !IsConnectTimeout(ex);
                    await RetryOrThrowAsync(ex, attempt, refused ? Math.Min(3, limits.Attempts) : limits.Attempts, call, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                using (response)
                {
                    if (response.IsSuccessStatusCode)
                    {
                        try
                        {
                            return await read(response, cancellationToken).ConfigureAwait(false);
                        }
                        catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested)
                        {
                            await RetryOrThrowAsync(ex, attempt, limits.Attempts, call, cancellationToken).ConfigureAwait(false);
                            continue;
                        }
                    }
                    var status = response.StatusCode;
                    if (status == HttpStatusCode.Unauthorized && !challenged && !call.ToTokenService)
                    {
                        challenged = true;
                        await AnswerChallengeAsync(response, cancellationToken).ConfigureAwait(false);
                        // The challenge is part of the protocol, not a failed attempt.
                        attempt--;
                        continue;
                    }
                    string reason = secrets.ServerText(response.ReasonPhrase, 120);
                    if ((status == HttpStatusCode.TooManyRequests || (int)status >= 500) && attempt < limits.Attempts)
                    {
                        var delay = RetryAfter(response) ?? Backoff(attempt);
                        Say($"{call.Label}: {(int)status} {reason}; retrying in {RegistryLimits.Format(delay)} (attempt {attempt + 1} of {limits.Attempts}).");
                        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    string body = await ErrorBodyAsync(response, cancellationToken).ConfigureAwait(false);
                    throw Failure(response, reason, body, call, attempt);
                }
            }
        }

        /// <summary>Retries after a transient failure (a verbose line, then back-off), or throws RegistryUnavailable when the attempts are spent.</summary>
        private async Task RetryOrThrowAsync(Exception ex, int attempt, int attempts, Call call, CancellationToken cancellationToken)
        {
            string why = Explain(ex);
            if (attempt >= attempts)
            {
                throw ex is TransferStalledException || IsConnectTimeout(ex)
                    ? new InitramfsException("RegistryUnavailable", FailureKind.NotFound,
                        $"{reference.Registry} stopped answering: {call.Label} stalled ({why}) on each of {attempt} attempts.", reference.Registry)
                    : Unavailable($"{call.Label}: {why} ({attempt} attempts)");
            }
            var delay = Backoff(attempt);
            Say($"{call.Label}: {why}; retrying in {RegistryLimits.Format(delay)} (attempt {attempt + 1} of {attempts}).");
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>
        /// Sends one request, following redirects (at most 10): the Authorization header goes along
        /// to the same scheme, host and port only, as Docker and containerd do, and never from HTTPS
        /// to plain HTTP elsewhere than on this machine unless -AllowPlainHttp. Each hop must answer
        /// within the first-byte timeout.
        /// </summary>
        private async Task<HttpResponseMessage> SendOnceAsync(HttpRequestMessage request, Call call, CancellationToken cancellationToken)
        {
            var current = request;
            try
            {
                for (int hop = 0; ; hop++)
                {
                    HttpResponseMessage response;
                    using (var firstByte = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                    {
                        if (limits.FirstByteTimeout > TimeSpan.Zero)
                        {
                            firstByte.CancelAfter(limits.FirstByteTimeout);
                        }
                        try
                        {
                            response = await http.SendAsync(current, HttpCompletionOption.ResponseHeadersRead, firstByte.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (firstByte.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                        {
                            throw new TransferStalledException($"no response within {RegistryLimits.Format(limits.FirstByteTimeout)}");
                        }
                    }
                    if ((int)response.StatusCode is not (301 or 302 or 303 or 307 or 308))
                    {
                        return response;
                    }
                    using (response)
                    {
                        var from = current.RequestUri!;
                        var location = response.Headers.Location;
                        if (hop >= MaxRedirects || location is null
                            || !Uri.TryCreate(from, location, out var target) || target.Scheme is not ("http" or "https"))
                        {
                            string where = location is null ? "nowhere" : "'" + secrets.ServerText(location.OriginalString, 200) + "'";
                            throw new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                                hop >= MaxRedirects
                                    ? $"{reference.Registry} redirected {call.Label} more than {MaxRedirects} times."
                                    : $"{reference.Registry} redirected {call.Label} to {where}, which is not an http or https address.", call.What);
                        }
                        if (target.Scheme == "http" && from.Scheme == "https" && !options.AllowPlainHttp && !IsLoopback(target.Authority))
                        {
                            throw new InitramfsException("PlainHttpRefused", FailureKind.Security,
                                $"{reference.Registry} redirected {call.Label} from HTTPS to plain HTTP ({secrets.ServerText(target.GetLeftPart(UriPartial.Path), 200)}); " +
                                "nothing was sent there. -AllowPlainHttp allows it.", reference.Registry);
                        }
                        bool sameOrigin = target.Scheme == from.Scheme && target.Port == from.Port
                            && string.Equals(target.IdnHost, from.IdnHost, StringComparison.OrdinalIgnoreCase);
                        var next = new HttpRequestMessage(current.Method, target);
                        foreach (var accept in current.Headers.Accept)
                        {
                            next.Headers.Accept.Add(accept);
                        }
                        next.Headers.Range = current.Headers.Range;
                        if (sameOrigin)
                        {
                            next.Headers.Authorization = current.Headers.Authorization;
                        }
                        // The address may carry a signature in its query (blob stores): it is not shown.
                        Say($"{(int)response.StatusCode}: {call.Label} is at {secrets.ServerText(target.GetLeftPart(UriPartial.Path), 200)} " +
                            (current.Headers.Authorization is null ? "(no credentials to send)." : sameOrigin ? "(the same host: the credentials go along)." : "(another host: the credentials stay here)."));
                        if (!ReferenceEquals(current, request))
                        {
                            current.Dispose();
                        }
                        current = next;
                    }
                }
            }
            catch
            {
                if (!ReferenceEquals(current, request))
                {
                    current.Dispose();
                }
                throw;
            }
        }

        /// <summary>
        /// Reads a whole body that is not a blob (a manifest, a config, a token answer, a tag list)
        /// with a hard cap enforced as the bytes arrive, and the stall check.
        /// </summary>
        private async Task<byte[]> ReadCappedAsync(HttpResponseMessage response, int cap, string label, CancellationToken cancellationToken)
        {
            if (response.Content.Headers.ContentLength is long announced && announced > cap)
            {
                throw TooLarge(label, cap, announced);
            }
            using var stream = new StallGuardStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), limits.StallWindow, limits.MinBytesPerSecond);
            using var memory = new MemoryStream();
            var buffer = new byte[1 << 14];
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (memory.Length + n > cap)
                {
                    throw TooLarge(label, cap, null);
                }
                memory.Write(buffer, 0, n);
            }
            return memory.ToArray();
        }

        private InitramfsException TooLarge(string label, int cap, long? announced) =>
            new("RegistryResponseTooLarge", FailureKind.LimitExceeded,
                $"{reference.Registry} sent {label} {(announced is { } a ? $"as {Units.Bytes(a)}" : "without end")}; it is read whole, and at most {Cap(cap)} of it.",
                reference.Registry);

        private static string Cap(int bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";

        /// <summary>Up to 64 KiB of an error answer, as text; whatever goes wrong reading it gives what was read so far.</summary>
        private async Task<string> ErrorBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
        {
            using var memory = new MemoryStream();
            try
            {
                using var stream = new StallGuardStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), limits.StallWindow, limits.MinBytesPerSecond);
                var buffer = new byte[1 << 14];
                int n;
                while (memory.Length < ErrorBodyCap && (n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, ErrorBodyCap - memory.Length)), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    memory.Write(buffer, 0, n);
                }
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
            }
            return Encoding.UTF8.GetString(memory.GetBuffer(), 0, (int)memory.Length);
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
                        throw Refused(ChallengeWords(response));
                    }
                    Say($"{reference.Registry} asks for Basic auth; using the credentials of {credential}.");
                    basic = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                    return;
                }
                if (!string.Equals(challenge.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.NotImplemented,
                        $"{reference.Registry} asks for '{secrets.ServerText(challenge.Scheme, 40)}' authentication, which is not supported.", reference.Registry);
                }
                if (tokens.TryGetValue(scope, out var cached) && cached.Expires > DateTimeOffset.UtcNow)
                {
                    // A token we already hold was refused: it does not grant what we asked.
                    tokens.TryRemove(scope, out _);
                    throw Refused(ChallengeWords(response));
                }
                var parameters = ParseChallenge(challenge.Parameter ?? string.Empty);
                var realmUri = CheckRealm(parameters.TryGetValue("realm", out string? realm) ? realm : null);
                var query = new StringBuilder();
                if (parameters.TryGetValue("service", out string? service))
                {
                    query.Append("service=").Append(Uri.EscapeDataString(service));
                }
                query.Append(query.Length > 0 ? "&" : string.Empty).Append("scope=").Append(Uri.EscapeDataString(parameters.TryGetValue("scope", out string? s) ? s : scope));
                var tokenUrl = new UriBuilder(realmUri) { Query = query.ToString() }.Uri;
                string shown = secrets.ServerText(realmUri.GetLeftPart(UriPartial.Path), 200);
                var call = new Call(reference.Registry!, $"the token service at {shown}", ToTokenService: true);
                Say($"GET {shown} for a token ({(credential is null ? "anonymous" : "as " + credential)}).");
                var json = await RequestAsync(() =>
                {
                    var tokenRequest = new HttpRequestMessage(HttpMethod.Get, tokenUrl);
                    if (credential is not null)
                    {
                        tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                    }
                    return tokenRequest;
                }, call, (tokenResponse, ct) => ReadCappedAsync(tokenResponse, TokenCap, "the answer of " + call.Label, ct), cancellationToken).ConfigureAwait(false);
                using var doc = JsonDocument.Parse(json);
                string? token = StringProperty(doc.RootElement, "token") ?? StringProperty(doc.RootElement, "access_token");
                if (string.IsNullOrEmpty(token))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, "The token service answered without a token.", reference.Registry);
                }
                secrets.AddToken(token);
                int lifetime = doc.RootElement.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int seconds) && seconds > 0 ? seconds : 60;
                // Renew a little early so a token never expires in the middle of a request.
                tokens[scope] = (token, DateTimeOffset.UtcNow.AddSeconds(Math.Max(1, lifetime - 10)));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                // InvalidOperationException: a string that is not valid UTF-8 (JsonDocument checks it only when read).
                throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, $"The token service answered with invalid JSON: {secrets.ServerText(ex.Message)}", reference.Registry);
            }
            finally
            {
                authLock.Release();
            }
        }

        /// <summary>
        /// The realm of a Bearer challenge, fit to send credentials to: an absolute http or https
        /// address, and plain HTTP only on this machine or with -AllowPlainHttp.
        /// </summary>
        private Uri CheckRealm(string? realm)
        {
            if (realm is null || !Uri.TryCreate(realm, UriKind.Absolute, out var uri))
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.InvalidData,
                    $"{reference.Registry} sent a Bearer challenge without a valid realm{(realm is null ? string.Empty : " ('" + secrets.ServerText(realm, 200) + "')")}.", reference.Registry);
            }
            if (uri.Scheme is not ("http" or "https"))
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.InvalidData,
                    $"{reference.Registry} sent a Bearer challenge whose realm {secrets.ServerText(uri.GetLeftPart(UriPartial.Path), 200)} is not an http or https address; nothing was sent there.", reference.Registry);
            }
            if (uri.Scheme == "http" && !IsLoopback(uri.Authority) && !options.AllowPlainHttp)
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.Security,
                    $"{reference.Registry} sent a Bearer challenge whose realm {secrets.ServerText(uri.GetLeftPart(UriPartial.Path), 200)} is plain HTTP; nothing was sent there. " +
                    "-AllowPlainHttp allows it (unencrypted: credentials and tokens included).", reference.Registry);
            }
            return uri;
        }

        /// <summary>The error and error_description of a 401's challenge, as the server wrote them (scrubbed), or null.</summary>
        private string? ChallengeWords(HttpResponseMessage response)
        {
            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            if (challenge?.Parameter is not { } parameter)
            {
                return null;
            }
            var p = ParseChallenge(parameter);
            string words = string.Join(": ", new[] { p.GetValueOrDefault("error"), p.GetValueOrDefault("error_description") }.Where(w => !string.IsNullOrEmpty(w)));
            return words.Length == 0 ? null : secrets.ServerText(words);
        }

        private void EnsureCredential()
        {
            if (!credentialLooked)
            {
                credentialLooked = true;
                credential = RegistryCredentials.Find(reference.Registry!);
                secrets.AddCredential(credential);
                if (credential is not null)
                {
                    Say($"Using credentials for {reference.Registry}: {credential}.");
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

        private InitramfsException Refused(string? said = null)
        {
            string words = said is null ? string.Empty : $" It said: {said}.";
            return credential is null
                ? new InitramfsException("RegistryCredentialsRequired", FailureKind.Security,
                    $"{reference.Registry} requires credentials for {reference.Repository}; pass -Credential or log in (auth.json, ~/.docker/config.json).{words}", reference.Registry)
                : new InitramfsException("RegistryCredentialsRefused", FailureKind.Security,
                    $"{reference.Registry} refused the credentials of user '{credential.Username}' (from {credential.Origin}) for {reference.Repository}.{words}", reference.Registry);
        }

        private InitramfsException Unavailable(string why) =>
            new("RegistryUnavailable", FailureKind.NotFound,
                $"{reference.Registry} could not be reached: {why}." +
                (baseUrl.StartsWith("https:", StringComparison.Ordinal) ? " If it serves plain HTTP only, -AllowPlainHttp allows that (unencrypted, credentials included)." : string.Empty),
                reference.Registry);

        private InitramfsException Failure(HttpResponseMessage response, string reason, string body, Call call, int attempts)
        {
            var status = response.StatusCode;
            var (code, said) = ErrorWords(body);
            string words = said.Length > 0 ? $" It said: {said}." : string.Empty;
            string answered = $"{(int)status} {(reason.Length > 0 ? reason : status.ToString())}";
            if (call.ToTokenService)
            {
                return status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                    ? Refused(said.Length > 0 ? said : ChallengeWords(response))
                    : (int)status >= 500 || status == HttpStatusCode.TooManyRequests
                        ? Unavailable($"{call.Label} answered {answered} ({attempts} attempts){(said.Length > 0 ? "; it said: " + said : string.Empty)}")
                        : new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData, $"{call.Label} answered {answered}.{words}", reference.Registry);
            }
            switch (status)
            {
                case HttpStatusCode.Unauthorized:
                    return Refused(ChallengeWords(response) ?? (said.Length > 0 ? said : null));
                case HttpStatusCode.Forbidden:
                    return new InitramfsException("RegistryAccessDenied", FailureKind.Security,
                        $"{reference.Registry} denied access to {reference.Repository}{(credential is null ? " for anonymous pulls" : $" for user '{credential.Username}'")}.{words}", reference.Registry);
                case HttpStatusCode.NotFound when code == "NAME_UNKNOWN":
                    return new InitramfsException("RepositoryNotFound", FailureKind.NotFound,
                        $"The repository '{reference.Repository}' does not exist on {reference.Registry}.", reference.Repository);
                case HttpStatusCode.NotFound when code is "MANIFEST_UNKNOWN" or "" && !call.What.StartsWith("sha", StringComparison.Ordinal):
                    return new InitramfsException("TagNotFound", FailureKind.NotFound,
                        $"The tag '{call.What}' does not exist in {reference.Registry}/{reference.Repository}.", call.What);
                case HttpStatusCode.NotFound:
                    return new InitramfsException("ManifestNotFound", FailureKind.NotFound,
                        $"{reference.Registry}/{reference.Repository} has no {(code == "BLOB_UNKNOWN" ? "blob" : "manifest")} {call.What}.", call.What);
                default:
                    return (int)status >= 500 || status == HttpStatusCode.TooManyRequests
                        ? Unavailable($"{call.Label} answered {answered} ({attempts} attempts){(said.Length > 0 ? "; it said: " + said : string.Empty)}")
                        : new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                            $"{reference.Registry} answered {answered} for {call.Label}.{words}", call.What);
            }
        }

        /// <summary>A string property of a JSON object; null for anything else (a hostile answer must not throw InvalidOperationException).</summary>
        private static string? StringProperty(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        /// <summary>
        /// The first error code of a registry error body (used to tell errors apart; compared, never
        /// shown as is) and the codes and messages of its first three errors, scrubbed, to quote.
        /// </summary>
        private (string Code, string Said) ErrorWords(string body)
        {
            string code = string.Empty;
            var said = new List<string>();
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
                {
                    foreach (var e in errors.EnumerateArray().Take(3))
                    {
                        string? c = StringProperty(e, "code");
                        string? m = StringProperty(e, "message");
                        if (code.Length == 0 && c is not null)
                        {
                            code = c;
                        }
                        string text = string.Join(": ", new[] { c, m }.Where(x => !string.IsNullOrEmpty(x)));
                        if (text.Length > 0)
                        {
                            said.Add(secrets.ServerText(text, 200));
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
            }
            return (code, string.Join("; ", said));
        }

        /// <summary>
        /// Dropped connections, resets, timeouts and stalls are retried; a name that does not
        /// resolve or a TLS handshake that fails will not get better by asking again, so they fail
        /// at once.
        /// </summary>
        private static bool IsTransient(Exception ex) => ex switch
        {
            HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError } => false,
            HttpRequestException or IOException => true,
            OperationCanceledException when IsConnectTimeout(ex) => true,
            _ => false,
        };

        /// <summary>The handler's ConnectTimeout expired (it reports a TimeoutException somewhere in the chain).</summary>
        private static bool IsConnectTimeout(Exception ex)
        {
            for (var e = ex; e is not null; e = e.InnerException)
            {
                if (e is TimeoutException)
                {
                    return true;
                }
            }
            return false;
        }

        /// <summary>What went wrong, in words fit for a message: .NET's words quote the server at times, so they are scrubbed.</summary>
        private string Explain(Exception ex)
        {
            if (ex is TransferStalledException)
            {
                return ex.Message;
            }
            if (IsConnectTimeout(ex))
            {
                return $"no connection within {RegistryLimits.Format(limits.ConnectTimeout)}";
            }
            var parts = new List<string>();
            for (var e = ex; e is not null && parts.Count < 4; e = e.InnerException)
            {
                string m = e.Message.Replace(", see inner exception.", string.Empty, StringComparison.Ordinal).TrimEnd('.');
                if (m.Length > 0 && !parts.Contains(m))
                {
                    parts.Add(m);
                }
            }
            return secrets.ServerText(string.Join(": ", parts), 400);
        }

        /// <summary>
        /// Any failure out of a pull, as the module's error: an <see cref="InitramfsException"/>
        /// whose text reveals a known secret is rebuilt with the text scrubbed (and without inner
        /// exceptions of other types);
        /// a .NET exception of the transport (HTTP, sockets, network I/O, timeouts) becomes
        /// RegistryUnavailable, one of URIs or schemes RegistryRequestFailed. Anything else (a bug,
        /// a file error of the cache) is left as it is.
        /// </summary>
        public Exception Contain(Exception ex)
        {
            switch (ex)
            {
                case InitramfsException ie:
                    return Clean(ie);
                case AggregateException { InnerExceptions.Count: 1 } ae:
                    return Contain(ae.InnerException!);
                // The transport's failures (not the cache's: a file error there stays what it is).
                case HttpRequestException or HttpIOException or TransferStalledException or System.Net.Sockets.SocketException
                    or IOException { InnerException: System.Net.Sockets.SocketException } or TimeoutException or OperationCanceledException:
                    return Unavailable(Explain(ex));
                case UriFormatException or NotSupportedException:
                    return new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                        $"A request to {reference.Registry} could not be made: {Explain(ex)}.", reference.Registry);
                default:
                    return ex;
            }
        }

        private InitramfsException Clean(InitramfsException ex)
        {
            if (!secrets.Reveals(ex.ToString()) && !(ex.Target is string t && secrets.Reveals(t)))
            {
                return ex;
            }
            var inner = ex.InnerException is InitramfsException ie ? Clean(ie) : null;
            object? target = ex.Target is string s ? secrets.Scrub(s) : ex.Target;
            return new InitramfsException(ex.ErrorId, ex.Kind, secrets.Scrub(ex.Message), target, inner);
        }

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
