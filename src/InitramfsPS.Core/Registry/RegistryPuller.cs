using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Registry
{
    /// <summary>Settings of <see cref="RegistryPuller.PullAsync"/>.</summary>
    internal sealed class PullOptions
    {
        /// <summary>Client settings: credentials, plain HTTP, retries, verbose output.</summary>
        public RegistryOptions Registry { get; init; } = new();

        /// <summary>How many blobs download at once.</summary>
        public int MaxParallelDownloads { get; init; } = 3;

        /// <summary>Use only the cache; never contact the registry.</summary>
        public bool Offline { get; init; }

        /// <summary>Bytes done per blob, updated by the download workers (key: digest).</summary>
        public ConcurrentDictionary<string, (long Done, long Size)>? Progress { get; init; }

        /// <summary>
        /// Gives, for a layer about to download, a sink that sees its bytes as they arrive (to
        /// unpack it meanwhile), or null for none. The second argument says what the sink may tell
        /// the user, scrubbed of the registry's secrets. Unset, layers are only downloaded.
        /// </summary>
        public Func<LayerDescriptor, Action<string>?, IBlobSink?>? LayerSink { get; init; }
    }

    /// <summary>
    /// Pulls an image from a registry into the cache: the manifest (by tag or digest), through an
    /// index to one platform, then the config and the layers, several at a time. Everything lands
    /// in the content-addressed cache, verified; the image is then resolved from the cache exactly
    /// like a local layout, so what a pull returns and what -Offline returns cannot differ.
    /// </summary>
    internal static class RegistryPuller
    {
        /// <summary>Pulls <paramref name="reference"/> for <paramref name="platform"/> into <paramref name="cache"/>.</summary>
        public static async Task<OciImage> PullAsync(ImageReference reference, Platform platform, BlobStore cache, PullOptions options, CancellationToken cancellationToken)
        {
            if (options.Offline)
            {
                return FromCache(reference, platform, cache);
            }
            using var client = new RegistryClient(reference, options.Registry);
            return await client.ContainAsync(() => PullWithAsync(client, reference, platform, cache, options, cancellationToken), cancellationToken).ConfigureAwait(false);
        }

        private static async Task<OciImage> PullWithAsync(RegistryClient client, ImageReference reference, Platform platform, BlobStore cache, PullOptions options, CancellationToken cancellationToken)
        {
            // Verbose lines of the pull (some quote the registry's documents) go through the client's scrubber too.
            Action<string>? verbose = options.Registry.Verbose is { } say ? message => say(client.Secrets.Scrub(message)) : null;
            string wanted = reference.Digest?.ToString() ?? reference.Tag ?? "latest";
            var (bytes, top) = await client.GetManifestAsync(wanted, cancellationToken).ConfigureAwait(false);
            Put(cache, top.Digest, bytes);
            var descriptor = top;
            for (int depth = 0; ; depth++)
            {
                if (depth >= 4)
                {
                    throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData, "Indexes are nested more than 4 deep.", top.Digest.ToString());
                }
                var document = LayoutResolver.ParseDocument(bytes, descriptor);
                if (document.Index is { } entries)
                {
                    var chosen = LayoutResolver.PickPlatform(entries, platform, $"{reference} ({top.Digest})");
                    verbose?.Invoke($"{reference}: {platform} is {chosen.Digest}.");
                    if (cache.Has(chosen.Digest))
                    {
                        bytes = cache.ReadVerified(chosen, "manifest");
                    }
                    else
                    {
                        (bytes, _) = await client.GetManifestAsync(chosen.Digest.ToString(), cancellationToken).ConfigureAwait(false);
                        Put(cache, chosen.Digest, bytes);
                    }
                    descriptor = chosen with { MediaType = chosen.MediaType };
                    continue;
                }
                await DownloadAllAsync(client, document, descriptor.Digest, cache, options, verbose, cancellationToken).ConfigureAwait(false);
                break;
            }
            if (reference.Digest is null && reference.Tag is { } tag)
            {
                cache.WriteRef(reference.Registry!, reference.Repository!, tag, top.Digest);
            }
            return LayoutResolver.Resolve(reference, cache, top, platform);
        }

        private static async Task DownloadAllAsync(RegistryClient client, LayoutResolver.ManifestDocument manifest, Digest manifestDigest, BlobStore cache, PullOptions options, Action<string>? verbose, CancellationToken cancellationToken)
        {
            // A config is read whole (as a manifest is): refuse a descriptor that says it is huge before downloading it.
            if (manifest.Config!.Size > RegistryClient.ManifestCap)
            {
                throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded,
                    $"The config of {manifestDigest} is {Units.Bytes(manifest.Config.Size)}, says its manifest; a config is read whole and limited to {RegistryClient.ManifestCap >> 20} MiB. Nothing was downloaded.",
                    manifest.Config.Digest.ToString());
            }
            await client.DownloadBlobAsync(manifest.Config!, cache, null, cancellationToken).ConfigureAwait(false);
            // The config names each layer's diff_id, which a sink may need (to unpack a layer while it
            // downloads, so that Expand-OciLayers need not read it again).
            var (_, layers) = LayoutResolver.ReadLayers(cache, manifest, manifestDigest);
            await BlobDownloads.DownloadAllAsync(client, manifest.Layers, cache, Math.Max(1, options.MaxParallelDownloads), options.Progress,
                options.LayerSink is { } sinks ? index => sinks(layers[index], verbose) : null, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>Resolves an image that an earlier pull left in the cache.</summary>
        private static OciImage FromCache(ImageReference reference, Platform platform, BlobStore cache)
        {
            var digest = reference.Digest ?? cache.ReadRef(reference.Registry!, reference.Repository!, reference.Tag ?? "latest");
            if (digest is not { } d || !cache.Has(d))
            {
                throw NotInCache(reference, null);
            }
            OciImage image;
            try
            {
                image = LayoutResolver.Resolve(reference, cache, new Descriptor(null, d, new FileInfo(cache.PathOf(d)).Length), platform);
            }
            catch (InitramfsException ex) when (ex.ErrorId == "BlobMissing")
            {
                throw NotInCache(reference, ex);
            }
            if (image.Layers.Any(l => !cache.Has(l.Digest) && !(l.DiffId is { } diff && cache.Has(diff))))
            {
                throw NotInCache(reference, null);
            }
            return image;
        }

        private static InitramfsException NotInCache(ImageReference reference, Exception? inner) =>
            new("NotInCache", FailureKind.NotFound, $"{reference} is not (wholly) in the cache; pull it once without -Offline.", reference.ToString(), inner);

        /// <summary>Keeps verified manifest bytes in the cache under their digest, unless they are there.</summary>
        internal static void Put(BlobStore cache, Digest digest, byte[] bytes)
        {
            if (cache.Has(digest))
            {
                return;
            }
            using var writer = cache.CreateWriter();
            writer.Write(bytes, bytes.Length);
            writer.Commit(digest);
        }
    }
}
