using System;
using System.Threading;
using InitramfsPS.IO;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// The write path of an export: the cpio stream written into this stream is cut into parts at
    /// entry boundaries, the parts are compressed concurrently (each one a complete gzip member or
    /// zstd frame, by an <see cref="IPartCodec"/>) and written in order by an
    /// <see cref="OrderedPartWriter"/> into an <see cref="AtomicFileWriter"/>, which computes the
    /// sha256 of the file on the way.
    /// </summary>
    /// <remarks>
    /// <para>Where a part ends depends only on the content: at an entry boundary chosen by
    /// <see cref="PartCuts"/> from the entries' names and sizes (the caller plans the parts with
    /// <see cref="Cuts"/> and calls <see cref="BeginPart"/>), parts of about <see cref="PartSize"/> bytes of cpio, so that a change to one entry
    /// leaves the other parts the same bytes. Every part is compressed alone with the same
    /// settings, so the file is the same bytes for any number of workers, and a part whose bytes
    /// an earlier export compressed is copied from the <see cref="IPartStore"/> instead. Parts end without TRAILER!!!: the decompressed
    /// concatenation is exactly the cpio stream a single-part archive holds, which the kernel
    /// (init/initramfs.c: one state machine across all parts), GNU cpio behind zcat/zstdcat and
    /// Import-Initramfs all read as one archive.</para>
    /// <para>A compressed part is collected whole in a pinned buffer of 2 × <see cref="PartSize"/>,
    /// hashed for the part store and compressed in one pass once it ends (see
    /// <see cref="ZstdFrameCompressor"/> for why, for zstd). A part whose entry does not fit in
    /// that buffer (one entry larger than it, or a hardlink group that may not be cut), and the
    /// one part of a plain archive, streams instead:
    /// the producer hands over 1 MiB chunks through a queue of at most <see cref="Part.InputDepth"/>
    /// chunks, which the compressor takes as they come. Which form a part takes depends only on the
    /// byte counts, so it is part of the content, not of the timing.</para>
    /// <para>Memory is bounded whatever the entry sizes: at most workers + 2 parts are open, each
    /// holding at most one part buffer or <see cref="Part.InputDepth"/> chunks of input, and a part
    /// stops compressing once it holds <see cref="PartSize"/> + 2 MiB of output the writer has not
    /// taken (4 MiB for a plain archive, whose one part a writer slower than the copy would
    /// otherwise let grow with the archive).</para>
    /// </remarks>
    internal sealed class PartPipeline : WriteOnlyStream
    {
        /// <summary>Size of the chunks handed between threads.</summary>
        public const int ChunkSize = 1 << 20;

        /// <summary>Output a plain archive's part may queue ahead of the writer.</summary>
        private const long PlainOutputLimit = 4L * ChunkSize;

        private readonly ChunkPool chunks = ChunkPool.Shared(ChunkSize);
        private readonly ChunkPool? partBuffers;
        private readonly OrderedPartWriter writer;
        private byte[] chunk;
        private int chunkUsed;
        private readonly bool compressing;
        private Part? current;
        private bool joined;

        /// <summary>
        /// Starts the stages: <paramref name="workers"/> compressors (one for an uncompressed
        /// archive) and the writer, which writes to <paramref name="file"/> (left open).
        /// </summary>
        internal PartPipeline(AtomicFileWriter file, InitramfsCompression compression, int level, int workers, CancellationToken cancellationToken)
            : this(file, compression, level, workers, null, cancellationToken)
        {
        }

        /// <summary>
        /// As above, with compressed parts looked up in and kept in <paramref name="store"/> (ignored
        /// for an uncompressed archive).
        /// </summary>
        internal PartPipeline(AtomicFileWriter file, InitramfsCompression compression, int level, int workers, IPartStore? store, CancellationToken cancellationToken)
        {
            ArgumentNullException.ThrowIfNull(file);
            PartSize = DefaultPartSize(compression, level);
            long bufferSize = 2 * PartSize;
            Cuts = compression == InitramfsCompression.None ? PartCuts.None : new PartCuts(PartSize, bufferSize);
            int compressors = compression == InitramfsCompression.None ? 1 : Math.Clamp(workers, 1, 256);
            // A part waiting for its turn may hold its whole output, and 2 MiB over, so that its
            // compressor rarely waits.
            long outputLimit = compression == InitramfsCompression.None ? PlainOutputLimit : PartSize + 2L * ChunkSize;
            // Twice the part size: a part outgrows it only when one entry larger than a part crosses
            // its end (with 1.5x, two 3 MiB libraries after a 4 MiB mark already did).
            // Pinned: zstd keeps pointers into a part buffer between calls (stableInBuffer). At most one
            // buffer per open part is rented, workers + 2; the shared pool keeps them for the next
            // export (see ChunkPool for why).
            partBuffers = compression == InitramfsCompression.None ? null : ChunkPool.Shared((int)bufferSize, pinned: true);
            compressing = compression != InitramfsCompression.None;
            Store = compressing ? store : null;
            writer = new OrderedPartWriter(file, () => PartCodecs.Create(compression, level), compressors, (int)(outputLimit / ChunkSize), chunks, Store, cancellationToken);
            chunk = chunks.Rent();
        }

        /// <summary>Where the parts of this compression end (<see cref="PartCuts.None"/> for a plain archive): the caller decides with it and calls <see cref="BeginPart"/>.</summary>
        public PartCuts Cuts { get; }

        /// <summary>
        /// The part size aimed at (<see cref="PartCuts"/>; parts average 1.2 times it): 4 MiB for gzip
        /// (its 32 KiB window loses next to nothing at a cut); for zstd twice the window of the level,
        /// at least 4 MiB (4 MiB at the default level 3, 16 MiB at 19), since a cut loses the matches
        /// the window could have reached across it; no cut for a plain archive. A function of the
        /// compression and level only: part boundaries must not depend on the machine.
        /// </summary>
        /// <remarks>
        /// Measured on Debian minbase (165 MB of cpio) against one `zstd -T0` stream of the same
        /// bytes: level 3 with 4 MiB parts +0.28% (8 MiB parts: −0.26%, for twice the buffers and a
        /// longer tail on the last part); level 19 with 16 MiB parts +2.9% (8 MiB +4.0%, 4 MiB +6.4%).
        /// </remarks>
        public static long DefaultPartSize(InitramfsCompression compression, int level) => compression switch
        {
            InitramfsCompression.Gzip => 4L << 20,
            InitramfsCompression.Zstd => Math.Max(4L << 20, 2L << ZstdFrameCompressor.WindowLog(level)),
            _ => long.MaxValue,
        };

        /// <summary>See <see cref="DefaultPartSize"/>.</summary>
        public long PartSize { get; }

        /// <summary>Parts begun so far.</summary>
        public int PartCount { get; private set; }

        /// <summary>The part store the parts are looked up in and kept in; null for none, and always for an uncompressed archive.</summary>
        public IPartStore? Store { get; }

        /// <summary>Parts run through a compressor (final after <see cref="Complete"/>; 0 for an uncompressed archive).</summary>
        public int PartsCompressed => compressing ? writer.PartsCompressed : 0;

        /// <summary>Parts copied from the part store instead of compressed.</summary>
        public int PartsReused => writer.PartsReused;

        /// <summary>Bytes of cpio run through a compressor (0 for an uncompressed archive).</summary>
        public long BytesCompressed => compressing ? writer.BytesCompressed : 0;

        /// <summary>Bytes of cpio written into the pipeline.</summary>
        public long UncompressedBytes { get; private set; }

        /// <summary>Bytes written to the file (final after <see cref="Complete"/>; read from another thread, it is a progress figure).</summary>
        public long BytesWritten => writer.BytesWritten;

        /// <summary>
        /// Bytes of cpio the compressors have taken so far, for progress: a zstd part compressed in
        /// one pass counts as zstd takes it, streamed input as each chunk is taken.
        /// </summary>
        public long CompressedInputBytes => writer.CompressedInputBytes;

        /// <inheritdoc/>
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            UncompressedBytes += buffer.Length;
            while (buffer.Length > 0)
            {
                var room = Room();
                int n = Math.Min(buffer.Length, room.Length);
                buffer[..n].CopyTo(room);
                Commit(n);
                buffer = buffer[n..];
            }
        }

        /// <summary>
        /// Room in the current part buffer or chunk, for a caller that reads file data straight into
        /// it (no copy); it then calls <see cref="Advance"/> with what it wrote.
        /// </summary>
        public Span<byte> GetSpan() => Room();

        /// <summary>Takes <paramref name="count"/> bytes written into <see cref="GetSpan"/>.</summary>
        public void Advance(int count)
        {
            UncompressedBytes += count;
            Commit(count);
        }

        private Span<byte> Room()
        {
            if (current is null)
            {
                BeginPart();
            }
            if (!current!.Streaming)
            {
                if (current.Used < current.Buffer!.Length)
                {
                    return current.Buffer.AsSpan(current.Used);
                }
                // An entry larger than the slack: the part streams from here on.
                current.Overflow();
            }
            if (chunkUsed == ChunkSize)
            {
                HandOver();
            }
            return chunk.AsSpan(chunkUsed);
        }

        private void Commit(int count)
        {
            if (!current!.Streaming)
            {
                current.Used += count;
                return;
            }
            chunkUsed += count;
            if (chunkUsed == ChunkSize)
            {
                HandOver();
            }
        }

        /// <summary>
        /// Ends the part being written, if any, and begins a new one, with the
        /// <paramref name="recipe"/> of its bytes when a part store is used. Bytes written before
        /// the first call begin a part of their own.
        /// </summary>
        public void BeginPart(byte[]? recipe = null)
        {
            EndPart();
            current = writer.Add(partBuffers, recipe);
            PartCount++;
        }

        /// <summary>
        /// Ends the part being written, if any, and adds a part already compressed (copied from
        /// the part store), of <paramref name="uncompressedLength"/> bytes of cpio, which the
        /// caller does not write.
        /// </summary>
        public void AddKept(KeptPart compressed, long uncompressedLength)
        {
            EndPart();
            writer.AddReady(compressed, uncompressedLength);
            PartCount++;
            UncompressedBytes += uncompressedLength;
        }

        /// <summary>Ends the input, waits for every part to be written and rethrows what failed on the way.</summary>
        public void Complete()
        {
            EndPart();
            writer.Complete();
            joined = true;
        }

        /// <summary>Stops the stages after a failure of the producer (or Ctrl+C) and waits for them.</summary>
        public void Abort()
        {
            writer.Abort();
            joined = true;
        }

        /// <inheritdoc/>
        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                if (!joined)
                {
                    Abort();
                }
                writer.Dispose();
            }
            base.Dispose(disposing);
        }

        /// <summary>Hands the part being written, if any, its last input; none is being written after.</summary>
        private void EndPart()
        {
            if (current is null)
            {
                return;
            }
            if (current.Streaming && chunkUsed > 0)
            {
                HandOver();
            }
            current.EndInput();
            current = null;
        }

        private void HandOver()
        {
            var segment = new Segment(chunk, chunkUsed);
            chunk = chunks.Rent();
            chunkUsed = 0;
            current!.Feed(segment);
        }
    }
}
