using System;
using System.IO;
using System.IO.Compression;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>
    /// Turns the stored bytes of a compressed layer into its uncompressed tar (a cache blob being
    /// written, not yet committed) and its parsed entries, hashing both forms on the way.
    /// </summary>
    /// <remarks>
    /// Three threads, so that none of the costs is in series with another: decompression (with the
    /// hash of the stored bytes) on one, the tar headers parsed on the caller's thread, and the sha256
    /// of the tar (whole, and of each block for the index), the write to the cache (its writeback started every
    /// 32 MiB, not waited for) on a third. Measured on the Debian
    /// minbase layer (63 MB gzip, 162 MB tar), one thread did gunzip 0.35 s + sha256 0.16 s + write
    /// 0.06 s + fsync 0.22 s one after another. They hand 1 MiB chunks through bounded queues, so
    /// memory does not grow with the layer. The first failure on any thread stops the others and is
    /// rethrown here (<see cref="Stages"/>); the caller decides what it means (the stored bytes are checked against their
    /// digest first).
    /// </remarks>
    internal static class LayerUnpacker
    {
        private const int ChunkSize = 1 << 20;
        private const long WritebackEvery = 32L << 20;

        /// <summary>
        /// Reads <paramref name="raw"/> (the stored bytes) to its end, hashing it in the algorithm of
        /// <paramref name="storedDigest"/> for the caller to compare (null: the caller verifies the
        /// stored bytes itself, as a download does). <paramref name="onEntry"/>
        /// sees every tar header, on the calling thread; <paramref name="progress"/> is called now and
        /// then there too, with the stored bytes read so far. <paramref name="releaseReader"/>, when
        /// given, is called if the unpacking stops early, to end a read of <paramref name="raw"/>
        /// that may be waiting for bytes (a stream fed by a download).
        /// </summary>
        public static UnpackedLayer Unpack(Stream raw, LayerCompression compression, Digest? storedDigest, BlobStore cache,
            long maxSize, Func<long, Exception> tooLarge, Action<TarHeader> onEntry, Action<long>? progress, CancellationToken cancellationToken,
            Action? releaseReader = null)
        {
            var result = new UnpackedLayer(cache.CreateWriter());
            var chunks = ChunkPool.Shared(ChunkSize);
            using var stages = new Stages(cancellationToken);
            using var release = releaseReader is null ? default : stages.Token.Register(releaseReader);
            var toParser = new BoundedQueue<Chunk>(4);
            var toWriter = new BoundedQueue<Chunk>(8);
            long rawRead = 0;

            stages.Start("InitramfsPS inflate", () =>
            {
                using var rawHash = storedDigest?.CreateHash();
                var counted = new HashingReadStream(raw, rawHash);
                using (var decompressed = Decompress(counted, compression))
                {
                    long total = 0;
                    while (true)
                    {
                        var buffer = chunks.Rent();
                        int n = decompressed.ReadAtLeast(buffer.AsSpan(0, ChunkSize), ChunkSize, throwOnEndOfStream: false);
                        Interlocked.Exchange(ref rawRead, counted.BytesRead);
                        if (n == 0)
                        {
                            chunks.Return(buffer);
                            break;
                        }
                        total += n;
                        if (total > maxSize)
                        {
                            chunks.Return(buffer);
                            throw tooLarge(maxSize);
                        }
                        toParser.Add(new Chunk(buffer, n), stages.Token);
                    }
                }
                // Bytes after the compressed stream's end (padding, a second member) are part of the digest.
                counted.Drain();
                result.RawHash = rawHash?.GetHashAndReset() ?? Array.Empty<byte>();
                result.RawLength = counted.BytesRead;
                Interlocked.Exchange(ref rawRead, counted.BytesRead);
                toParser.Complete();
            });

            stages.Start("InitramfsPS cache write", () =>
            {
                using var blocks = new BlockHasher();
                long sinceWriteback = 0;
                while (toWriter.TryTake(out var chunk, stages.Token))
                {
                    var bytes = chunk.Buffer.AsSpan(0, chunk.Count);
                    blocks.Append(bytes);
                    // The cache's writer hashes the tar as it writes it: its digest is the one the tar is stored under.
                    result.Writer.Write(bytes);
                    result.TarLength += chunk.Count;
                    sinceWriteback += chunk.Count;
                    chunks.Return(chunk.Buffer);
                    if (sinceWriteback >= WritebackEvery)
                    {
                        // Written back while decompression goes on, so that the fsync of the commit has
                        // little left. Started, not waited for: a waiting fsync every 32 MiB stopped this
                        // thread, the slowest of the three on a large layer, for the disk's time (a 1 GB
                        // tar: 32 waits of about 45 ms each here).
                        result.Writer.StartWriteback();
                        sinceWriteback = 0;
                    }
                }
                result.TarDigest = result.Writer.Digest;
                result.BlockDigests = blocks.Finish();
            });

            stages.Run(() =>
            {
                var tar = new ChunkReadStream(toParser, toWriter, stages.Token);
                TarReader.ReadAll(tar, onEntry, progress is null ? null : () => progress(Interlocked.Read(ref rawRead)), cancellationToken);
                // The tar may end before the stream does (end blocks, padding): all of it is hashed and kept.
                tar.Drain();
                toWriter.Complete();
            });
            stages.Join();
            progress?.Invoke(Interlocked.Read(ref rawRead));
            try
            {
                stages.ThrowIfFailed();
            }
            catch
            {
                result.Dispose();
                throw;
            }
            return result;
        }

        private static Stream Decompress(Stream raw, LayerCompression compression) => compression switch
        {
            LayerCompression.Gzip => new GZipStream(raw, CompressionMode.Decompress, leaveOpen: true),
            LayerCompression.Zstd => new ZstdSharp.DecompressionStream(raw, 1 << 17, checkEndOfStream: true, leaveOpen: true),
            _ => throw new ArgumentOutOfRangeException(nameof(compression), compression, "Only compressed layers are unpacked."),
        };

        private readonly record struct Chunk(byte[] Buffer, int Count);

        /// <summary>
        /// The decompressed chunks as a stream for the tar reader; each chunk it has read past goes on
        /// to the writer, in order, so the tar in the cache is exactly the bytes parsed.
        /// </summary>
        private sealed class ChunkReadStream : ReadOnlyStream
        {
            private readonly BoundedQueue<Chunk> source;
            private readonly BoundedQueue<Chunk> next;
            private readonly CancellationToken stop;
            private Chunk current;
            private int offset;
            private bool hasCurrent;

            public ChunkReadStream(BoundedQueue<Chunk> source, BoundedQueue<Chunk> next, CancellationToken stop)
            {
                this.source = source;
                this.next = next;
                this.stop = stop;
            }

            public override int Read(Span<byte> buffer)
            {
                if (buffer.Length == 0)
                {
                    return 0;
                }
                if (!hasCurrent || this.offset == current.Count)
                {
                    if (!Advance())
                    {
                        return 0;
                    }
                }
                int n = Math.Min(buffer.Length, current.Count - this.offset);
                current.Buffer.AsSpan(this.offset, n).CopyTo(buffer);
                this.offset += n;
                return n;
            }

            /// <summary>Passes every chunk not yet read on to the writer.</summary>
            public void Drain()
            {
                while (Advance())
                {
                }
            }

            private bool Advance()
            {
                if (hasCurrent)
                {
                    next.Add(current, stop);
                    hasCurrent = false;
                }
                if (!source.TryTake(out current, stop))
                {
                    return false;
                }
                hasCurrent = true;
                offset = 0;
                return true;
            }
        }
    }

    /// <summary>What <see cref="LayerUnpacker.Unpack"/> produced: the tar in the cache, not yet committed, and the digests to check.</summary>
    internal sealed class UnpackedLayer : IDisposable
    {
        public UnpackedLayer(BlobWriter writer) => Writer = writer;

        /// <summary>The uncompressed tar being written; commit it under <see cref="TarDigest"/> once checked.</summary>
        public BlobWriter Writer { get; }

        /// <summary>Hash of the stored bytes, in the layer digest's algorithm (empty when none was asked for).</summary>
        public byte[] RawHash { get; set; } = Array.Empty<byte>();

        /// <summary>Number of stored bytes read.</summary>
        public long RawLength { get; set; }

        /// <summary>sha256 of the uncompressed tar: what the config's diff_id must be.</summary>
        public Digest TarDigest { get; set; }

        /// <summary>Bytes of the uncompressed tar.</summary>
        public long TarLength { get; set; }

        /// <summary>The digest of each block of the tar (<see cref="InitramfsPS.RootFilesystem.BlockDigests"/>), for its index.</summary>
        public byte[] BlockDigests { get; set; } = Array.Empty<byte>();

        /// <summary>Drops the tar unless it was committed.</summary>
        public void Dispose() => Writer.Dispose();
    }
}
