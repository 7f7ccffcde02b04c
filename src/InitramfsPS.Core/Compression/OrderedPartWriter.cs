using System;
using System.Buffers;
using System.Collections.Generic;
using System.Security.Cryptography;
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
    /// Memory is bounded whatever the entry sizes: at most workers + 2 parts are open (begun and not
    /// yet written: <see cref="Add"/> waits), each holding at most its input queue (see
    /// <see cref="Part"/>) and <c>outputChunks</c> chunks of output, past which its compressor waits
    /// for the writer.
    /// </remarks>
    internal sealed class OrderedPartWriter : IDisposable
    {
        /// <summary>
        /// The write stage starts the disk writes of the file every this many bytes (without waiting
        /// for them), so the fsync before the rename has little left to do.
        /// </summary>
        private const long WritebackEvery = 8L << 20;

        /// <summary>
        /// Parts open beyond one per compressor. Content-defined parts differ in size (3/4 to twice
        /// the target), so a long part holds up the writer while the short ones after it are done;
        /// with one spare, the other compressor then waited for it to be written. With two, the
        /// synthetic 1 GB export took 2-4% less time at gzip and zstd level 3 (alternating runs in
        /// one process), for one more part buffer.
        /// </summary>
        private const int SpareParts = 2;

        private readonly Stages stages;
        private readonly BoundedQueue<Part> unassigned;
        private readonly BoundedQueue<Part> unwritten;
        private readonly AtomicFileWriter file;
        private readonly ChunkPool chunks;
        private readonly int outputChunks;
        private readonly IPartStore? store;
        private long bytesWritten;
        private long compressedInput;
        private long sinceWriteback;
        private int partsCompressed;
        private int partsReused;
        private long bytesCompressed;

        /// <summary>
        /// Starts <paramref name="compressors"/> compressor stages, each with a codec from
        /// <paramref name="codec"/>, and the write stage, which writes to <paramref name="file"/>.
        /// A part may queue <paramref name="outputChunks"/> chunks of output ahead of the writer.
        /// With a <paramref name="store"/>, a part whole in its buffer is looked up by the sha256 of
        /// its bytes first, and copied from there when found, else compressed and kept.
        /// </summary>
        public OrderedPartWriter(AtomicFileWriter file, Func<IPartCodec> codec, int compressors, int outputChunks, ChunkPool chunks, IPartStore? store, CancellationToken cancellationToken)
        {
            this.file = file;
            this.store = store;
            this.chunks = chunks;
            this.outputChunks = outputChunks;
            int maxOpenParts = compressors + SpareParts;
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

        /// <summary>Bytes of cpio the compressors have taken so far (reused parts count as taken).</summary>
        public long CompressedInputBytes => Interlocked.Read(ref compressedInput);

        /// <summary>Parts run through a compressor.</summary>
        public int PartsCompressed => Volatile.Read(ref partsCompressed);

        /// <summary>Parts copied from the store instead.</summary>
        public int PartsReused => Volatile.Read(ref partsReused);

        /// <summary>Bytes of cpio run through a compressor (the reused parts' bytes are not).</summary>
        public long BytesCompressed => Interlocked.Read(ref bytesCompressed);

        /// <summary>
        /// A new part after the ones added so far: waits while workers + 2 parts are open, then
        /// gives the part its buffer and hands it to the next free compressor.
        /// </summary>
        public Part Add(ChunkPool? partBuffers, byte[]? recipe = null)
        {
            var part = new Part(this, partBuffers, outputChunks) { Recipe = recipe };
            Producer(() => unwritten.Add(part, stages.Token));
            part.Begin();
            Producer(() => unassigned.Add(part, stages.Token));
            return part;
        }

        /// <summary>
        /// A part already compressed (copied from the part store) after the ones added so far, of
        /// <paramref name="uncompressedLength"/> bytes of cpio: it goes to the writer in its turn,
        /// past the compressors. Waits while workers + 2 parts are open.
        /// </summary>
        public void AddReady(KeptPart kept, long uncompressedLength)
        {
            // Room for every segment: the part is queued whole before the writer reaches it.
            var part = new Part(this, null, Math.Max(1, kept.Segments.Count));
            foreach (var segment in kept.Segments)
            {
                part.Output.Add(new Segment(segment.Array!, segment.Count, kept.GiveBack), stages.Token);
            }
            part.Output.Complete();
            Producer(() => unwritten.Add(part, stages.Token));
            CountInput(uncompressedLength);
            Interlocked.Increment(ref partsReused);
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
                // The first segment is the whole part unless it streams (then it is the part
                // buffer as it overflowed, or a chunk); an empty part has none.
                if (!part.TryTake(out var first))
                {
                    part.Output.Complete();
                    continue;
                }
                long input = part.Streaming ? -1 : first.Count;
                byte[]? key = store is not null && !part.Streaming ? SHA256.HashData(first.Buffer.AsSpan(0, first.Count)) : null;
                using KeptPart? kept = key is not null ? store!.Find(key, stages.Token) : null;
                if (key is not null && part.Recipe is { } recipe)
                {
                    // The next export finds this part from its recipe, without reading its entries.
                    store!.Remember(recipe, key, first.Count);
                }
                IPartKeeper? keeper = null;
                try
                {
                    using (var sink = new PartSink(this, part))
                    {
                        if (kept is not null)
                        {
                            foreach (var segment in kept.Segments)
                            {
                                sink.Write(segment);
                            }
                            part.Consumed(first.Count);
                            part.Release(first);
                            Interlocked.Increment(ref partsReused);
                        }
                        else
                        {
                            if (key is not null)
                            {
                                // Written as the codec produces it, on this thread: no copy is held.
                                keeper = store!.BeginKeep(key, input);
                                sink.Keeper = keeper;
                            }
                            codec.Compress(part, first, sink);
                            Interlocked.Increment(ref partsCompressed);
                            Interlocked.Add(ref bytesCompressed, input >= 0 ? input : part.StreamedBytes);
                        }
                        sink.Push();
                    }
                    part.Output.Complete();
                    // After the output is complete: the writer goes on while the part is named and recorded.
                    keeper?.Commit(stages.Token);
                }
                finally
                {
                    keeper?.Dispose();
                }
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
                    sinceWriteback += segment.Count;
                    if (segment.GiveBack is { } giveBack)
                    {
                        giveBack(segment.Buffer);
                    }
                    else
                    {
                        chunks.Return(segment.Buffer);
                    }
                    if (sinceWriteback >= WritebackEvery)
                    {
                        file.StartWriteback();
                        sinceWriteback = 0;
                    }
                }
                unwritten.TryTake(out _, stages.Token);
            }
        }
    }

    /// <summary>Bytes in a buffer: a chunk, or a part buffer; <paramref name="GiveBack"/>, when set, takes the buffer back instead of the chunk pool (a part copied from the store).</summary>
    internal readonly record struct Segment(byte[] Buffer, int Count, Action<byte[]>? GiveBack = null);

    /// <summary>
    /// One part of an export: its input as the producer hands it over, and its compressed output
    /// until the writer takes it.
    /// </summary>
    /// <remarks>
    /// A gzip or zstd part is collected whole in a part buffer (so that its sha256 keys the part
    /// store before it is compressed) and handed over as one segment when it ends; one that
    /// outgrows its buffer is handed over at that moment and streams on in chunks
    /// (<see cref="Streaming"/>). The one part of a plain archive streams in chunks from the start. At most
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
        /// Input comes in chunks (a plain archive's part, or a part that outgrew its buffer). Set by the
        /// producer before it hands over the buffer, so a compressor that took the buffer sees it.
        /// </summary>
        public bool Streaming { get; private set; }

        /// <summary>The compressed output, in chunks, for the writer.</summary>
        public BoundedQueue<Segment> Output { get; }

        /// <summary>Rents the part buffer (zstd): only once the part may be open, so at most workers + 2 exist.</summary>
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

        /// <summary>What the part's bytes are made of, hashed (Export's PartPlan); null without a part store.</summary>
        public byte[]? Recipe { get; init; }

        /// <summary>Bytes of input taken by the compressor of a streaming part.</summary>
        public long StreamedBytes { get; private set; }

        /// <summary>Codec: the next input segment, waiting for it; false at the part's end.</summary>
        public bool TryTake(out Segment segment)
        {
            if (!input.TryTake(out segment, owner.Stages.Token))
            {
                return false;
            }
            if (Streaming || !ReferenceEquals(segment.Buffer, Buffer))
            {
                // A contiguous part reports its progress through Consumed as the codec goes.
                owner.CountInput(segment.Count);
                StreamedBytes += segment.Count;
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

        /// <summary>Where what is queued is also written, for the part store (before the writer takes it and gives its chunk back).</summary>
        public IPartKeeper? Keeper { get; set; }

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
        public void Push(Segment segment)
        {
            Keeper?.Write(segment.Buffer.AsSpan(0, segment.Count));
            part.Output.Add(segment, owner.Stages.Token);
        }

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
