using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// A client of the OCI distribution API for one repository: the fetcher of manifests and
    /// blobs, over a transport that is a chain of handlers, each one idea (as in
    /// go-containerregistry's remote/transport):
    /// <see cref="AuthHandler"/> (Basic and Bearer challenges, tokens cached per scope) over
    /// <see cref="RetryHandler"/> (429 honouring Retry-After, 5xx, dropped connections, timeouts)
    /// over <see cref="RedirectHandler"/> (where the Authorization header may go) over
    /// <see cref="FirstByteTimeoutHandler"/> over <see cref="UserAgentHandler"/> over
    /// <see cref="PlainHttpHandler"/> (HTTPS unless on this machine or allowed, and the sockets).
    /// Blob downloads are hashed as they stream, resumed with a Range request after a drop, and
    /// committed to the cache only when their digest and size check out.
    /// <para>
    /// Hardened against the registry itself: every request has a connect and a first-byte
    /// timeout and every body a minimum rate (<see cref="RegistryLimits"/>); every body that is
    /// not a blob is read with a hard cap as it streams; every text a server wrote passes
    /// <see cref="SecretScrubber.ServerText"/> before it reaches a message; and every failure
    /// leaves as an <see cref="InitramfsException"/> with a stable id (<see cref="Contain"/>).
    /// </para>
    /// </summary>
    internal sealed class RegistryClient : IDisposable
    {
        /// <summary>The most a manifest, an index or a config may weigh: it is read whole.</summary>
        public const int ManifestCap = 4 << 20;

        /// <summary>The most a token answer may weigh.</summary>
        public const int TokenCap = 1 << 20;

        /// <summary>The most a tag list may weigh.</summary>
        public const int TagListCap = 1 << 20;

        /// <summary>How much of an error body is read (the rest is dropped with the connection).</summary>
        public const int ErrorBodyCap = 64 << 10;

        /// <summary>Every manifest type we read, so a registry never answers 404 for an OCI manifest.</summary>
        private static readonly string[] ManifestAccept =
        {
            MediaTypes.OciIndex, MediaTypes.OciManifest, MediaTypes.DockerManifestList, MediaTypes.DockerManifest,
            MediaTypes.DockerSchema1Signed, MediaTypes.DockerSchema1,
        };

        private readonly RegistrySession session;
        private readonly RegistryErrors errors;
        private readonly HttpMessageInvoker transport;
        private readonly RegistryExchange exchange;
        private readonly ImageReference reference;
        private readonly RegistryLimits limits;

        /// <summary>Opens a client for the repository of <paramref name="reference"/>.</summary>
        public RegistryClient(ImageReference reference, RegistryOptions options)
            : this(reference, options, null)
        {
        }

        /// <summary>A client whose requests go to <paramref name="network"/> (a test's stub) instead of sockets, below all the handlers.</summary>
        internal RegistryClient(ImageReference reference, RegistryOptions options, HttpMessageHandler? network)
        {
            this.reference = reference;
            limits = options.Limits;
            session = new RegistrySession(reference, options);
            errors = new RegistryErrors(session);
            var rules = Rules = new RetryRules(session, errors);
            var chain = new AuthHandler(session, errors, rules)
            {
                InnerHandler = new RetryHandler(session, errors, rules)
                {
                    InnerHandler = new RedirectHandler(session)
                    {
                        InnerHandler = new FirstByteTimeoutHandler(limits)
                        {
                            InnerHandler = new UserAgentHandler
                            {
                                InnerHandler = new PlainHttpHandler(session, network),
                            },
                        },
                    },
                },
            };
            transport = new HttpMessageInvoker(chain, disposeHandler: true);
            exchange = new RegistryExchange(transport, session, errors, rules);
        }

        /// <summary>What the handlers share: the repository, settings, credential and scrubber (for the pusher, which sends through the same chain).</summary>
        internal RegistrySession Session => session;

        /// <summary>One call over the chain, with the answer read or made an error.</summary>
        internal RegistryExchange Exchange => exchange;

        /// <summary>The failures as the module's errors.</summary>
        internal RegistryErrors Errors => errors;

        /// <summary>When and how long to wait before a failed request is tried again.</summary>
        internal RetryRules Rules { get; }

        /// <summary>What masks secrets in the text servers write; it knows the credential and every token received.</summary>
        public SecretScrubber Secrets => session.Secrets;

        /// <summary>True for localhost, 127.0.0.0/8 and ::1, where plain HTTP is allowed without asking.</summary>
        public static bool IsLoopback(string hostAndPort) => PlainHttpHandler.IsLoopback(hostAndPort);

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
                var call = new RegistryCall("tags", $"the tag list of {reference.Repository}");
                var bytes = await exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Get, $"{session.BaseUrl}{reference.Repository}/tags/list?n=20"), call,
                    (response, ct) => exchange.ReadCappedAsync(response, TagListCap, call.Label, ct), cancellationToken).ConfigureAwait(false);
                using var doc = JsonDocument.Parse(bytes);
                var tags = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("tags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => session.Secrets.ServerText(x.GetString(), 128)).ToList()
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

        /// <summary>
        /// A manifest or index by tag or digest, checked as <see cref="GetManifestAsync"/> checks it,
        /// or null when the registry has no such tag or manifest: for a tag whose absence is an
        /// answer (the referrers fallback tag of an image nothing refers to).
        /// </summary>
        public async Task<(byte[] Bytes, Descriptor Descriptor)?> TryGetManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
        {
            try
            {
                return await FetchManifestAsync(tagOrDigest, cancellationToken).ConfigureAwait(false);
            }
            catch (InitramfsException ex) when (ex.ErrorId is "TagNotFound" or "ManifestNotFound")
            {
                return null;
            }
        }

        /// <summary>The most pages of a referrers answer followed through its Link headers.</summary>
        public const int ReferrersPageLimit = 16;

        /// <summary>
        /// The pages of the referrers API answer for <paramref name="subject"/> (OCI image indexes,
        /// each read whole under <see cref="ManifestCap"/>), following <c>Link: &lt;…&gt;; rel="next"</c>
        /// on the same registry for at most <see cref="ReferrersPageLimit"/> pages; null when the
        /// registry answers 404, which the distribution spec reserves for a registry without the
        /// API (one with it answers an empty index for a subject nothing refers to).
        /// <paramref name="artifactType"/> is sent as the filter, which registries may ignore.
        /// </summary>
        public async Task<IReadOnlyList<byte[]>?> GetReferrersAsync(Digest subject, string? artifactType, CancellationToken cancellationToken)
        {
            var pages = new List<byte[]>();
            string? url = $"{session.BaseUrl}{reference.Repository}/referrers/{subject}" + (artifactType is null ? string.Empty : "?artifactType=" + Uri.EscapeDataString(artifactType));
            var call = new RegistryCall("referrers/" + subject, $"the referrers of {reference.Repository}@{subject.ShortHex}");
            while (url is not null)
            {
                if (pages.Count == ReferrersPageLimit)
                {
                    session.Say($"{call.Label}: more than {ReferrersPageLimit} pages; the rest is not read.");
                    break;
                }
                string page = url;
                byte[] bytes;
                try
                {
                    (bytes, url) = await exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Get, page), call, async (response, ct) =>
                    {
                        var body = await exchange.ReadCappedAsync(response, ManifestCap, call.Label, ct).ConfigureAwait(false);
                        return (body, NextPage(response, page));
                    }, cancellationToken).ConfigureAwait(false);
                }
                catch (InitramfsException ex) when (pages.Count == 0 && ex.ErrorId is "TagNotFound" or "ManifestNotFound" or "RepositoryNotFound")
                {
                    // Every 404 maps to one of these ids (by the error code the body names, if any).
                    return null;
                }
                pages.Add(bytes);
            }
            return pages;
        }

        /// <summary>The next page a Link header names, resolved against the page it came with; only on the same registry (scheme, host, port), where our credential may go.</summary>
        private static string? NextPage(HttpResponseMessage response, string page)
        {
            if (!response.Headers.TryGetValues("Link", out var links))
            {
                return null;
            }
            foreach (string link in links.Take(4))
            {
                int open = link.IndexOf('<', StringComparison.Ordinal), close = link.IndexOf('>', StringComparison.Ordinal);
                if (open < 0 || close < open || !link.Contains("rel=\"next\"", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                if (Uri.TryCreate(new Uri(page), link[(open + 1)..close], out var next)
                    && Uri.Compare(next, new Uri(page), UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0)
                {
                    return next.AbsoluteUri;
                }
            }
            return null;
        }

        private async Task<(byte[] Bytes, Descriptor Descriptor)> FetchManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
        {
            string url = $"{session.BaseUrl}{reference.Repository}/manifests/{tagOrDigest}";
            var call = new RegistryCall(tagOrDigest, $"the manifest '{tagOrDigest}' of {reference.Repository}");
            return await exchange.RunAsync(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, url);
                foreach (string type in ManifestAccept)
                {
                    request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
                }
                return request;
            }, call, async (response, ct) =>
            {
                var bytes = await exchange.ReadCappedAsync(response, ManifestCap, call.Label, ct).ConfigureAwait(false);
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
            string url = $"{session.BaseUrl}{reference.Repository}/blobs/{blob.Digest}";
            var call = new RegistryCall(blob.Digest.ToString(), $"the blob {blob.Digest.ShortHex} of {reference.Repository}");
            using var writer = cache.CreateWriter();
            // The cache's writer hashes with sha256 as it writes; a second sha256 here cost a pull
            // of the synthetic 1 GB image 0.4 s of CPU. Another algorithm is hashed beside it.
            bool sha256 = blob.Digest.Algorithm == "sha256";
            var hash = sha256 ? null : blob.Digest.CreateHash();
            try
            {
                long written = 0;
                var buffer = new byte[1 << 16];
                await exchange.RunAsync(() =>
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
                        session.Say($"{blob.Digest.ShortHex}: the registry does not resume; downloading again from the start.");
                        writer.Stream.SetLength(0);
                        writer.Stream.Position = 0;
                        hash?.Dispose();
                        hash = sha256 ? null : blob.Digest.CreateHash();
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
                        hash?.AppendData(buffer, 0, n);
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
                if (written != blob.Size || (hash is null ? writer.Digest != blob.Digest : !blob.Digest.Matches(hash.GetHashAndReset())))
                {
                    throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                        $"The blob {blob.Digest} of {reference} arrived as {written} bytes that do not match its digest; nothing was cached.", blob.Digest.ToString());
                }
                writer.Commit(blob.Digest);
            }
            finally
            {
                hash?.Dispose();
            }
        }

        /// <summary>
        /// Any failure out of a pull, as the module's error: an <see cref="InitramfsException"/>
        /// whose text reveals a known secret is rebuilt with the text scrubbed (and without inner
        /// exceptions of other types);
        /// a .NET exception of the transport (HTTP, sockets, network I/O, timeouts) becomes
        /// RegistryUnavailable, one of URIs or schemes RegistryRequestFailed. Anything else (a bug,
        /// a file error of the cache) is left as it is.
        /// </summary>
        public Exception Contain(Exception ex) => errors.Contain(ex);

        /// <summary>
        /// Runs <paramref name="work"/>, which uses this client, as the one way out of it: any failure
        /// leaves as <see cref="Contain"/> makes it; a cancellation the caller asked for stays one.
        /// </summary>
        public async Task<T> ContainAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken)
        {
            try
            {
                return await work().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                var contained = Contain(ex);
                if (ReferenceEquals(contained, ex))
                {
                    throw;
                }
                throw contained;
            }
        }

        /// <inheritdoc/>
        public void Dispose() => transport.Dispose();
    }
}
