using System;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Registry
{
    /// <summary>What became of one blob a push needed.</summary>
    internal enum BlobPushOutcome
    {
        /// <summary>The repository had it (HEAD answered 200): nothing was sent.</summary>
        Present,

        /// <summary>Mounted from another repository of the registry: nothing was sent.</summary>
        Mounted,

        /// <summary>Its bytes were uploaded.</summary>
        Uploaded,
    }

    /// <summary>
    /// The push side of the distribution API, over a <see cref="RegistryClient"/>'s chain of
    /// handlers (so auth, retries of requests that may be sent again, timeouts and plain-HTTP rules
    /// are the pulls' own). A blob is asked for first (HEAD), then mounted from the source image's
    /// repository where one is known, and only then uploaded: a POST opens a session, a blob of at
    /// most <see cref="ChunkSize"/> goes in one PUT, a larger one in PATCHes of that size and a PUT
    /// with the rest. A dropped upload is not sent again blindly: the session's status (its Range)
    /// says how much the registry holds, and the upload goes on from there, within the attempts of
    /// <see cref="RegistryLimits"/>. Manifests are PUT last, and the digest the registry names
    /// must be the one computed here.
    /// </summary>
    internal sealed class RegistryPusher
    {
        /// <summary>
        /// 16 MiB a request. Each request costs a round trip and, on docker-registry, a write of
        /// its upload state; each drop costs at most one chunk sent again. At 16 MiB a 1 GiB
        /// archive's largest parts need a few requests, and a drop on a slow link (1 MB/s) loses
        /// at most about 16 s of sending. Most parts of an archive are smaller (the exporter's
        /// parts are a few MiB), so they go in one PUT.
        /// </summary>
        public const long ChunkSize = 16L << 20;

        private readonly RegistrySession session;
        private readonly RegistryExchange exchange;
        private readonly RegistryErrors errors;
        private readonly RetryRules rules;
        private readonly string repository;

        public RegistryPusher(RegistryClient client, long chunkSize = ChunkSize)
        {
            session = client.Session;
            exchange = client.Exchange;
            errors = client.Errors;
            rules = client.Rules;
            repository = session.Reference.Repository!;
            Chunk = chunkSize;
        }

        /// <summary>The size of a PATCH; a blob no larger goes in one PUT.</summary>
        public long Chunk { get; }

        private string RepositoryUrl => session.BaseUrl + repository;

        /// <summary>Whether the repository has the blob.</summary>
        public async Task<bool> BlobExistsAsync(Digest digest, CancellationToken cancellationToken)
        {
            var call = new RegistryCall(digest.ToString(), $"the blob {digest.ShortHex} of {repository}");
            return await exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Head, $"{RepositoryUrl}/blobs/{digest}"), call,
                static r => r.IsSuccessStatusCode || r.StatusCode == HttpStatusCode.NotFound,
                (r, _) => Task.FromResult(r.IsSuccessStatusCode), cancellationToken).ConfigureAwait(false);
        }

        /// <summary>
        /// Makes sure the repository has <paramref name="blob"/>: present, mounted from
        /// <paramref name="mountFrom"/>, or uploaded from <paramref name="source"/>;
        /// <paramref name="progress"/> gets the bytes of it sent so far.
        /// </summary>
        public async Task<BlobPushOutcome> PushBlobAsync(Descriptor blob, BlobSource source, string? mountFrom, Action<long>? progress, CancellationToken cancellationToken)
        {
            if (await BlobExistsAsync(blob.Digest, cancellationToken).ConfigureAwait(false))
            {
                session.Say($"{blob.Digest.ShortHex}: {repository} has it already.");
                return BlobPushOutcome.Present;
            }
            Uri location;
            if (mountFrom is { Length: > 0 } && mountFrom != repository)
            {
                var (mounted, at) = await StartUploadAsync(blob.Digest,
                    $"?mount={Uri.EscapeDataString(blob.Digest.ToString())}&from={Uri.EscapeDataString(mountFrom)}", cancellationToken).ConfigureAwait(false);
                if (mounted)
                {
                    session.Say($"{blob.Digest.ShortHex}: mounted from {mountFrom}.");
                    return BlobPushOutcome.Mounted;
                }
                // 202: the registry could not mount it and opened an upload session instead.
                location = at!;
            }
            else
            {
                location = (await StartUploadAsync(blob.Digest, string.Empty, cancellationToken).ConfigureAwait(false)).Location!;
            }
            await UploadAsync(blob, source, location, progress, cancellationToken).ConfigureAwait(false);
            return BlobPushOutcome.Uploaded;
        }

        /// <summary>POST to open an upload session (or to mount); true when the blob was mounted (201).</summary>
        private async Task<(bool Mounted, Uri? Location)> StartUploadAsync(Digest digest, string query, CancellationToken cancellationToken)
        {
            var call = new RegistryCall(digest.ToString(), $"an upload of the blob {digest.ShortHex} to {repository}");
            var url = new Uri($"{RepositoryUrl}/blobs/uploads/{query}");
            return await WriteAsync(() => exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Post, url)
            {
                Content = new ByteArrayContent(Array.Empty<byte>()),
            }, call, static r => r.StatusCode is HttpStatusCode.Created or HttpStatusCode.Accepted, (r, _) =>
            {
                if (r.StatusCode == HttpStatusCode.Created)
                {
                    return Task.FromResult<(bool, Uri?)>((true, null));
                }
                return Task.FromResult<(bool, Uri?)>((false, UploadLocation(r, url, call)));
            }, cancellationToken), $"the blob {digest.ShortHex}").ConfigureAwait(false);
        }

        private async Task UploadAsync(Descriptor blob, BlobSource source, Uri location, Action<long>? progress, CancellationToken cancellationToken)
        {
            long offset = 0;
            var resume = new RegistryCall(blob.Digest.ToString(), $"the upload of the blob {blob.Digest.ShortHex} to {repository}");
            int failures = 0;
            // A bound on the loop whatever a registry's Range says: every chunk once, and each failure.
            long rounds = (blob.Size / Chunk) + 2 + session.Limits.Attempts;
            for (long round = 0; ; round++)
            {
                if (round > rounds * 2)
                {
                    throw new InitramfsException("PushFailed", FailureKind.InvalidData,
                        $"The upload of the blob {blob.Digest.ShortHex} to {session.Registry}/{repository} made no progress after {round} requests.", blob.Digest.ToString());
                }
                long remaining = blob.Size - offset;
                long start = offset;
                var call = new RegistryCall(blob.Digest.ToString(), $"the upload of the blob {blob.Digest.ShortHex} to {repository}") { NoResend = true };
                try
                {
                    if (remaining <= Chunk)
                    {
                        var at = location;
                        await WriteAsync(() => exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Put, WithQuery(at, "digest=" + Uri.EscapeDataString(blob.Digest.ToString())))
                        {
                            Content = source.Content(start, remaining, n => progress?.Invoke(start + n)),
                        }, call, static r => r.IsSuccessStatusCode, (r, _) => Task.FromResult(CheckBlobDigest(r, blob)), cancellationToken), $"the blob {blob.Digest.ShortHex}").ConfigureAwait(false);
                        return;
                    }
                    var here = location;
                    (location, offset) = await WriteAsync(() => exchange.RunAsync(() =>
                    {
                        var request = new HttpRequestMessage(HttpMethod.Patch, here) { Content = source.Content(start, Chunk, n => progress?.Invoke(start + n)) };
                        request.Content.Headers.TryAddWithoutValidation("Content-Range",
                            string.Create(CultureInfo.InvariantCulture, $"{start}-{start + Chunk - 1}"));
                        return request;
                    }, call, static r => r.StatusCode == HttpStatusCode.Accepted, (r, _) =>
                        Task.FromResult((UploadLocation(r, here, call), RangeEnd(r) ?? start + Chunk)), cancellationToken), $"the blob {blob.Digest.ShortHex}").ConfigureAwait(false);
                }
                catch (Exception ex) when (IsDrop(ex) && !cancellationToken.IsCancellationRequested)
                {
                    resume.Attempt = ++failures;
                    await rules.WaitOrThrowAsync(ex, resume, session.Limits.Attempts, cancellationToken).ConfigureAwait(false);
                    var status = await UploadStatusAsync(blob, location, cancellationToken).ConfigureAwait(false);
                    if (status is { } s)
                    {
                        (location, offset) = (s.Location, s.Offset);
                        session.Say($"{blob.Digest.ShortHex}: the registry holds {offset} of {blob.Size} bytes; going on from there.");
                    }
                    else if (await BlobExistsAsync(blob.Digest, cancellationToken).ConfigureAwait(false))
                    {
                        // The last PUT arrived, only its answer was lost.
                        return;
                    }
                    else
                    {
                        session.Say($"{blob.Digest.ShortHex}: the registry dropped the upload session; starting again.");
                        location = (await StartUploadAsync(blob.Digest, string.Empty, cancellationToken).ConfigureAwait(false)).Location!;
                        offset = 0;
                    }
                }
            }
        }

        /// <summary>A connection that dropped, or an answer that says the registry may try again: the upload is resumed from its status.</summary>
        private static bool IsDrop(Exception ex) =>
            RetryRules.IsTransient(ex) || ex is InitramfsException { ErrorId: "RegistryUnavailable" } || ex is HttpIOException;

        /// <summary>Where an upload session is, and how much of it the registry holds; null when the session is gone (404).</summary>
        private async Task<(Uri Location, long Offset)?> UploadStatusAsync(Descriptor blob, Uri location, CancellationToken cancellationToken)
        {
            var call = new RegistryCall(blob.Digest.ToString(), $"the status of the upload of the blob {blob.Digest.ShortHex}");
            return await exchange.RunAsync(() => new HttpRequestMessage(HttpMethod.Get, location), call,
                static r => r.IsSuccessStatusCode || r.StatusCode == HttpStatusCode.NotFound, (r, _) =>
                {
                    if (r.StatusCode == HttpStatusCode.NotFound)
                    {
                        return Task.FromResult<(Uri, long)?>(null);
                    }
                    long offset = RangeEnd(r) ?? 0;
                    if (offset > blob.Size)
                    {
                        throw new InitramfsException("PushFailed", FailureKind.InvalidData,
                            $"{session.Registry} says it holds {offset} bytes of the blob {blob.Digest.ShortHex}, which has {blob.Size}.", blob.Digest.ToString());
                    }
                    return Task.FromResult<(Uri, long)?>((r.Headers.Location is null ? location : UploadLocation(r, location, call), offset));
                }, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>The bytes a session holds, from its <c>Range: 0-&lt;last&gt;</c> header; "0-0" is read as none (docker-registry writes it for an empty session).</summary>
        private static long? RangeEnd(HttpResponseMessage response)
        {
            if (!response.Headers.TryGetValues("Range", out var values))
            {
                return null;
            }
            string text = values.FirstOrDefault() ?? string.Empty;
            if (text.StartsWith("bytes=", StringComparison.Ordinal))
            {
                text = text[6..];
            }
            int dash = text.IndexOf('-', StringComparison.Ordinal);
            if (dash <= 0 || !long.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long last))
            {
                return null;
            }
            return last == 0 ? 0 : last + 1;
        }

        /// <summary>
        /// The session's address from a Location header, resolved against the request. It must be
        /// on the registry's own scheme, host and port: the handlers would send the credentials there.
        /// </summary>
        private Uri UploadLocation(HttpResponseMessage response, Uri requestUri, RegistryCall call)
        {
            var location = response.Headers.Location;
            if (location is null || !Uri.TryCreate(requestUri, location, out var target))
            {
                throw new InitramfsException("PushFailed", FailureKind.InvalidData,
                    $"{session.Registry} answered {call.Label} without the address of an upload session.", call.What);
            }
            var registry = new Uri(session.BaseUrl);
            if (target.Scheme != registry.Scheme || target.Port != registry.Port || !string.Equals(target.IdnHost, registry.IdnHost, StringComparison.OrdinalIgnoreCase))
            {
                throw new InitramfsException("PushFailed", FailureKind.Security,
                    $"{session.Registry} sent {call.Label} to another host ({session.Secrets.ServerText(target.GetLeftPart(UriPartial.Authority), 200)}); nothing was sent there.", call.What);
            }
            return target;
        }

        private static Uri WithQuery(Uri uri, string query) =>
            new(uri.ToString() + (string.IsNullOrEmpty(uri.Query) ? "?" : "&") + query);

        private bool CheckBlobDigest(HttpResponseMessage response, Descriptor blob)
        {
            if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.FirstOrDefault(), out var claimed)
                && claimed.Algorithm == blob.Digest.Algorithm && claimed != blob.Digest)
            {
                throw new InitramfsException("PushDigestMismatch", FailureKind.InvalidData,
                    $"{session.Registry} stored the blob {blob.Digest} under {claimed}.", blob.Digest.ToString());
            }
            return true;
        }

        /// <summary>
        /// PUTs a manifest (or index) under a tag or its digest, and checks that the registry stored
        /// it under the digest of these bytes. <c>SubjectHandled</c>: the registry answered with an
        /// <c>OCI-Subject</c> header, so its referrers API lists the manifest.
        /// </summary>
        public async Task<(Digest Digest, bool SubjectHandled)> PutManifestAsync(string tagOrDigest, string mediaType, byte[] bytes, CancellationToken cancellationToken)
        {
            var digest = Digest.Compute("sha256", bytes);
            var call = new RegistryCall(tagOrDigest, $"the manifest '{tagOrDigest}' of {repository}");
            return await WriteAsync(() => exchange.RunAsync(() =>
                {
                    var content = new ByteArrayContent(bytes);
                    content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
                    return new HttpRequestMessage(HttpMethod.Put, $"{RepositoryUrl}/manifests/{tagOrDigest}") { Content = content };
                }, call, (r, _) =>
                {
                    if (r.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.FirstOrDefault(), out var claimed)
                        && claimed != digest)
                    {
                        throw new InitramfsException("PushDigestMismatch", FailureKind.InvalidData,
                            $"{session.Registry} stored the manifest '{tagOrDigest}' of {repository} under {claimed}, but its bytes hash to {digest}.", claimed.ToString());
                    }
                    return Task.FromResult((digest, r.Headers.Contains("OCI-Subject")));
                }, cancellationToken), $"the manifest '{tagOrDigest}'").ConfigureAwait(false);
        }

        /// <summary>A manifest or index by tag or digest, read whole with <paramref name="cap"/>; null when there is none (404).</summary>
        public async Task<byte[]?> GetManifestOrNullAsync(string tagOrDigest, string mediaType, int cap, CancellationToken cancellationToken)
        {
            var call = new RegistryCall(tagOrDigest, $"the manifest '{tagOrDigest}' of {repository}");
            return await exchange.RunAsync(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, $"{RepositoryUrl}/manifests/{tagOrDigest}");
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(mediaType));
                return request;
            }, call, static r => r.IsSuccessStatusCode || r.StatusCode == HttpStatusCode.NotFound,
                async (r, ct) => r.StatusCode == HttpStatusCode.NotFound ? null : await exchange.ReadCappedAsync(r, cap, call.Label, ct).ConfigureAwait(false),
                cancellationToken).ConfigureAwait(false);
        }

        /// <summary>
        /// A refusal on a request that writes, after the reads were let through, is the registry
        /// refusing the push (PushRefused); another failure of a write is PushFailed. Failures
        /// of reads, of the network and of the limits keep their ids.
        /// </summary>
        private async Task<T> WriteAsync<T>(Func<Task<T>> run, string what)
        {
            try
            {
                return await run().ConfigureAwait(false);
            }
            catch (InitramfsException ex)
            {
                throw AsPushFailure(ex, what);
            }
        }

        private InitramfsException AsPushFailure(InitramfsException ex, string what)
        {
            string user = session.Credential is null ? "anonymous pushes" : $"user '{session.Credential.Username}'";
            return ex.ErrorId switch
            {
                "RegistryAccessDenied" or "RegistryCredentialsRequired" or "RegistryCredentialsRefused" => new InitramfsException("PushRefused", FailureKind.Security,
                    $"{session.Registry} refused to let {user} push to {repository} ({what}): {ex.Message}", repository, ex),
                "RepositoryNotFound" or "ManifestNotFound" or "TagNotFound" or "RegistryRequestFailed" => new InitramfsException("PushFailed", FailureKind.InvalidData,
                    $"{session.Registry} did not take {what} for {repository}: {ex.Message}", repository, ex),
                _ => ex,
            };
        }
    }
}
