using System;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Compression;

namespace InitramfsPS.Export
{
    /// <summary>
    /// The part store of an export in the cache: compressed parts in the <see cref="PartCache"/>
    /// under the sha256 of their uncompressed bytes, this export's codec, level and compressor
    /// build; recipes in <see cref="PartRecipes"/>.
    /// </summary>
    internal sealed class CachedPartStore : IPartStore
    {
        private readonly PartCache parts;
        private readonly PartRecipes recipes;
        private readonly string codec;
        private readonly int level;
        private readonly string compressor;

        /// <summary>The store for exports at <paramref name="compression"/> and <paramref name="level"/> in <paramref name="store"/> (whose lease the export holds).</summary>
        public CachedPartStore(BlobStore store, InitramfsCompression compression, int level)
        {
            codec = compression == InitramfsCompression.Gzip ? "gzip" : compression == InitramfsCompression.Zstd ? "zstd"
                : throw new ArgumentException("An uncompressed archive has no compressed parts.", nameof(compression));
            this.level = level;
            compressor = PartKey.CompressorIdentity(codec);
            parts = new PartCache(store);
            recipes = new PartRecipes(store.Root);
        }

        /// <inheritdoc/>
        public KeptPart? Find(byte[] uncompressedSha256, CancellationToken cancellationToken) =>
            parts.TryGet(new PartKey(uncompressedSha256, codec, level, compressor), cancellationToken, out var part)
                ? new KeptPart(part.Segments, part.Length, part.Release, part)
                : null;

        /// <inheritdoc/>
        public IPartKeeper? BeginKeep(byte[] uncompressedSha256, long uncompressedLength) =>
            parts.TryBeginStore(new PartKey(uncompressedSha256, codec, level, compressor) { UncompressedLength = uncompressedLength }) is { } writer
                ? new Keeper(writer)
                : null;

        /// <inheritdoc/>
        public (byte[] Sha256, long Length)? Recall(byte[] recipe) => recipes.Recall(recipe);

        /// <inheritdoc/>
        public void Remember(byte[] recipe, byte[] uncompressedSha256, long length) => recipes.Remember(recipe, uncompressedSha256, length);
    
        private sealed class Keeper : IPartKeeper
        {
            private readonly PartCache.PartWriter writer;

            public Keeper(PartCache.PartWriter writer) => this.writer = writer;

            public void Write(ReadOnlySpan<byte> compressed) => writer.Write(compressed);

            public void Commit(CancellationToken cancellationToken) => writer.Commit(cancellationToken);

            public void Dispose() => writer.Dispose();
        }
    }
}
