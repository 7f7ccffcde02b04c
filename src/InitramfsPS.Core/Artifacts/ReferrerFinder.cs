using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.Registry;

namespace InitramfsPS.Artifacts
{
    /// <summary>
    /// Lists the initramfs artifacts that refer to an image (OCI 1.1 referrers): the image's
    /// manifest for the platform, and the index above it when the reference names one, asked
    /// through the referrers API, or, where the registry has none (it answers 404), through the
    /// fallback tag <c>&lt;alg&gt;-&lt;hex&gt;</c>. Each artifact's manifest is then read (verified
    /// by digest) for what it holds.
    /// </summary>
    internal static class ReferrerFinder
    {
        /// <summary>The most entries read from the referrers lists of one image, all pages and subjects together.</summary>
        public const int MaxEntries = 10_000;

        /// <summary>The most artifacts described (one manifest request each); more are named in a warning and left out.</summary>
        public const int MaxArtifacts = 256;

        public static async Task<IReadOnlyList<InitramfsArtifact>> FindAsync(ImageReference image, Platform platform, RegistryOptions options, Action<string>? warning, CancellationToken cancellationToken)
        {
            using var client = new RegistryClient(image, options);
            return await FindAsync(client, image, platform, warning, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>As <see cref="FindAsync(ImageReference, Platform, RegistryOptions, Action{string}?, CancellationToken)"/>, over a client of the image's repository.</summary>
        internal static async Task<IReadOnlyList<InitramfsArtifact>> FindAsync(RegistryClient client, ImageReference image, Platform platform, Action<string>? warning, CancellationToken cancellationToken)
        {
            return await client.ContainAsync(() => FindWithAsync(client, image, platform, message => warning?.Invoke(client.Secrets.Scrub(message)), cancellationToken), cancellationToken).ConfigureAwait(false);
        }

        private static async Task<IReadOnlyList<InitramfsArtifact>> FindWithAsync(RegistryClient client, ImageReference image, Platform platform, Action<string> warning, CancellationToken cancellationToken)
        {
            string wanted = image.Digest?.ToString() ?? image.Tag ?? "latest";
            var (bytes, top) = await client.GetManifestAsync(wanted, cancellationToken).ConfigureAwait(false);
            // The platform's manifest first: a publisher names the image it exported; the index
            // too, for one that named the tag's index.
            var subjects = new List<Digest>();
            var index = IndexEntries(bytes, top);
            if (index is not null)
            {
                subjects.Add(LayoutResolver.PickPlatform(index, platform, $"{image} ({top.Digest})").Digest);
            }
            subjects.Add(top.Digest);

            var found = new List<(Digest Subject, ReferrerEntry Entry)>();
            var seen = new HashSet<Digest>();
            int read = 0;
            foreach (var subject in subjects)
            {
                if (read >= MaxEntries)
                {
                    break;
                }
                foreach (var page in await ListAsync(client, subject, cancellationToken).ConfigureAwait(false))
                {
                    var entries = Entries(page, $"referrers of {subject}", MaxEntries - read, out bool cut);
                    read += entries.Count;
                    // The artifactType filter is optional for a registry: it is applied here again.
                    foreach (var entry in entries.Where(e => e.ArtifactType is null or ArtifactMediaTypes.ArtifactType))
                    {
                        if (seen.Add(entry.Descriptor.Digest))
                        {
                            found.Add((subject, entry));
                        }
                    }
                    if (cut)
                    {
                        warning($"{image.Registry}/{image.Repository}@{subject} has more referrers than the {MaxEntries} read; the rest are left out.");
                        break;
                    }
                }
            }
            if (found.Count > MaxArtifacts)
            {
                warning($"{found.Count} initramfs artifacts refer to {image}; only the first {MaxArtifacts} are described.");
                found = found.Take(MaxArtifacts).ToList();
            }

            var artifacts = new List<InitramfsArtifact>();
            foreach (var (subject, entry) in found)
            {
                var digest = entry.Descriptor.Digest;
                string reference = $"{image.Registry}/{image.Repository}@{digest}";
                ArtifactManifest manifest;
                try
                {
                    var fetched = await client.TryGetManifestAsync(digest.ToString(), cancellationToken).ConfigureAwait(false);
                    if (fetched is not { } manifestBytes)
                    {
                        warning($"{reference} is listed as a referrer of {subject} but its manifest is gone; it is left out.");
                        continue;
                    }
                    manifest = ArtifactManifest.Parse(manifestBytes.Bytes, manifestBytes.Descriptor.Digest, manifestBytes.Descriptor.MediaType, reference);
                }
                catch (InitramfsException ex) when (ex.ErrorId is "NotInitramfsArtifact" or "ArtifactInvalid" or "ArtifactTooLarge" or "BlobTooLarge"
                    or "ManifestInvalid" or "DescriptorInvalid" or "InvalidDigest" or "DigestMismatch" or "RegistryResponseTooLarge")
                {
                    // One listed entry that cannot be read leaves the others to be listed.
                    warning($"{reference} is listed as an initramfs artifact of {subject} but cannot be read as one ({ex.ErrorId}: {ex.Message}); it is left out.");
                    continue;
                }
                artifacts.Add(new InitramfsArtifact(reference, digest, ArtifactMediaTypes.ArtifactType, subject, manifest.Compression, manifest.ArchiveSize, manifest.Kernel is not null, manifest.Annotations));
            }
            // Newest first, so that `| Select-Object -First 1` is the latest build.
            return artifacts.OrderByDescending(a => a.Created ?? DateTimeOffset.MinValue).ThenBy(a => a.Digest.ToString(), StringComparer.Ordinal).ToList();
        }

        /// <summary>The referrers API's pages, or the fallback tag's index (none when the tag does not exist: nothing refers to the subject).</summary>
        private static async Task<IReadOnlyList<byte[]>> ListAsync(RegistryClient client, Digest subject, CancellationToken cancellationToken)
        {
            var pages = await client.GetReferrersAsync(subject, ArtifactMediaTypes.ArtifactType, cancellationToken).ConfigureAwait(false);
            if (pages is not null)
            {
                return pages;
            }
            var tagged = await client.TryGetManifestAsync(FallbackTag(subject), cancellationToken).ConfigureAwait(false);
            return tagged is { } index ? new[] { index.Bytes } : Array.Empty<byte[]>();
        }

        /// <summary>The referrers tag schema of the distribution spec: <c>&lt;alg&gt;-&lt;ref&gt;</c>, the digest with ':' as '-' (cut to the 128 characters a tag may have).</summary>
        public static string FallbackTag(Digest subject)
        {
            string tag = $"{subject.Algorithm}-{subject.Hex}";
            return tag.Length > 128 ? tag[..128] : tag;
        }

        /// <summary>An entry of a referrers index: the manifest's descriptor and its artifactType.</summary>
        internal sealed record ReferrerEntry(Descriptor Descriptor, string? ArtifactType);

        /// <summary>
        /// The entries of one referrers index, at most <paramref name="max"/> (<paramref name="cut"/>
        /// says whether there were more). An entry that is not a valid descriptor is skipped.
        /// </summary>
        internal static List<ReferrerEntry> Entries(byte[] page, string what, int max, out bool cut)
        {
            cut = false;
            var entries = new List<ReferrerEntry>();
            using var doc = LayoutResolver.Parse(page, what);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
            {
                throw new InitramfsException("IndexInvalid", FailureKind.InvalidData, $"The {what} is not an image index: it has no manifests array.", what);
            }
            foreach (var element in manifests.EnumerateArray())
            {
                if (entries.Count >= max)
                {
                    cut = true;
                    break;
                }
                Descriptor descriptor;
                try
                {
                    descriptor = LayoutResolver.ParseDescriptor(element, what);
                }
                catch (InitramfsException)
                {
                    continue;
                }
                string? artifactType = element.TryGetProperty("artifactType", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                entries.Add(new ReferrerEntry(descriptor, artifactType));
            }
            return entries;
        }

        /// <summary>The entries when <paramref name="bytes"/> is an index, else null.</summary>
        private static List<Descriptor>? IndexEntries(byte[] bytes, Descriptor top)
        {
            using var doc = LayoutResolver.Parse(bytes, $"manifest {top.Digest}");
            var root = doc.RootElement;
            string? mediaType = top.MediaType ?? (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("mediaType", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null);
            bool isIndex = MediaTypes.IsIndex(mediaType) || (mediaType is null && root.ValueKind == JsonValueKind.Object && root.TryGetProperty("manifests", out _));
            return isIndex ? LayoutResolver.ParseIndex(bytes, $"index {top.Digest}") : null;
        }
    }
}
