using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.Registry;

namespace InitramfsPS.Artifacts
{
    /// <summary>What <see cref="ArtifactPublisher"/> pushes, and where.</summary>
    internal sealed class PublishPlan
    {
        public required SplitArchive Archive { get; init; }

        public required ArtifactConfig Config { get; init; }

        /// <summary>Where the artifact goes: a registry reference with a tag.</summary>
        public required ImageReference Target { get; init; }

        public string? KernelPath { get; init; }

        /// <summary>The image the archive was made from, when known.</summary>
        public ImageReference? Source { get; init; }

        /// <summary>The digest of the source image's manifest, when known (a rootfs knows its image's).</summary>
        public Digest? SourceDigest { get; init; }

        public required DateTimeOffset Created { get; init; }

        /// <summary>Credential, plain HTTP, limits, verbose output (for pulls and pushes alike).</summary>
        public required RegistryOptions Registry { get; init; }

        /// <summary>Bytes of blobs handled so far (sent, or found there) and the total.</summary>
        public Action<long, long>? Progress { get; init; }

        public Action<string>? Warning { get; init; }
    }

    /// <summary>
    /// Pushes an archive as an initramfs artifact: the parts, the kernel and the config (each
    /// only if the repository lacks it, mounted from the source image's repository where it can
    /// be), then the manifest under its tag, then, when the manifest has a subject and the
    /// registry did not say it handled it (no <c>OCI-Subject</c> header), the referrers fallback
    /// index. In that order, so nothing refers to what is not there yet.
    /// </summary>
    internal static class ArtifactPublisher
    {
        public static async Task<PublishReport> PublishAsync(PublishPlan plan, CancellationToken cancellationToken)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var target = plan.Target;
            var source = plan.Source is { Transport: ImageTransport.Registry } s ? s : null;
            bool sameRegistry = source is not null && string.Equals(source.Registry, target.Registry, StringComparison.OrdinalIgnoreCase);
            var pushOptions = new RegistryOptions
            {
                Credential = plan.Registry.Credential,
                AllowPlainHttp = plan.Registry.AllowPlainHttp,
                Limits = plan.Registry.Limits,
                FirstDelay = plan.Registry.FirstDelay,
                Verbose = plan.Registry.Verbose,
                Push = true,
                MountFrom = sameRegistry ? source!.Repository : null,
            };
            using var client = new RegistryClient(target, pushOptions);
            try
            {
                // The source's manifest is read for a subject (which needs its media type and size),
                // or for the digest of a source named by tag; an image in another registry whose
                // digest is known is not asked for (that registry may not be reachable from here).
                var known = plan.SourceDigest ?? source?.Digest;
                var subject = source is null || (!sameRegistry && known is not null) ? null
                    : await SourceManifestAsync(plan, source, sameRegistry, cancellationToken).ConfigureAwait(false);
                var annotations = new SortedDictionary<string, string>(StringComparer.Ordinal)
                {
                    [ArtifactDocuments.Created] = plan.Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                };
                if (source is not null)
                {
                    // A registry reference only: a layout's or an archive's path means nothing to a fleet host.
                    annotations[ArtifactDocuments.BaseName] = source.ToString();
                }
                if ((subject?.Digest ?? known) is { } baseDigest)
                {
                    annotations[ArtifactDocuments.BaseDigest] = baseDigest.ToString();
                }
                if (!sameRegistry)
                {
                    subject = null;
                }
                else if (source!.Repository != target.Repository)
                {
                    plan.Warning?.Invoke($"The artifact names {source} as its subject, but goes to the repository {target.Repository}: registries list referrers per repository, so it is found from {target.Registry}/{target.Repository}@{subject!.Digest}, not from {source.Repository}. Publish to {source.Registry}/{source.Repository}:<tag> to have it found from the image.");
                }

                var blobs = new List<(ArtifactDescriptor Descriptor, BlobSource Source)>();
                foreach (var part in plan.Archive.Parts)
                {
                    blobs.Add((new ArtifactDescriptor(part.MediaType, part.Digest, part.Length), BlobSource.FromFile(plan.Archive.Path, part.Offset)));
                }
                if (plan.KernelPath is { } kernel)
                {
                    var (digest, size) = HashFile(kernel, cancellationToken);
                    blobs.Add((new ArtifactDescriptor(ArtifactMediaTypes.Kernel, digest, size)
                    {
                        Annotations = new Dictionary<string, string> { [ArtifactDocuments.Title] = Path.GetFileName(kernel) },
                    }, BlobSource.FromFile(kernel, 0)));
                }
                byte[] configBytes = ArtifactDocuments.Config(plan.Config);
                var config = new ArtifactDescriptor(ArtifactMediaTypes.Config, Digest.Compute("sha256", configBytes), configBytes.Length);

                var pusher = new RegistryPusher(client);
                long total = blobs.Sum(b => b.Descriptor.Size) + config.Size;
                long done = 0, uploaded = 0, skipped = 0;
                foreach (var (descriptor, blobSource) in blobs.Append((config, BlobSource.FromBytes(configBytes))))
                {
                    long before = done;
                    var outcome = await pusher.PushBlobAsync(new Descriptor(descriptor.MediaType, descriptor.Digest, descriptor.Size), blobSource,
                        pushOptions.MountFrom, sent => plan.Progress?.Invoke(before + sent, total), cancellationToken).ConfigureAwait(false);
                    if (outcome == BlobPushOutcome.Uploaded)
                    {
                        uploaded += descriptor.Size;
                    }
                    else
                    {
                        skipped += descriptor.Size;
                    }
                    done += descriptor.Size;
                    plan.Progress?.Invoke(done, total);
                }

                var layers = blobs.Select(b => b.Descriptor).ToList();
                byte[] manifest = ArtifactDocuments.Manifest(config, layers, annotations, subject);
                string tag = target.Tag ?? "latest";
                var (manifestDigest, subjectHandled) = await pusher.PutManifestAsync(tag, ArtifactDocuments.ManifestMediaType, manifest, cancellationToken).ConfigureAwait(false);
                string? referrers = null;
                if (subject is not null)
                {
                    if (subjectHandled)
                    {
                        referrers = "referrers API";
                        plan.Registry.Verbose?.Invoke($"{target.Registry} lists the artifact as a referrer of {subject.Digest} itself (OCI-Subject).");
                    }
                    else
                    {
                        referrers = await UpdateFallbackAsync(pusher, subject, new ArtifactDescriptor(ArtifactDocuments.ManifestMediaType, manifestDigest, manifest.Length)
                        {
                            ArtifactType = ArtifactMediaTypes.ArtifactType,
                            Annotations = annotations,
                        }, plan.Registry.Verbose, cancellationToken).ConfigureAwait(false);
                    }
                }
                return new PublishReport
                {
                    Reference = $"{target.Registry}/{target.Repository}:{tag}",
                    Digest = manifestDigest,
                    Subject = subject?.Digest,
                    Referrers = referrers,
                    Layers = layers.Count,
                    BytesUploaded = uploaded,
                    BytesSkipped = skipped,
                    Size = total,
                    Duration = clock.Elapsed,
                };
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw client.Contain(ex);
            }
        }

        /// <summary>
        /// The source image's manifest as a descriptor: read from its registry (which gives its
        /// media type and size; a subject needs both). An index is resolved to the manifest of the
        /// artifact's platform, the manifest a rootfs of the image was expanded from.
        /// </summary>
        private static async Task<ArtifactDescriptor> SourceManifestAsync(PublishPlan plan, ImageReference source, bool sameRegistry, CancellationToken cancellationToken)
        {
            using var client = new RegistryClient(source, new RegistryOptions
            {
                // Credentials given are for the target; another registry's come from the auth files.
                Credential = sameRegistry ? plan.Registry.Credential : null,
                AllowPlainHttp = plan.Registry.AllowPlainHttp,
                Limits = plan.Registry.Limits,
                FirstDelay = plan.Registry.FirstDelay,
                Verbose = plan.Registry.Verbose,
            });
            try
            {
                string what = plan.SourceDigest?.ToString() ?? source.Digest?.ToString() ?? source.Tag ?? "latest";
                var (bytes, descriptor) = await client.GetManifestAsync(what, cancellationToken).ConfigureAwait(false);
                string mediaType = descriptor.MediaType ?? MediaTypeOf(bytes) ?? MediaTypes.OciManifest;
                if (MediaTypes.IsIndex(mediaType) && PlatformEntry(bytes, plan.Config) is { } entry)
                {
                    return entry;
                }
                return new ArtifactDescriptor(mediaType, descriptor.Digest, descriptor.Size);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw client.Contain(ex);
            }
        }

        private static string? MediaTypeOf(byte[] manifest)
        {
            try
            {
                using var doc = JsonDocument.Parse(manifest);
                return RegistryErrors.StringProperty(doc.RootElement, "mediaType");
            }
            catch (JsonException)
            {
                return null;
            }
        }

        /// <summary>The entry of an index for the artifact's platform; null when there is none.</summary>
        private static ArtifactDescriptor? PlatformEntry(byte[] index, ArtifactConfig config)
        {
            try
            {
                using var doc = JsonDocument.Parse(index);
                if (!doc.RootElement.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
                {
                    return null;
                }
                foreach (var m in manifests.EnumerateArray().Take(1000))
                {
                    if (m.ValueKind == JsonValueKind.Object && m.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object
                        && RegistryErrors.StringProperty(p, "os") == config.Os && RegistryErrors.StringProperty(p, "architecture") == config.Architecture
                        && (config.Variant is null || RegistryErrors.StringProperty(p, "variant") == config.Variant)
                        && Digest.TryParse(RegistryErrors.StringProperty(m, "digest"), out var digest)
                        && m.TryGetProperty("size", out var size) && size.TryGetInt64(out long length))
                    {
                        return new ArtifactDescriptor(RegistryErrors.StringProperty(m, "mediaType") ?? MediaTypes.OciManifest, digest, length);
                    }
                }
            }
            catch (JsonException)
            {
            }
            return null;
        }

        /// <summary>Adds the artifact to the subject's fallback tag (<c>sha256-&lt;hex&gt;</c>) unless it is listed there; returns the tag.</summary>
        private static async Task<string> UpdateFallbackAsync(RegistryPusher pusher, ArtifactDescriptor subject, ArtifactDescriptor entry, Action<string>? verbose, CancellationToken cancellationToken)
        {
            string tag = $"{subject.Digest.Algorithm}-{subject.Digest.Hex}";
            var existing = await pusher.GetManifestOrNullAsync(tag, ArtifactMediaTypes.Index, RegistryClient.ManifestCap, cancellationToken).ConfigureAwait(false);
            var updated = ArtifactDocuments.AddReferrer(existing, entry, tag);
            if (updated is null)
            {
                verbose?.Invoke($"The referrers index '{tag}' lists {entry.Digest} already.");
                return tag;
            }
            if (updated.Length > RegistryClient.ManifestCap)
            {
                throw new InitramfsException("ReferrersIndexTooLarge", FailureKind.LimitExceeded,
                    $"The referrers index '{tag}' would weigh {Units.Bytes(updated.Length)}, more than a registry takes; it is not changed.", tag);
            }
            await pusher.PutManifestAsync(tag, ArtifactMediaTypes.Index, updated, cancellationToken).ConfigureAwait(false);
            verbose?.Invoke($"The registry has no referrers API: the artifact is listed in the index tagged '{tag}'.");
            return tag;
        }

        private static (Digest Digest, long Size) HashFile(string path, CancellationToken cancellationToken)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 20];
            long size = 0;
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                hash.AppendData(buffer, 0, n);
                size += n;
            }
            return (Digest.FromSha256(hash.GetHashAndReset()), size);
        }
    }

    /// <summary>What Publish-Initramfs pushed.</summary>
    public sealed class PublishReport
    {
        /// <summary>Where the artifact is: <c>registry/repository:tag</c>.</summary>
        public required string Reference { get; init; }

        /// <summary>The digest of the artifact's manifest (<c>sha256:…</c>), as the registry stored it.</summary>
        public required Digest Digest { get; init; }

        /// <summary>The digest of the source image's manifest the artifact refers to, when it has a subject.</summary>
        public Digest? Subject { get; init; }

        /// <summary>How the artifact is listed as a referrer of its subject: <c>referrers API</c>, or the fallback tag it was added to; null without a subject.</summary>
        public string? Referrers { get; init; }

        /// <summary>Layers of the manifest: the archive's parts, then the kernel when given.</summary>
        public int Layers { get; init; }

        /// <summary>Bytes of blobs sent to the registry.</summary>
        public long BytesUploaded { get; init; }

        /// <summary>Bytes of blobs the registry had already, or mounted from the source image's repository: not sent.</summary>
        public long BytesSkipped { get; init; }

        /// <summary>Bytes of all the artifact's blobs (layers and config).</summary>
        public long Size { get; init; }

        /// <summary>How long the publish took.</summary>
        public TimeSpan Duration { get; init; }

        /// <summary>The reference pinned to the digest, for a fleet to pull exactly this.</summary>
        public string DigestReference => Reference[..Reference.LastIndexOf(':')] + "@" + Digest;

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Reference}@{Digest.ToString()[..19]}… {Layers} layers, {Units.Bytes(BytesUploaded)} uploaded, {Units.Bytes(BytesSkipped)} skipped");
    }
}
