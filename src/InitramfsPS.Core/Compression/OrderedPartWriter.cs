using System;
using System.Buffers;
using System.Threading;
using InitramfsPS.IO;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// Compresses an export's parts in parallel and writes them in order: one compressor stage per
    /// worker takes the next part begun, runs its <see cref="IPartCodec"/> over the part's input as
    /// the producer hands it over, and queues the output; the write stage writes the oldest part's
    /// output to the file as it comes, then the next part's.
    /// </summary>
    /// <remarks>
    /// Memory is bounded whatever the entry sizes: at most workers + 1 parts are open (begun and not
    /// yet written: <see cref="Add"/> waits), each holding at most its input queue (see
    /// <see cref="Part"/>) and <c>outputChunks</c> chunks of output, past which its compressor waits
    /// for the writer.
    /// </remarks>
    internal sealed class OrderedPartWriter : IDisposable
    {
        /// <summary>The file is fsynced every this many bytes by the write stage, so the fsync before the rename has little left to do.</summary>
        private const long SyncEvery = 32L << 20;

        private readonly Stages stages;
        private readonly BoundedQueue<Part> unassigned;
        private readonly BoundedQueue<Part> unwritten;
        private readonly AtomicFileWriter file;
        private readonly ChunkPool chunks;
        private readonly int outputChunks;
        private long bytesWritten;
        private long compressedInput;
        private long sinceSync;

        /// <summary>
        /// Starts <paramref name="compressors"/> compressor stages, each with a codec from
        /// <paramref name="codec"/>, and the write stage, which writes to <paramref name="file"/>.
        /// A part may queue <paramref name="outputChunks"/> chunks of output ahead of the writer.
        /// </summary>
        public OrderedPartWriter(AtomicFileWriter file, Func<IPartCodec> codec, int compressors, int outputChunks, ChunkPool chunks, CancellationToken cancellationToken)
        {
            this.file = file;
            this.chunks = chunks;
            this.outputChunks = outputChunks;
            int maxOpenParts = compressors + 1;
            unassigned = new BoundedQueue<Part>(maxOpenParts);
            unwritten = new BoundedQueue<Part>(maxOpenParts);
            stages = new Stages(cancellationToken);
            for (int i = 0; i < compressors; i++)
            {
                stages.Start($"InitramfsPS compress {i}", () => CompressLoop(codec));
            }
            stages.Start("InitramfsPS write", WriteLoop);
        }

        /// <summary>The stages: the producer's waits take their token and rethrow their failure.</summary>
        public Stages Stages => stages;

        /// <summary>Bytes written to the file (read from another thread, a progress figure).</summary>
        public long BytesWritten => Interlocked.Read(ref bytesWritten);

        /// <summary>Bytes of cpio the compressors have taken so far.</summary>
        public long CompressedInputBytes => Interlocked.Read(ref compressedInput);

        /// <summary>
        /// A new part after the ones added so far: waits while workers + 1 parts are open, then
        /// gives the part its buffer and hands it to the next free compressor.
        /// </summary>
        public Part Add(ChunkPool? partBuffers)
        {
            var part = new Part(this, partBuffers, outputChunks);
            Producer(() => unwritten.Add(part, stages.Token));
            part.Begin();
            Producer(() => unassigned.Add(part, stages.Token));
            return part;
        }

        /// <summary>No more parts: waits for every part to be written and rethrows the first failure.</summary>
        public void Complete()
        {
            unwritten.Complete();
            unassigned.Complete();
            stages.Wait();
        }

        /// <summary>Stops the stages after a failure of the producer (or Ctrl+C) and waits for them.</summary>
        public void Abort()
        {
            stages.Fail(new OperationCanceledException("The export was stopped."));
            stages.Join();
        }

        /// <inheritdoc/>
        public void Dispose() => stages.Dispose();

        /// <summary>
        /// Runs a wait of the producer: a failure of a stage (or Ctrl+C) is checked first, and a
        /// wait it ends throws that failure rather than the cancellation it caused.
        /// </summary>
        internal void Producer(Action wait)
        {
            stages.ThrowIfFailed();
            try
            {
                wait();
            }
            catch (OperationCanceledException)
            {
                stages.ThrowIfFailed();
                throw;
            }
        }

        internal void CountInput(long count) => Interlocked.Add(ref compressedInput, count);

        internal byte[] RentChunk() => chunks.Rent();

        internal void ReturnChunk(byte[] chunk) => chunks.Return(chunk);

        private void CompressLoop(Func<IPartCodec> create)
        {
            using var codec = create();
            while (unassigned.TryTake(out var part, stages.Token))
            {
                using (var sink = new PartSink(this, part))
                {
                    codec.Compress(part, sink);
                    sink.Push();
                }
                part.Output.Complete();
            }
        }

        private void WriteLoop()
        {
            // The oldest open part stays counted (in unwritten) until it is written whole.
            while (unwritten.TryPeek(out var part, stages.Token))
            {
                while (part.Output.TryTake(out var segment, stages.Token))
                {
                    file.Write(segment.Buffer.AsSpan(0, segment.Count));
                    Interlocked.Add(ref bytesWritten, segment.Count);
                    sinceSync += segment.Count;
                    chunks.Return(segment.Buffer);
                    if (sinceSync >= SyncEvery)
                    {
                        file.Sync();
                        sinceSync = 0;
                    }
                }
                unwritten.TryTake(out _, stages.Token);
            }
        }
    }

    /// <summary>Bytes in a buffer: a chunk, or a part buffer.</summary>
    internal readonly record struct Segment(byte[] Buffer, int Count);

    /// <summary>
    /// One part of an export: its input as the producer hands it over, and its compressed output
    /// until the writer takes it.
    /// </summary>
    /// <remarks>
    /// A zstd part is collected whole in a part buffer and handed over as one segment when it ends;
    /// one that outgrows its buffer is handed over at that moment and streams on in chunks
    /// (<see cref="Streaming"/>). Every gzip or plain part streams in chunks from the start. At most
    /// <see cref="InputDepth"/> chunks wait for the compressor.
    /// </remarks>
    internal sealed class Part
    {
        /// <summary>Chunks queued ahead of a part's compressor.</summary>
        public const int InputDepth = 4;

        private readonly OrderedPartWriter owner;
        private readonly ChunkPool? partBuffers;
        private readonly BoundedQueue<Segment> input = new(InputDepth);

        public Part(OrderedPartWriter owner, ChunkPool? partBuffers, int outputChunks)
        {
            this.owner = owner;
            this.partBuffers = partBuffers;
            Output = new BoundedQueue<Segment>(outputChunks);
            Streaming = partBuffers is null;
        }

        /// <summary>The whole part while it is contiguous (zstd); null once given back.</summary>
        public byte[]? Buffer { get; private set; }

        /// <summary>Bytes of cpio in <see cref="Buffer"/> (the producer's count).</summary>
        public int Used { get; set; }

        /// <summary>
        /// Input comes in chunks (gzip, plain, or a zstd part that outgrew its buffer). Set by the
        /// producer before it hands over the buffer, so a compressor that took the buffer sees it.
        /// </summary>
        public bool Streaming { get; private set; }

        /// <summary>The compressed output, in chunks, for the writer.</summary>
        public BoundedQueue<Segment> Output { get; }

        /// <summary>Rents the part buffer (zstd): only once the part may be open, so at most workers + 1 exist.</summary>
        public void Begin()
        {
            if (partBuffers is not null)
            {
                Buffer = partBuffers.Rent();
            }
        }

        /// <summary>Producer: the part outgrew its buffer; the buffer goes to the compressor and chunks follow.</summary>
        public void Overflow()
        {
            Streaming = true;
            Feed(new Segment(Buffer!, Used));
        }

        /// <summary>Producer: hands over a chunk, waiting while <see cref="InputDepth"/> wait.</summary>
        public void Feed(Segment segment) => owner.Producer(() => input.Add(segment, owner.Stages.Token));

        /// <summary>Producer: the part ends here (a contiguous part is handed over whole now).</summary>
        public void EndInput()
        {
            if (!Streaming)
            {
                Feed(new Segment(Buffer!, Used));
            }
            input.Complete();
        }

        /// <summary>Codec: the next input segment, waiting for it; false at the part's end.</summary>
        public bool TryTake(out Segment segment)
        {
            if (!input.TryTake(out segment, owner.Stages.Token))
            {
                return false;
            }
            if (Streaming || !ReferenceEquals(segment.Buffer, Buffer))
            {
                // A contiguous part reports its progress through Consumed as zstd goes.
                owner.CountInput(segment.Count);
            }
            return true;
        }

        /// <summary>Codec: <paramref name="count"/> more bytes of a contiguous part were compressed.</summary>
        public void Consumed(long count) => owner.CountInput(count);

        /// <summary>Codec: gives back a segment's array to its pool: the part's buffer, or a chunk.</summary>
        public void Release(Segment segment)
        {
            if (ReferenceEquals(segment.Buffer, Buffer))
            {
                // Only this part's compressor still holds the part: the producer has moved on.
                Buffer = null;
                partBuffers!.Return(segment.Buffer);
            }
            else
            {
                owner.ReturnChunk(segment.Buffer);
            }
        }
    }

    /// <summary>Collects a codec's output into chunks and queues them on the part's output for the writer.</summary>
    internal sealed class PartSink : WriteOnlyStream, IBufferWriter<byte>
    {
        private readonly OrderedPartWriter owner;
        private readonly Part part;
        private byte[]? buffer;
        private int used;

        public PartSink(OrderedPartWriter owner, Part part)
        {
            this.owner = owner;
            this.part = part;
        }

        /// <inheritdoc/>
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
            if (used == PartPipeline.ChunkSize)
            {
                Push();
            }
            // Rented only when there is something to write: a chunk rented after the last push
            // of a part would never go back (one chunk lost per part).
            buffer ??= owner.RentChunk();
            return buffer.AsSpan(used, PartPipeline.ChunkSize - used);
        }

        /// <inheritdoc/>
        public Memory<byte> GetMemory(int sizeHint = 0) => throw new NotSupportedException();

        /// <inheritdoc/>
        public void Advance(int count) => used += count;

        /// <summary>Queues what is collected, waiting while the part's output is full.</summary>
        public void Push()
        {
            if (used == 0 || buffer is null)
            {
                return;
            }
            var segment = new Segment(buffer, used);
            buffer = null;
            used = 0;
            Push(segment);
        }

        /// <summary>Queues a whole segment (a plain part's input chunk, passed on without a copy).</summary>
        public void Push(Segment segment) => part.Output.Add(segment, owner.Stages.Token);

        protected override void Dispose(bool disposing)
        {
            if (disposing && buffer is not null)
            {
                // Not pushed: the part was stopped (a failure or Ctrl+C), or nothing was written into it.
                owner.ReturnChunk(buffer);
                buffer = null;
            }
            base.Dispose(disposing);
        }
    }
}
