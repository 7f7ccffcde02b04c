using System;
using System.Buffers;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Threading;
using InitramfsPS.IO;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// The write path of an export: the cpio stream written into this stream is cut into parts at
    /// entry boundaries, the parts are compressed concurrently (each one a complete gzip member or
    /// zstd frame) and written in order, with the sha256 of the file computed on the way, by a
    /// writer thread of its own.
    /// </summary>
    /// <remarks>
    /// <para>Where a part ends depends only on the content: at the first entry boundary the caller
    /// allows (<see cref="EntryBoundary"/>) once the part holds <see cref="PartSize"/> bytes of cpio
    /// or more. Every part is compressed alone with the same settings, so the file is the same
    /// bytes for any number of workers. Parts end without TRAILER!!!: the decompressed
    /// concatenation is exactly the cpio stream a single-part archive holds, which the kernel
    /// (init/initramfs.c: one state machine across all parts), GNU cpio behind zcat/zstdcat and
    /// Import-Initramfs all read as one archive.</para>
    /// <para>A zstd part is collected whole in a pinned buffer of 2 × <see cref="PartSize"/> and
    /// compressed in one pass once it ends (see <see cref="ZstdFrameCompressor"/> for why). A part
    /// whose last entry does not fit in that buffer, and every gzip or plain part, streams instead:
    /// the producer hands over 1 MiB chunks through a queue of at most <see cref="InputDepth"/>
    /// chunks, which the compressor takes as they come. Which form a part takes depends only on the
    /// byte counts, so it is part of the content, not of the timing.</para>
    /// <para>Memory is bounded whatever the entry sizes: at most workers + 1 parts are open, each
    /// holding at most one part buffer or <see cref="InputDepth"/> chunks of input, and a part whose
    /// turn to be written has not come stops compressing once it holds <see cref="PartSize"/> +
    /// 2 MiB of output; the part being written streams straight to the file.</para>
    /// </remarks>
    public sealed class PartPipeline : WriteOnlyStream
    {
        /// <summary>Size of the chunks handed between threads.</summary>
        public const int ChunkSize = 1 << 20;

        /// <summary>Chunks queued ahead of a part's compressor.</summary>
        private const int InputDepth = 4;

        /// <summary>Output bytes the part being written may queue ahead of the writer.</summary>
        private const long HeadOutputLimit = 4L * ChunkSize;

        /// <summary>The file is fsynced every this many bytes by the writer thread, so the fsync before the rename has little left to do.</summary>
        private const long SyncEvery = 32L << 20;

        private readonly object gate = new();
        private readonly Queue<Part> unassigned = new();
        private readonly Queue<Part> unwritten = new();
        private readonly ChunkPool chunks = new(ChunkSize);
        private readonly ChunkPool? partBuffers;
        private readonly InitramfsCompression compression;
        private readonly int level;
        private readonly FileStream file;
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly CancellationToken cancellationToken;
        private readonly Thread[] threads;
        private readonly int maxOpenParts;
        private readonly long outputLimit;
        private Part current;
        private byte[] chunk;
        private int chunkUsed;
        private long partBytes;
        private bool producerDone;
        private bool joined;
        private Exception? failure;
        private long sinceSync;
        private long compressedInput;

        /// <summary>
        /// Starts the threads: <paramref name="workers"/> compressors (one for an uncompressed
        /// archive) and the writer, which writes to <paramref name="file"/> (left open).
        /// </summary>
        public PartPipeline(FileStream file, InitramfsCompression compression, int level, int workers, CancellationToken cancellationToken)
        {
            ArgumentNullException.ThrowIfNull(file);
            this.file = file;
            this.compression = compression;
            this.level = level;
            this.cancellationToken = cancellationToken;
            PartSize = DefaultPartSize(compression, level);
            int compressors = compression == InitramfsCompression.None ? 1 : Math.Clamp(workers, 1, 256);
            maxOpenParts = compressors + 1;
            outputLimit = PartSize + 2L * ChunkSize;
            // Twice the part size: a part outgrows it only when one entry larger than a part crosses
            // its end (with 1.5x, two 3 MiB libraries after a 4 MiB mark already did).
            // Pinned: zstd keeps pointers into a part buffer between calls (stableInBuffer). At most one
            // buffer per open part exists, so the pool never holds more than workers + 1.
            partBuffers = compression == InitramfsCompression.Zstd ? new ChunkPool((int)(2 * PartSize), pinned: true) : null;
            chunk = chunks.Rent();
            current = NewPart();
            unassigned.Enqueue(current);
            unwritten.Enqueue(current);
            PartCount = 1;
            threads = new Thread[compressors + 1];
            for (int i = 0; i < compressors; i++)
            {
                threads[i] = new Thread(CompressLoop) { IsBackground = true, Name = $"InitramfsPS compress {i}" };
            }
            threads[compressors] = new Thread(WriteLoop) { IsBackground = true, Name = "InitramfsPS write" };
            foreach (var thread in threads)
            {
                thread.Start();
            }
        }

        /// <summary>
        /// Bytes of cpio after which a part ends at the next allowed entry boundary: 4 MiB for gzip
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

        /// <summary>Bytes of cpio written into the pipeline.</summary>
        public long UncompressedBytes { get; private set; }

        /// <summary>Bytes written to the file (final after <see cref="Complete"/>; read from another thread, it is a progress figure).</summary>
        public long BytesWritten => Interlocked.Read(ref bytesWritten);

        private long bytesWritten;

        /// <summary>
        /// Bytes of cpio the compressors have taken so far, for progress: a zstd part compressed in
        /// one pass counts when its frame is done, streamed input as each chunk is taken.
        /// </summary>
        public long CompressedInputBytes => Interlocked.Read(ref compressedInput);

        /// <summary>sha256 of the file, lower-case hex (valid after <see cref="Complete"/>).</summary>
        public string Sha256Hex() => Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant();

        /// <inheritdoc/>
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            UncompressedBytes += buffer.Length;
            partBytes += buffer.Length;
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
            partBytes += count;
            Commit(count);
        }

        private Span<byte> Room()
        {
            if (!current.Streaming)
            {
                if (current.Used < current.Buffer!.Length)
                {
                    return current.Buffer.AsSpan(current.Used);
                }
                Overflow();
            }
            if (chunkUsed == ChunkSize)
            {
                HandOver();
            }
            return chunk.AsSpan(chunkUsed);
        }

        private void Commit(int count)
        {
            if (!current.Streaming)
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

        /// <summary>The current part outgrew its buffer (an entry larger than the slack): it streams from here on.</summary>
        private void Overflow()
        {
            lock (gate)
            {
                ThrowIfFailed();
                current.Input.Enqueue(new Segment(current.Buffer!, current.Used));
                current.Streaming = true;
                Monitor.PulseAll(gate);
            }
        }

        /// <summary>
        /// Called before each entry's header: when <paramref name="canSplit"/> (no hardlink group is
        /// half written) and the part holds <see cref="PartSize"/> bytes or more, a new part begins here.
        /// </summary>
        public void EntryBoundary(bool canSplit)
        {
            if (!canSplit || partBytes < PartSize)
            {
                return;
            }
            if (current.Streaming && chunkUsed > 0)
            {
                HandOver();
            }
            lock (gate)
            {
                current.InputDone = true;
                Monitor.PulseAll(gate);
                while (unwritten.Count >= maxOpenParts && failure is null)
                {
                    WaitAsProducer();
                }
                ThrowIfFailed();
                current = NewPart();
                unassigned.Enqueue(current);
                unwritten.Enqueue(current);
                PartCount++;
            }
            partBytes = 0;
        }

        /// <summary>Ends the input, waits for every part to be written and rethrows what failed on the way.</summary>
        public void Complete()
        {
            if (current.Streaming && chunkUsed > 0)
            {
                HandOver();
            }
            lock (gate)
            {
                ThrowIfFailed();
                current.InputDone = true;
                producerDone = true;
                Monitor.PulseAll(gate);
            }
            Join();
            lock (gate)
            {
                ThrowIfFailed();
            }
        }

        /// <summary>Stops the threads after a failure of the producer (or Ctrl+C) and waits for them.</summary>
        public void Abort()
        {
            lock (gate)
            {
                failure ??= new OperationCanceledException("The export was stopped.");
                Monitor.PulseAll(gate);
            }
            Join();
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
                hash.Dispose();
            }
            base.Dispose(disposing);
        }

        /// <summary>A new part: contiguous in a part buffer for zstd, streamed in chunks otherwise. Called with the gate held, or before the threads start.</summary>
        private Part NewPart() => partBuffers is null ? new Part { Streaming = true } : new Part { Buffer = partBuffers.Rent() };

        /// <summary>Gives back a segment's array to its pool: the part's buffer, or a chunk.</summary>
        private void Release(Part part, byte[] buffer)
        {
            if (ReferenceEquals(buffer, part.Buffer))
            {
                // Only this part's compressor still holds the part: the producer has moved on.
                part.Buffer = null;
                partBuffers!.Return(buffer);
            }
            else
            {
                chunks.Return(buffer);
            }
        }

        private void Join()
        {
            foreach (var thread in threads)
            {
                thread.Join();
            }
            joined = true;
        }

        private void HandOver()
        {
            var segment = new Segment(chunk, chunkUsed);
            chunk = chunks.Rent();
            chunkUsed = 0;
            lock (gate)
            {
                while (current.Input.Count >= InputDepth && failure is null)
                {
                    WaitAsProducer();
                }
                ThrowIfFailed();
                current.Input.Enqueue(segment);
                Monitor.PulseAll(gate);
            }
        }

        /// <summary>Waits on the gate (held) so that Ctrl+C is seen even while the other threads are slow.</summary>
        private void WaitAsProducer()
        {
            Monitor.Wait(gate, 100);
            cancellationToken.ThrowIfCancellationRequested();
        }

        private void ThrowIfFailed()
        {
            if (failure is not null)
            {
                ExceptionDispatchInfo.Capture(failure).Throw();
            }
        }

        private void Fail(Exception ex)
        {
            lock (gate)
            {
                failure ??= ex;
                Monitor.PulseAll(gate);
            }
        }

        private void CompressLoop()
        {
            // zstd: one compression context per worker, reset between parts (no allocation per
            // part) and writing straight into the output chunks.
            using var zstd = compression == InitramfsCompression.Zstd ? new ZstdFrameCompressor(level) : null;
            try
            {
                while (true)
                {
                    Part part;
                    lock (gate)
                    {
                        while (unassigned.Count == 0 && !producerDone && failure is null)
                        {
                            Monitor.Wait(gate);
                        }
                        if (failure is not null || unassigned.Count == 0)
                        {
                            return;
                        }
                        part = unassigned.Dequeue();
                    }
                    if (zstd is not null)
                    {
                        CompressZstdPart(part, zstd);
                    }
                    else
                    {
                        CompressPart(part);
                    }
                    lock (gate)
                    {
                        part.OutputDone = true;
                        Monitor.PulseAll(gate);
                    }
                }
            }
            catch (PipelineStoppedException)
            {
            }
#pragma warning disable CA1031 // any failure of a worker is handed to the producer, which rethrows it
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fail(ex);
            }
        }

        private void CompressPart(Part part)
        {
            if (compression == InitramfsCompression.None)
            {
                while (TakeInput(part, out var segment))
                {
                    PushOutput(part, segment);
                }
                return;
            }
            using var sink = new PartSink(this, part);
            using (var compressor = new GZipStream(new GzipHeaderNormalizer(sink), Compressors.GzipLevel(level), leaveOpen: false))
            {
                while (TakeInput(part, out var segment))
                {
                    compressor.Write(segment.Buffer, 0, segment.Count);
                    chunks.Return(segment.Buffer);
                }
            }
            sink.Push();
        }

        /// <summary>
        /// One part as one zstd frame: in one pass over the part buffer once the part is whole, or,
        /// when the part outgrew its buffer, streamed from the buffer and the chunks that follow.
        /// </summary>
        private void CompressZstdPart(Part part, ZstdFrameCompressor zstd)
        {
            bool streaming;
            lock (gate)
            {
                while (!part.InputDone && !part.Streaming && failure is null)
                {
                    Monitor.Wait(gate);
                }
                if (failure is not null)
                {
                    throw new PipelineStoppedException();
                }
                streaming = part.Streaming;
            }
            using var sink = new PartSink(this, part);
            if (!streaming)
            {
                zstd.CompressFrame(part.Buffer.AsSpan(0, part.Used), sink, n => Interlocked.Add(ref compressedInput, n));
                Release(part, part.Buffer!);
            }
            else
            {
                zstd.BeginFrame();
                while (TakeInput(part, out var segment))
                {
                    zstd.Continue(segment.Buffer.AsSpan(0, segment.Count), sink);
                    Release(part, segment.Buffer);
                }
                zstd.EndFrame(sink);
            }
            sink.Push();
        }

        private bool TakeInput(Part part, out Segment segment)
        {
            lock (gate)
            {
                while (part.Input.Count == 0 && !part.InputDone && failure is null)
                {
                    Monitor.Wait(gate);
                }
                if (failure is not null)
                {
                    throw new PipelineStoppedException();
                }
                if (part.Input.Count == 0)
                {
                    segment = default;
                    return false;
                }
                segment = part.Input.Dequeue();
                Interlocked.Add(ref compressedInput, segment.Count);
                Monitor.PulseAll(gate);
                return true;
            }
        }

        private void PushOutput(Part part, Segment segment)
        {
            lock (gate)
            {
                // A part waiting for its turn may hold its whole output; the part being written may
                // hold only a few chunks, or a writer slower than the producer (a plain archive,
                // whose "compression" is a copy) would let the queue grow with the archive.
                while (part.OutputBytes >= (part.IsHead ? HeadOutputLimit : outputLimit) && failure is null)
                {
                    Monitor.Wait(gate);
                }
                if (failure is not null)
                {
                    throw new PipelineStoppedException();
                }
                part.Output.Enqueue(segment);
                part.OutputBytes += segment.Count;
                Monitor.PulseAll(gate);
            }
        }

        private void WriteLoop()
        {
            try
            {
                while (true)
                {
                    Part part;
                    lock (gate)
                    {
                        while (unwritten.Count == 0 && !producerDone && failure is null)
                        {
                            Monitor.Wait(gate);
                        }
                        if (failure is not null || unwritten.Count == 0)
                        {
                            return;
                        }
                        part = unwritten.Peek();
                        part.IsHead = true;
                        Monitor.PulseAll(gate);
                    }
                    while (true)
                    {
                        Segment segment;
                        lock (gate)
                        {
                            while (part.Output.Count == 0 && !part.OutputDone && failure is null)
                            {
                                Monitor.Wait(gate);
                            }
                            if (failure is not null)
                            {
                                return;
                            }
                            if (part.Output.Count == 0)
                            {
                                unwritten.Dequeue();
                                Monitor.PulseAll(gate);
                                break;
                            }
                            segment = part.Output.Dequeue();
                            part.OutputBytes -= segment.Count;
                            Monitor.PulseAll(gate);
                        }
                        var bytes = segment.Buffer.AsSpan(0, segment.Count);
                        file.Write(bytes);
                        hash.AppendData(bytes);
                        Interlocked.Add(ref bytesWritten, segment.Count);
                        sinceSync += segment.Count;
                        chunks.Return(segment.Buffer);
                        if (sinceSync >= SyncEvery)
                        {
                            file.Flush(true);
                            sinceSync = 0;
                        }
                    }
                }
            }
#pragma warning disable CA1031 // handed to the producer, which rethrows it
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fail(ex);
            }
        }

        private readonly record struct Segment(byte[] Buffer, int Count);

        private sealed class Part
        {
            /// <summary>The whole part while it is contiguous (zstd); null once given back.</summary>
            public byte[]? Buffer;
            /// <summary>Bytes of cpio in <see cref="Buffer"/>.</summary>
            public int Used;
            /// <summary>Input comes through <see cref="Input"/> (gzip, plain, or a zstd part that outgrew its buffer).</summary>
            public bool Streaming;
            public readonly Queue<Segment> Input = new();
            public readonly Queue<Segment> Output = new();
            public bool InputDone;
            public bool OutputDone;
            public bool IsHead;
            public long OutputBytes;
        }

        /// <summary>Collects a compressor's output into chunks and queues them for the writer.</summary>
        private sealed class PartSink : WriteOnlyStream, IBufferWriter<byte>
        {
            private readonly PartPipeline pipeline;
            private readonly Part part;
            private byte[]? buffer;
            private int used;

            public PartSink(PartPipeline pipeline, Part part)
            {
                this.pipeline = pipeline;
                this.part = part;
            }

            public override void Write(ReadOnlySpan<byte> data)
            {
                while (data.Length > 0)
                {
                    var room = GetSpan();
                    int n = Math.Min(data.Length, room.Length);
                    data[..n].CopyTo(room);
                    Advance(n);
                    data = data[n..];
                }
            }

            /// <inheritdoc/>
            public Span<byte> GetSpan(int sizeHint = 0)
            {
                if (used == ChunkSize)
                {
                    Push();
                }
                // Rented only when there is something to write: a chunk rented after the last push
                // of a part would never go back (one chunk lost per part).
                buffer ??= pipeline.chunks.Rent();
                return buffer.AsSpan(used, ChunkSize - used);
            }

            /// <inheritdoc/>
            public Memory<byte> GetMemory(int sizeHint = 0) => throw new NotSupportedException();

            /// <inheritdoc/>
            public void Advance(int count) => used += count;

            /// <summary>Queues what is collected.</summary>
            public void Push()
            {
                if (used == 0 || buffer is null)
                {
                    return;
                }
                var segment = new Segment(buffer, used);
                buffer = null;
                used = 0;
                pipeline.PushOutput(part, segment);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing && buffer is not null)
                {
                    // Not pushed: the part was stopped (a failure or Ctrl+C), or nothing was written into it.
                    pipeline.chunks.Return(buffer);
                    buffer = null;
                }
                base.Dispose(disposing);
            }
        }

        /// <summary>Unwinds a worker when another thread failed or the export was stopped.</summary>
        private sealed class PipelineStoppedException : Exception
        {
            public PipelineStoppedException()
                : base("The export pipeline stopped.")
            {
            }
        }
    }
}
