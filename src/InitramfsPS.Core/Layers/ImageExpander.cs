using System;
using System.IO;
using System.Linq;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>Limits and callbacks for <see cref="ImageExpander.Expand"/>.</summary>
    internal sealed class ExpandOptions
    {
        /// <summary>The most bytes one layer may expand to; past it the layer is a decompression bomb.</summary>
        public long MaxLayerSize { get; init; } = DefaultMaxLayerSize;

        /// <summary>16 GiB: more than any real layer, less than a disk fills with.</summary>
        public const long DefaultMaxLayerSize = 16L << 30;

        /// <summary>
        /// The most entries a rootfs may hold (metadata is kept in memory), and the most records
        /// (entries and whiteouts) one layer may hold: counted as the layer is parsed and applied, so
        /// a layer stops at the cap instead of being read whole first.
        /// </summary>
        public int MaxEntries { get; init; } = DefaultMaxEntries;

        /// <summary>2,000,000 entries.</summary>
        public const int DefaultMaxEntries = 2_000_000;

        /// <summary>Called as layer bytes are read: (layer index, layer count, bytes read, layer size).</summary>
        public Action<int, int, long, long>? Progress { get; init; }
    }

    /// <summary>
    /// Turns an image into a rootfs. Each layer is read once, as a stream: its stored bytes are
    /// hashed against the layer digest, and a compressed layer is decompressed into the cache
    /// (keyed and checked by its diff_id) so that file contents can later be read at random
    /// offsets. Entries are applied only after every check on the layer passed.
    /// </summary>
    internal static class ImageExpander
    {
        /// <summary>Applies every layer of <paramref name="image"/> in order to a new rootfs.</summary>
        public static Rootfs Expand(OciImage image, BlobStore cache, ExpandOptions options, CancellationToken cancellationToken)
        {
            var rootfs = new Rootfs(image);
            if (image.BlobDirectory == cache.Root)
            {
                // Expanding an image from the cache uses all of it, whether or not its compressed
                // layers are read again: it is leased, and it ages as one for eviction.
                cache.Use(new[] { image.Digest, image.ConfigDigest }.Concat(image.Layers.Select(l => l.Digest)));
            }
            foreach (var layer in image.Layers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var parsed = Read(image, layer, cache, options, cancellationToken);
                LayerApplier.Apply(rootfs, parsed, layer.DisplayName, options.MaxEntries);
            }
            return rootfs;
        }

        private static ParsedLayer Read(OciImage image, LayerDescriptor layer, BlobStore cache, ExpandOptions options, CancellationToken cancellationToken)
        {
            string name = layer.DisplayName;
            // The diff_id comes from the config, whose digest the manifest pins: a cached tar that
            // hashes to it is the verified layer, and the compressed blob need not be read again.
            if (layer.Compression != LayerCompression.None && layer.DiffId is { } known && cache.Has(known))
            {
                // A pull unpacks layers as they arrive, under the default limit: a smaller
                // -MaxLayerSize still refuses the layer here, whoever unpacked it.
                long cachedLength = new FileInfo(cache.PathOf(known)).Length;
                if (cachedLength > options.MaxLayerSize)
                {
                    throw TooLarge(name, layer, options.MaxLayerSize);
                }
                var indexed = LayerIndex.TryRead(cache, known, options.MaxEntries);
                if (indexed is not null)
                {
                    return indexed;
                }
                var fromCache = TryReadCached(cache, known, name, options.MaxEntries, cancellationToken);
                if (fromCache is not null)
                {
                    LayerIndex.Write(cache, known, fromCache);
                    return fromCache;
                }
            }
            using var raw = (image.BlobDirectory == cache.Root ? cache : new BlobStore(image.BlobDirectory)).OpenRead(layer.Digest, name, out string blobPath);
            if (raw.Length != layer.Size)
            {
                throw new InitramfsException("LayerSizeMismatch", FailureKind.InvalidData,
                    $"{name}: the blob has {raw.Length} bytes but the manifest says {layer.Size}.", layer.Digest.ToString());
            }
            var actual = MediaTypes.Sniff(raw);
            if (actual != layer.Compression)
            {
                throw new InitramfsException("LayerCompressionMismatch", FailureKind.InvalidData,
                    $"{name}: the media type '{layer.MediaType}' says {layer.Compression} but the bytes are {actual}.", layer.Digest.ToString());
            }

            if (layer.Compression == LayerCompression.None)
            {
                // An uncompressed layer is its own random-access form: entries point into the blob,
                // whose blocks are recorded as they are hashed here and checked again as they are read.
                var parsed = new ParsedLayer { BackingPath = blobPath, BackingLength = raw.Length, MaxEntries = options.MaxEntries };
                using var hash = layer.Digest.CreateHash();
                using var blocks = new BlockHasher();
                var counted = new HashingReadStream(raw, hash, blocks);
                try
                {
                    ClassifyAll(counted, parsed, name, () => Progress(options, layer, image, counted.BytesRead), cancellationToken);
                    // Padding after the end blocks is part of the digest too.
                    counted.Drain();
                    Progress(options, layer, image, counted.BytesRead);
                }
                catch (Exception ex) when (IsDataError(ex))
                {
                    throw DataError(ex, name, layer, raw);
                }
                if (!IsStored(layer, counted.BytesRead, hash.GetHashAndReset()))
                {
                    throw DigestMismatch(name, layer, null);
                }
                var digest = layer.Digest;
                if (layer.DiffId is { } diffId && diffId != digest)
                {
                    throw new InitramfsException("LayerDiffIdMismatch", FailureKind.InvalidData,
                        $"{name}: the config's diff_id {diffId} differs from the digest of this uncompressed layer.", layer.Digest.ToString());
                }
                // A blob of the cache (a pull, a docker archive's member) is removed when it is found
                // changed; a layout is the user's and is only reported.
                bool inCache = string.Equals(image.BlobDirectory, cache.Root, StringComparison.Ordinal);
                parsed.Blocks = new BlockDigests(parsed.BackingPath, parsed.BackingLength, blocks.Finish(),
                    inCache ? BlockOwner.CacheBlob : BlockOwner.LayoutBlob, digest.ToString(), null, inCache ? cache.MarkerOf(digest) : null);
                return parsed;
            }

            var result = new ParsedLayer { MaxEntries = options.MaxEntries };
            UnpackedLayer unpacked;
            try
            {
                unpacked = LayerUnpacker.Unpack(raw, layer.Compression, layer.Digest, cache, options.MaxLayerSize,
                    limit => TooLarge(name, layer, limit),
                    header => LayerApplier.Classify(header, result, name),
                    read => options.Progress?.Invoke(layer.Index, image.Layers.Count, read, layer.Size),
                    cancellationToken);
            }
            catch (Exception ex) when (IsDataError(ex))
            {
                throw DataError(ex, name, layer, raw);
            }
            var computed = unpacked.TarDigest;
            using (unpacked)
            {
                if (!IsStored(layer, unpacked.RawLength, unpacked.RawHash))
                {
                    throw DigestMismatch(name, layer, null);
                }
                if (layer.DiffId is { } expected && expected != computed)
                {
                    throw new InitramfsException("LayerDiffIdMismatch", FailureKind.InvalidData,
                        $"{name}: the uncompressed layer hashes to {computed}, but the config's diff_id is {expected}.", layer.Digest.ToString());
                }
                result.BackingPath = unpacked.Writer.Commit(computed);
                result.BackingLength = unpacked.TarLength;
                result.Blocks = new BlockDigests(result.BackingPath, unpacked.TarLength, unpacked.BlockDigests, BlockOwner.CachedLayer,
                    computed.ToString(), cache.IndexPathOf(computed), cache.MarkerOf(computed));
            }
            LayerIndex.Write(cache, computed, result);
            return result;
        }

        /// <summary>
        /// The error for a parse or decompression failure of a layer: bytes that do not match their
        /// digest are reported as that, since a damaged or tampered blob is the likelier cause; the
        /// stored bytes in <paramref name="raw"/> are hashed again from the start to tell.
        /// </summary>
        private static InitramfsException DataError(Exception ex, string name, LayerDescriptor layer, Stream raw)
        {
            raw.Position = 0;
            using var hash = layer.Digest.CreateHash();
            var counted = new HashingReadStream(raw, hash);
            if (!TryDrain(counted) || !IsStored(layer, counted.BytesRead, hash.GetHashAndReset()))
            {
                return DigestMismatch(name, layer, ex);
            }
            return ex as InitramfsException ?? new InitramfsException("LayerCorrupt", FailureKind.InvalidData,
                $"{name}: the {layer.Compression} data is corrupt: {ex.Message}", layer.Digest.ToString(), ex);
        }

        /// <summary>Whether stored bytes of <paramref name="length"/> that hash to <paramref name="hash"/> are the layer's.</summary>
        private static bool IsStored(LayerDescriptor layer, long length, byte[] hash) => length == layer.Size && layer.Digest.Matches(hash);

        /// <summary>Reads every tar header of a layer into <paramref name="parsed"/>, checking for Ctrl+C as it goes.</summary>
        private static void ClassifyAll(Stream tar, ParsedLayer parsed, string name, Action? progress, CancellationToken cancellationToken)
            => TarReader.ReadAll(tar, header => LayerApplier.Classify(header, parsed, name), progress, cancellationToken);

        private static ParsedLayer? TryReadCached(BlobStore cache, Digest diffId, string name, int maxEntries, CancellationToken cancellationToken)
        {
            string path = cache.PathOf(diffId);
            var parsed = new ParsedLayer { BackingPath = path, MaxEntries = maxEntries };
            try
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
                parsed.BackingLength = file.Length;
                using var hash = diffId.CreateHash();
                using var blocks = new BlockHasher();
                var stream = new HashingReadStream(file, hash, blocks);
                ClassifyAll(stream, parsed, name, null, cancellationToken);
                stream.Drain();
                if (diffId.Matches(hash.GetHashAndReset()) && stream.BytesRead == parsed.BackingLength)
                {
                    parsed.Blocks = new BlockDigests(path, parsed.BackingLength, blocks.Finish(), BlockOwner.CachedLayer,
                        diffId.ToString(), cache.IndexPathOf(diffId), cache.MarkerOf(diffId));
                    return parsed;
                }
            }
            catch (InitramfsException ex) when (ex.ErrorId is "LayerTarCorrupt" or "LayerEntryNameInvalid")
            {
                // A damaged cache entry is not the image's fault: drop it and decompress again.
            }
            catch (IOException)
            {
            }
            Files.TryDelete(path);
            return null;
        }

        private static bool IsDataError(Exception ex) =>
            ex is InitramfsException { Kind: FailureKind.InvalidData or FailureKind.Security or FailureKind.NotImplemented or FailureKind.LimitExceeded }
            || ex is InvalidDataException || ex is EndOfStreamException || ex is ZstdSharp.ZstdException;

        private static bool TryDrain(HashingReadStream raw)
        {
            try
            {
                raw.Drain();
                return true;
            }
            catch (IOException)
            {
                return false;
            }
        }

        private static InitramfsException TooLarge(string name, LayerDescriptor layer, long limit) =>
            new("LayerTooLarge", FailureKind.LimitExceeded,
                $"{name}: the layer expands past {limit} bytes (a decompression bomb?); raise -MaxLayerSize if it is genuine.", layer.Digest.ToString());

        private static InitramfsException DigestMismatch(string name, LayerDescriptor layer, Exception? inner) =>
            new("DigestMismatch", FailureKind.InvalidData,
                $"{name}: the layer's bytes do not match its digest {layer.Digest} (damaged or tampered blob).", layer.Digest.ToString(), inner);

        private static void Progress(ExpandOptions options, LayerDescriptor layer, OciImage image, long read)
            => options.Progress?.Invoke(layer.Index, image.Layers.Count, read, layer.Size);
    }
}
