using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// What names a compressed part in the cache: the sha256 of the part's uncompressed bytes, the
    /// codec (<c>zstd</c> or <c>gzip</c>), its level, and the identity of the compressor
    /// (<see cref="CompressorIdentity"/>): the same bytes at the same level give the same output only
    /// from the same compressor, so another version of it is another key.
    /// </summary>
    /// <remarks>
    /// <see cref="UncompressedLength"/> is not part of the key (the sha256 fixes it): it is recorded
    /// so that Get-OciCache can say how large the part is, and two keys that differ only in it are
    /// equal. Equality compares the hash's bytes, not the array.
    /// </remarks>
    internal readonly record struct PartKey(byte[] UncompressedSha256, string Codec, int Level, string Compressor)
    {
        private static readonly Lazy<string> Zstd = new(() => Clean("ZstdSharp " + VersionOf(typeof(ZstdSharp.Compressor).Assembly)));

        // zlib (zlib-ng since .NET 9) is built into the runtime's System.IO.Compression.Native and
        // changes with it: the runtime version, the assembly's file version (which moves with every
        // servicing build) and the platform (the native build) together name it.
        private static readonly Lazy<string> Gzip = new(() => Clean(string.Create(CultureInfo.InvariantCulture,
            $".NET {Environment.Version} System.IO.Compression {FileVersionOf(typeof(GZipStream).Assembly)} {RuntimeInformation.RuntimeIdentifier}")));

        /// <summary>Bytes of the part before compression, for the listing; null when not known. Not part of the key.</summary>
        public long? UncompressedLength { get; init; }

        /// <summary>
        /// The identity of the compressor this process uses for <paramref name="codec"/> (<c>zstd</c>:
        /// ZstdSharp's version; <c>gzip</c>: the runtime's and its compression library's), computed once.
        /// </summary>
        public static string CompressorIdentity(string codec) => codec switch
        {
            "zstd" => Zstd.Value,
            "gzip" => Gzip.Value,
            _ => throw new ArgumentException($"The codec of a compressed part is zstd or gzip, not '{Printable.Of(codec)}'.", nameof(codec)),
        };

        /// <summary>The key, its hash compared by value; <see cref="UncompressedLength"/> left out.</summary>
        public bool Equals(PartKey other) =>
            Level == other.Level
            && string.Equals(Codec, other.Codec, StringComparison.Ordinal)
            && string.Equals(Compressor, other.Compressor, StringComparison.Ordinal)
            && (UncompressedSha256 ?? Array.Empty<byte>()).AsSpan().SequenceEqual(other.UncompressedSha256 ?? Array.Empty<byte>());

        /// <inheritdoc/>
        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(Codec, StringComparer.Ordinal);
            hash.Add(Level);
            hash.Add(Compressor, StringComparer.Ordinal);
            hash.AddBytes(UncompressedSha256 ?? Array.Empty<byte>());
            return hash.ToHashCode();
        }

        private static string VersionOf(Assembly assembly) =>
            assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "unknown";

        private static string FileVersionOf(Assembly assembly) =>
            assembly.GetCustomAttribute<AssemblyFileVersionAttribute>()?.Version
            ?? assembly.GetName().Version?.ToString()
            ?? "unknown";

        // A record holds the identity on one line of printable ASCII, within its length limit.
        private static string Clean(string identity)
        {
            var text = new StringBuilder(identity.Length);
            foreach (char c in identity)
            {
                text.Append(c is >= ' ' and <= '~' ? c : '?');
            }
            return text.Length > PartRecord.MaxCompressorLength ? text.ToString(0, PartRecord.MaxCompressorLength) : text.ToString();
        }
    }

    /// <summary>
    /// The cache of an export's compressed parts, so that a rebuild copies the parts that did not
    /// change instead of compressing them again. A part's compressed bytes are a blob of the cache
    /// like any other (<c>blobs/sha256/&lt;hex&gt;</c>, content-addressed, so a later push can send
    /// them to a registry as layers as they are), found through a key record
    /// (<c>parts/&lt;hex&gt;</c>, <see cref="PartRecord"/>). Nothing read back is trusted: a hit is
    /// handed out only after its bytes hashed to the BLAKE3 its record holds (the sha256 of the
    /// blob's name is computed only when they do not), and an entry found bad (a
    /// corrupt or truncated blob, a record that is garbage or leads to no blob) is a miss and is
    /// removed.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Thread-safe: the compressor threads of one export call <see cref="TryGet"/> and
    /// <see cref="TryStore"/> at once. Two stores of one key (threads or processes) both succeed
    /// and leave one entry: each writes its own temporary blob, the first rename wins and the other
    /// is dropped (the bytes are equal), and each record is renamed into place whole.
    /// </para>
    /// <para>
    /// Give it the store of an <see cref="InitramfsCache"/> whose lease the export holds, as pulls do:
    /// then every blob looked up or stored is leased before it is looked for or committed (no
    /// eviction, in any process, takes it while the export runs), marked as used, and a store
    /// makes the end of the export enforce the budget. Without a lease it works unprotected, and a
    /// hit still records its use.
    /// </para>
    /// </remarks>
    internal sealed class PartCache
    {
        /// <summary>
        /// The largest part kept: a hit is read whole into memory, and an export's parts are at most
        /// about 40 MiB. A larger blob is not stored, and a record leading to one is a miss.
        /// </summary>
        public const long MaxPartLength = 256L << 20;

        /// <summary>Bytes of each buffer of a hit, unless the pool handed in says otherwise.</summary>
        public const int DefaultSegmentSize = 1 << 20;

        private const string What = "compressed part";

        private readonly BlobStore store;
        private readonly ChunkPool buffers;

        /// <summary>A part cache in <paramref name="store"/>, the buffers of hits from the shared pool of 1 MiB buffers, as the export's chunks.</summary>
        public PartCache(BlobStore store)
            : this(store, ChunkPool.Shared(DefaultSegmentSize))
        {
        }

        /// <summary>A part cache in <paramref name="store"/>, the buffers of hits rented from <paramref name="buffers"/>.</summary>
        public PartCache(BlobStore store, ChunkPool buffers)
        {
            ArgumentNullException.ThrowIfNull(store);
            ArgumentNullException.ThrowIfNull(buffers);
            if (store.IsImportArea)
            {
                throw new ArgumentException("Compressed parts belong in the cache's main area, not its imports area.", nameof(store));
            }
            this.store = store;
            this.buffers = buffers;
        }

        /// <summary>The cache.</summary>
        public BlobStore Store => store;

        /// <summary>
        /// Looks <paramref name="key"/> up. A hit hands out the compressed bytes, read whole and
        /// checked against the record's BLAKE3 and length, in buffers the caller gives back
        /// (<see cref="CachedPart.Release"/>, <see cref="CachedPart.Dispose"/>). A miss, and an entry
        /// found bad (then removed), return false; nothing but cancellation is thrown for what the
        /// cache holds (an invalid key is the caller's error: <see cref="ArgumentException"/>).
        /// </summary>
        public bool TryGet(in PartKey key, CancellationToken ct, [MaybeNullWhen(false)] out CachedPart part)
        {
            Check(key);
            part = null;
            ct.ThrowIfCancellationRequested();
            string path = store.PartRecordPathOf(PartRecord.NameOf(key));
            var read = PartRecord.ReadFile(path, out byte[]? bytes);
            if (read is PartRecord.ReadResult.Absent or PartRecord.ReadResult.Unreadable)
            {
                return false;
            }
            if (read == PartRecord.ReadResult.Garbage || !PartRecord.TryParse(bytes, out var record) || !record.Key.Equals(key))
            {
                PartRecords.RemoveIfUnchanged(store, path, bytes);
                return false;
            }
            switch (ReadBlob(record, ct, out var found))
            {
                case BlobRead.Verified:
                    part = found!;
                    return true;
                case BlobRead.Corrupt:
                    // The blob's bytes are not its name's: no use to anyone. The record goes with it.
                    CacheBudget.Delete(new CacheUnit
                    {
                        Digest = record.Blob,
                        Import = false,
                        BlobPath = store.PathOf(record.Blob),
                        IndexPath = store.IndexPathOf(record.Blob),
                        MarkerPath = store.MarkerOf(record.Blob),
                    });
                    PartRecords.RemoveIfUnchanged(store, path, bytes);
                    return false;
                case BlobRead.Missing:
                    PartRecords.RemoveIfUnchanged(store, path, bytes, record.Blob);
                    return false;
                case BlobRead.RecordWrong:
                    // The blob is what its name says (or not ours to judge): only the record is wrong.
                    PartRecords.RemoveIfUnchanged(store, path, bytes);
                    return false;
                default:
                    return false;
            }
        }

        /// <summary>
        /// Begins storing a part under <paramref name="key"/> as its compressed bytes are produced:
        /// the caller writes them in order (<see cref="PartWriter.Write"/>) and commits. No copy of
        /// the part is held: the bytes go to the blob's temporary file as they come, hashed on the
        /// way. Null when the cache cannot take a part now (it is not writable).
        /// </summary>
        public PartWriter? TryBeginStore(in PartKey key)
        {
            Check(key);
            try
            {
                return new PartWriter(this, key, store.CreateWriter());
            }
            catch (InitramfsException ex) when (ex.Kind == FailureKind.WriteFailed)
            {
                return null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>A part being stored (<see cref="TryBeginStore"/>); disposed without <see cref="Commit"/>, it leaves nothing.</summary>
        internal sealed class PartWriter : IDisposable
        {
            private readonly PartCache cache;
            private readonly PartKey key;
            private readonly BlobWriter writer;
            private Blake3.Hasher check = Blake3.Hasher.New();
            private long total;
            private bool broken;

            internal PartWriter(PartCache cache, PartKey key, BlobWriter writer)
            {
                this.cache = cache;
                this.key = key;
                this.writer = writer;
            }

            /// <summary>Appends compressed bytes. A failure to write (a full disk) makes the part not stored, not an error.</summary>
            public void Write(ReadOnlySpan<byte> bytes)
            {
                total += bytes.Length;
                if (broken || total > MaxPartLength)
                {
                    broken = true;
                    return;
                }
                try
                {
                    writer.Write(bytes);
                    check.Update(bytes);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException || ex is InitramfsException { Kind: FailureKind.WriteFailed })
                {
                    broken = true;
                }
            }

            /// <summary>Names the blob by the sha256 of what was written and records the key; returns the digest, or null when it could not be stored.</summary>
            public Digest? Commit(CancellationToken ct)
            {
                ct.ThrowIfCancellationRequested();
                if (broken || total == 0)
                {
                    return null;
                }
                try
                {
                    var blob = writer.Digest;
                    // No fsync: every hit is read whole and checked against this digest, so a part a
                    // crash tore is a miss. With one per part, keeping the parts cost a first
                    // export about a third more time.
                    writer.Commit(blob, durable: false);
                    cache.WriteRecord(new PartRecord { Key = key, Blob = blob, Length = total, Check = check.Finalize().AsSpan().ToArray() });
                    return blob;
                }
                catch (InitramfsException ex) when (ex.Kind == FailureKind.WriteFailed)
                {
                    return null;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    return null;
                }
            }

            /// <inheritdoc/>
            public void Dispose()
            {
                writer.Dispose();
                check.Dispose();
            }
        }

        /// <summary>
        /// Stores <paramref name="compressed"/> (the part's compressed bytes, in the segments they were
        /// written to the archive in) under <paramref name="key"/>: the blob first, committed under the
        /// sha256 computed as it was written, then the record, renamed into place whole. Returns the
        /// blob's digest; null when the cache could not take it (a full disk, permissions, an empty
        /// part or one over <see cref="MaxPartLength"/>), with no temporary file left: a cache that
        /// cannot be written never fails the export. Only cancellation (and an invalid key) is thrown.
        /// </summary>
        public Digest? TryStore(in PartKey key, IReadOnlyList<ReadOnlyMemory<byte>> compressed, CancellationToken ct)
        {
            Check(key);
            ArgumentNullException.ThrowIfNull(compressed);
            ct.ThrowIfCancellationRequested();
            long total = 0;
            foreach (var segment in compressed)
            {
                total += segment.Length;
            }
            if (total == 0 || total > MaxPartLength)
            {
                return null;
            }
            using var writer = TryBeginStore(key);
            if (writer is null)
            {
                return null;
            }
            foreach (var segment in compressed)
            {
                ct.ThrowIfCancellationRequested();
                writer.Write(segment.Span);
            }
            return writer.Commit(ct);
        }

        private static void Check(in PartKey key)
        {
            if (PartRecord.Problem(key) is { } problem)
            {
                throw new ArgumentException(problem, nameof(key));
            }
        }

        /// <summary>Writes a record under a temporary name in <c>tmp/</c> (swept like a blob's if the process dies) and renames it into place.</summary>
        private void WriteRecord(PartRecord record)
        {
            string final = store.PartRecordPathOf(PartRecord.NameOf(record.Key));
            Directory.CreateDirectory(Path.GetDirectoryName(final)!);
            using var file = new AtomicFileWriter(Path.Combine(store.Root, "tmp", $"{Guid.NewGuid():N}.partial"), 1);
            file.Write(Encoding.ASCII.GetBytes(record.Text()));
            // Replace: a record already there may be one judged bad a moment ago; ours is whole and current.
            // No fsync, as for the blob: a record a crash tore is garbage (a miss), and one that
            // outlived its torn blob fails the blob's check. One fsync per part cost a first export
            // a journal commit per part.
            file.Commit(final, ExistingFile.Replace, durable: false);
        }

        private enum BlobRead
        {
            Verified,
            Corrupt,
            RecordWrong,
            Missing,
            Unreadable,
        }

        private BlobRead ReadBlob(PartRecord record, CancellationToken ct, out CachedPart? part)
        {
            part = null;
            FileStream stream;
            try
            {
                // Leases the blob before it is looked for, and marks it as used once open.
                stream = store.OpenRead(record.Blob, What);
            }
            catch (InitramfsException ex) when (ex.ErrorId == "BlobMissing")
            {
                return BlobRead.Missing;
            }
            catch (InitramfsException)
            {
                // Not a regular file, or a symlink out of the cache: no part, and not ours to delete.
                return BlobRead.RecordWrong;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return BlobRead.Unreadable;
            }
            var rented = new List<byte[]>();
            bool handedOut = false;
            try
            {
                using (stream)
                {
                    long length = stream.Length;
                    if (length > MaxPartLength)
                    {
                        // Not read (it could be anything large): the record that leads to it goes.
                        return BlobRead.RecordWrong;
                    }
                    using var hash = Blake3.Hasher.New();
                    var segments = new List<ArraySegment<byte>>();
                    for (long left = length; left > 0;)
                    {
                        ct.ThrowIfCancellationRequested();
                        byte[] buffer = buffers.Rent();
                        rented.Add(buffer);
                        int count = (int)Math.Min(buffer.Length, left);
                        stream.ReadExactly(buffer, 0, count);
                        hash.Update(buffer.AsSpan(0, count));
                        segments.Add(new ArraySegment<byte>(buffer, 0, count));
                        left -= count;
                    }
                    if (!hash.Finalize().AsSpan().SequenceEqual(record.Check))
                    {
                        // The blob or the record is damaged: the blob's name says which.
                        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                        foreach (var segment in segments)
                        {
                            sha256.AppendData(segment);
                        }
                        return record.Blob.Matches(sha256.GetHashAndReset()) ? BlobRead.RecordWrong : BlobRead.Corrupt;
                    }
                    if (length != record.Length)
                    {
                        return BlobRead.RecordWrong;
                    }
                    if (store.Lease is null)
                    {
                        // A leased store marked it at the open; a hit is a use either way, for the budget's order.
                        CacheUse.Touch(store.MarkerOf(record.Blob));
                    }
                    part = new CachedPart(record.Blob, length, segments, buffers);
                    handedOut = true;
                    return BlobRead.Verified;
                }
            }
            catch (EndOfStreamException)
            {
                // Shorter than when it was opened: cut while being read, which a blob never is.
                return BlobRead.Corrupt;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return BlobRead.Unreadable;
            }
            finally
            {
                if (!handedOut)
                {
                    foreach (byte[] buffer in rented)
                    {
                        buffers.Return(buffer);
                    }
                }
            }
        }
    }

    /// <summary>
    /// A hit of <see cref="PartCache.TryGet"/>: the compressed bytes of a part, verified, in pooled
    /// buffers, in order. The caller writes <see cref="Segments"/> out and gives each buffer back
    /// once it is done with it (<see cref="Release"/>, from any thread), or all that are left at once
    /// (<see cref="Dispose"/>); a segment must not be read after its buffer went back.
    /// </summary>
    internal sealed class CachedPart : IDisposable
    {
        private readonly ArraySegment<byte>[] segments;
        private readonly byte[]?[] unreleased;
        private readonly ChunkPool pool;

        internal CachedPart(Digest digest, long length, IReadOnlyList<ArraySegment<byte>> segments, ChunkPool pool)
        {
            Digest = digest;
            Length = length;
            this.segments = segments.ToArray();
            unreleased = this.segments.Select(s => s.Array).ToArray();
            this.pool = pool;
        }

        /// <summary>The sha256 digest of the compressed bytes: the blob's name.</summary>
        public Digest Digest { get; }

        /// <summary>Bytes in all.</summary>
        public long Length { get; }

        /// <summary>The bytes, in order; each segment starts at its buffer's start.</summary>
        public IReadOnlyList<ArraySegment<byte>> Segments => segments;

        /// <summary>Gives one of <see cref="Segments"/>' buffers back to its pool, once.</summary>
        public void Release(byte[] buffer)
        {
            ArgumentNullException.ThrowIfNull(buffer);
            lock (unreleased)
            {
                int i = Array.FindIndex(unreleased, b => ReferenceEquals(b, buffer));
                if (i < 0)
                {
                    throw new ArgumentException("The buffer is not one of this part's, or was given back already.", nameof(buffer));
                }
                unreleased[i] = null;
            }
            pool.Return(buffer);
        }

        /// <summary>Gives back every buffer not given back yet.</summary>
        public void Dispose()
        {
            var left = new List<byte[]>();
            lock (unreleased)
            {
                for (int i = 0; i < unreleased.Length; i++)
                {
                    if (unreleased[i] is { } buffer)
                    {
                        left.Add(buffer);
                        unreleased[i] = null;
                    }
                }
            }
            foreach (byte[] buffer in left)
            {
                pool.Return(buffer);
            }
        }
    }
}
