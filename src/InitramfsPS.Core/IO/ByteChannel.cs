using System;
using System.Buffers;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Bytes handed from an asynchronous writer (a download) to a thread that reads them as a
    /// stream, with back-pressure: at most <c>capacity</c> chunks wait, then the writer waits.
    /// Either side can stop the other: the writer by <see cref="Complete"/> (with an error, the
    /// reader's next read throws it), the reader by <see cref="StopReading"/> (the writer's wait
    /// ends and later writes are dropped). Both close the channel, so both can be called in any
    /// order, and more than once.
    /// </summary>
    internal sealed class ByteChannel : IDisposable
    {
        private readonly BoundedQueue<Chunk> queue;

        /// <summary>A channel holding at most <paramref name="capacity"/> chunks (one per write).</summary>
        public ByteChannel(int capacity)
        {
            queue = new BoundedQueue<Chunk>(capacity);
            Reader = new ReadStream(this);
        }

        /// <summary>The bytes written, as a stream for the reading thread. Its reads block.</summary>
        public Stream Reader { get; }

        /// <summary>Copies <paramref name="data"/> in; waits while the channel is full. Returns false once the channel is closed.</summary>
        public async ValueTask<bool> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(data.Length);
            data.CopyTo(buffer);
            if (await queue.TryAddAsync(new Chunk(buffer, data.Length), cancellationToken).ConfigureAwait(false))
            {
                return true;
            }
            ArrayPool<byte>.Shared.Return(buffer);
            return false;
        }

        /// <summary>No more bytes: the reader sees the end, or <paramref name="error"/> thrown from its next read.</summary>
        public void Complete(Exception? error = null) => queue.Complete(error);

        /// <summary>
        /// The reader stops: closing the channel releases a waiting writer (its later writes are
        /// dropped) and ends a read waiting for bytes; what was queued goes back to the pool.
        /// </summary>
        public void StopReading() => queue.Close(chunk => ArrayPool<byte>.Shared.Return(chunk.Buffer));

        /// <inheritdoc/>
        public void Dispose() => StopReading();

        private readonly record struct Chunk(byte[] Buffer, int Count);

        private sealed class ReadStream : ReadOnlyStream
        {
            private readonly ByteChannel owner;
            private Chunk current;
            private int offset;
            private bool hasCurrent;

            public ReadStream(ByteChannel owner) => this.owner = owner;

            public override int Read(Span<byte> buffer)
            {
                if (buffer.Length == 0)
                {
                    return 0;
                }
                if (!hasCurrent || offset == current.Count)
                {
                    if (hasCurrent)
                    {
                        ArrayPool<byte>.Shared.Return(current.Buffer);
                        hasCurrent = false;
                    }
                    // A dedicated thread: blocking here is what it is for. A completion with an
                    // error rethrows that error; StopReading ends the wait as an end of stream.
                    if (!owner.queue.TryTake(out var next, CancellationToken.None))
                    {
                        return 0;
                    }
                    current = next;
                    hasCurrent = true;
                    offset = 0;
                }
                int n = Math.Min(buffer.Length, current.Count - offset);
                current.Buffer.AsSpan(offset, n).CopyTo(buffer);
                offset += n;
                return n;
            }
        }
    }
}
