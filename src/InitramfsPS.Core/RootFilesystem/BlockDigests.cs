using System;
using System.Globalization;
using System.IO;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>Whose a file of checked blocks is, which says what a mismatch means and whether the file may be removed.</summary>
    internal enum BlockOwner
    {
        /// <summary>The decompressed tar of a compressed layer in the cache, under its diff_id, with its index beside it.</summary>
        CachedLayer,
        /// <summary>Another blob of the cache: an uncompressed layer (pulled, or a docker archive member), an imported archive's decompressed part.</summary>
        CacheBlob,
        /// <summary>An uncompressed layer blob of a user's OCI image layout, read in place; never removed.</summary>
        LayoutBlob,
        /// <summary>An archive Import-Initramfs read (its plain parts are read in place); never removed.</summary>
        Archive,
    }

    /// <summary>
    /// The BLAKE3 digest of each <see cref="BlockSize"/> block of a file, recorded from the very bytes that
    /// were verified when the file entered the module (a layer hashed to its digest or diff_id, an
    /// archive as Import-Initramfs read it). A read of the file's bytes at use hashes each whole block
    /// it touches and compares (<see cref="ContentReader"/>), so a file changed since then, even to
    /// the same length, is never read into an archive or a rootfs.
    /// </summary>
    /// <remarks>
    /// BLAKE3 rather than sha256: every byte an export copies is hashed once more, and on the
    /// 2-core machines this runs on, hashing a warm Debian minbase export's 173 MB took 0.14 s of
    /// CPU with sha256 (OpenSSL, SHA-NI) and made the .cpio.zst export 18% slower; with BLAKE3
    /// 0.016 s and 4% (docs/design-notes.md, "Verified at use"). Both are 256-bit cryptographic
    /// hashes; the digests are the module's own, so no format outside it is involved.
    /// </remarks>
    internal sealed class BlockDigests
    {
        /// <summary>
        /// Bytes per block. A read of a few bytes (an ELF header, a #! line) hashes a whole block (at
        /// 64 KiB the checks of Debian minbase's programs hashed 24.5 MB, at 16 KiB 11 MB); the
        /// index of a cached layer holds 32 bytes per block (0.2% of the tar).
        /// </summary>
        public const int BlockSize = 16 << 10;

        /// <summary>Bytes of one digest.</summary>
        public const int DigestSize = 32;

        /// <summary>The hash function, as the layer index names it.</summary>
        public const string Algorithm = "blake3";

        private readonly byte[] digests;

        /// <summary>
        /// Digests of the blocks of <paramref name="filePath"/>, <paramref name="fileLength"/> bytes, in
        /// order. For a file of the cache, <paramref name="indexPath"/> (a cached layer's index) and
        /// <paramref name="markerPath"/> (its record of use, for the cache budget) go with it when it
        /// is removed.
        /// </summary>
        public BlockDigests(string filePath, long fileLength, byte[] digests, BlockOwner owner, string name, string? indexPath = null, string? markerPath = null)
        {
            if (digests.Length != (long)CountFor(fileLength) * DigestSize)
            {
                throw new ArgumentException($"{CountFor(fileLength)} digests are needed for {fileLength} bytes, not {digests.Length / DigestSize}.", nameof(digests));
            }
            FilePath = filePath;
            FileLength = fileLength;
            this.digests = digests;
            Owner = owner;
            Name = name;
            IndexPath = indexPath;
            MarkerPath = markerPath;
        }

        /// <summary>The file.</summary>
        public string FilePath { get; }

        /// <summary>Its length when the digests were recorded.</summary>
        public long FileLength { get; }

        /// <summary>Whose the file is.</summary>
        public BlockOwner Owner { get; }

        /// <summary>What errors name: the blob's digest, or the archive's path.</summary>
        public string Name { get; }

        /// <summary>For a cached layer: its index, removed with it.</summary>
        public string? IndexPath { get; }

        /// <summary>For a file of the cache: the record of its use, removed with it.</summary>
        public string? MarkerPath { get; }

        /// <summary>Number of blocks of a file of <paramref name="length"/> bytes.</summary>
        public static int CountFor(long length) => checked((int)((length + BlockSize - 1) / BlockSize));

        /// <summary>The digests, concatenated (as the layer index stores them).</summary>
        internal ReadOnlySpan<byte> All => digests;

        /// <summary>Length of block <paramref name="block"/> (the last one may be short).</summary>
        internal int LengthOf(long block) => (int)Math.Min(BlockSize, FileLength - block * BlockSize);

        /// <summary>Whether <paramref name="bytes"/>, the whole of block <paramref name="block"/>, hash to its digest.</summary>
        internal bool Matches(long block, ReadOnlySpan<byte> bytes)
        {
            Span<byte> hash = stackalloc byte[DigestSize];
            Blake3.Hasher.Hash(bytes, hash);
            return hash.SequenceEqual(digests.AsSpan(checked((int)(block * DigestSize)), DigestSize));
        }

        /// <summary>
        /// The error for block <paramref name="block"/> not matching (null: the file's length). A cache entry is removed first
        /// (the tar and its index, or the blob), so the next run derives or fetches it again; a layout
        /// blob or an archive is the user's and is left as it is.
        /// </summary>
        internal InitramfsException Mismatch(long? block)
        {
            string range = block is { } b
                ? string.Create(CultureInfo.InvariantCulture, $"bytes {b * BlockSize} to {(b * BlockSize) + LengthOf(b) - 1}")
                : string.Create(CultureInfo.InvariantCulture, $"its length is no longer {FileLength} bytes, and its bytes");
            switch (Owner)
            {
                case BlockOwner.CachedLayer:
                    RemoveFromCache();
                    return new InitramfsException("CacheCorrupt", FailureKind.InvalidData,
                        $"The cached layer {Name} ('{FilePath}') changed after it was verified: {range} no longer match the digest recorded for them. "
                        + "It was removed from the cache and nothing was written; run the command again to decompress the layer from its blob (a rootfs expanded before must be expanded again).",
                        Name) { ContentMismatch = true };
                case BlockOwner.CacheBlob:
                    RemoveFromCache();
                    return new InitramfsException("CacheCorrupt", FailureKind.InvalidData,
                        $"The cache blob {Name} ('{FilePath}') changed after it was verified: {range} no longer match the digest recorded for them. "
                        + "It was removed from the cache and nothing was written; open, pull or import the image or archive again.",
                        Name) { ContentMismatch = true };
                case BlockOwner.LayoutBlob:
                    return new InitramfsException("LayerContentChanged", FailureKind.InvalidData,
                        $"The layer {Name} ('{FilePath}') changed after it was verified against its digest: {range} differ. "
                        + "Nothing was written; restore the layer blob and expand the image again.",
                        Name) { ContentMismatch = true };
                default:
                    return new InitramfsException("ArchiveChanged", FailureKind.InvalidData,
                        $"'{FilePath}' changed after Import-Initramfs read it: {range} differ. Nothing was written; import the archive again.",
                        Name) { ContentMismatch = true };
            }
        }

        /// <summary>Removes the file, its index and its record of use, as the cache budget evicts an entry.</summary>
        private void RemoveFromCache()
        {
            if (IndexPath is not null)
            {
                Files.TryDelete(IndexPath);
            }
            Files.TryDelete(FilePath);
            if (MarkerPath is not null)
            {
                Files.TryDelete(MarkerPath);
            }
        }
    }

    /// <summary>Records the digests of the blocks of a stream of bytes as they go by, in order.</summary>
    internal sealed class BlockHasher : IDisposable
    {
        private Blake3.Hasher partial = Blake3.Hasher.New();
        private readonly MemoryStream digests = new();
        private int inBlock;

        /// <summary>Bytes seen.</summary>
        public long Length { get; private set; }

        /// <summary>Adds the next bytes.</summary>
        public void Append(ReadOnlySpan<byte> data)
        {
            Span<byte> hash = stackalloc byte[BlockDigests.DigestSize];
            Length += data.Length;
            while (!data.IsEmpty)
            {
                if (inBlock == 0 && data.Length >= BlockDigests.BlockSize)
                {
                    Blake3.Hasher.Hash(data[..BlockDigests.BlockSize], hash);
                    digests.Write(hash);
                    data = data[BlockDigests.BlockSize..];
                    continue;
                }
                int n = Math.Min(BlockDigests.BlockSize - inBlock, data.Length);
                partial.Update(data[..n]);
                inBlock += n;
                data = data[n..];
                if (inBlock == BlockDigests.BlockSize)
                {
                    partial.Finalize(hash);
                    partial.Reset();
                    digests.Write(hash);
                    inBlock = 0;
                }
            }
        }

        /// <summary>The digests of every block, the last (short) one included.</summary>
        public byte[] Finish()
        {
            if (inBlock > 0)
            {
                Span<byte> hash = stackalloc byte[BlockDigests.DigestSize];
                partial.Finalize(hash);
                partial.Reset();
                digests.Write(hash);
                inBlock = 0;
            }
            return digests.ToArray();
        }

        /// <summary>Hashes the blocks of a whole file, read from its start.</summary>
        public static byte[] OfFile(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long length, System.Threading.CancellationToken cancellationToken)
        {
            using var hasher = new BlockHasher();
            var buffer = new byte[16 * BlockDigests.BlockSize];
            long position = 0;
            while (position < length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - position)), position);
                if (n <= 0)
                {
                    throw new EndOfStreamException("The file ended early; it changed while being read.");
                }
                hasher.Append(buffer.AsSpan(0, n));
                position += n;
            }
            return hasher.Finish();
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            partial.Dispose();
            digests.Dispose();
        }
    }
}
