using System;
using System.Buffers;
using System.IO;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Bytes handed from an asynchronous writer (a download) to a thread that reads them as a
    /// stream, with back-pressure: at most <c>capacity</c> chunks wait, then the writer waits.
    /// Either side can stop the other: the writer by <see cref="Complete"/> (with an error, the
    /// reader's next read throws it), the reader by <see cref="StopReading"/> (the writer's wait
    /// ends and later writes are dropped).
    /// </summary>
    internal sealed class ByteChannel : IDisposable
    {
        private readonly Channel<Chunk> channel;
        private readonly CancellationTokenSource readerGone = new();

        /// <summary>A channel holding at most <paramref name="capacity"/> chunks (one per write).</summary>
        public ByteChannel(int capacity)
        {
            channel = Channel.CreateBounded<Chunk>(new BoundedChannelOptions(capacity)
            {
                // StopReading drains from whichever thread stops the reader.
                SingleReader = false,
                SingleWriter = true,
                FullMode = BoundedChannelFullMode.Wait,
            });
            Reader = new ReadStream(this);
        }

        /// <summary>The bytes written, as a stream for the reading thread. Its reads block.</summary>
        public Stream Reader { get; }

        /// <summary>Whether the reader stopped (<see cref="StopReading"/>): writes are dropped.</summary>
        public bool ReaderStopped => readerGone.IsCancellationRequested;

        /// <summary>Copies <paramref name="data"/> in; waits while the channel is full. Returns false once the reader stopped.</summary>
        public async ValueTask<bool> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (ReaderStopped)
            {
                return false;
            }
            var buffer = ArrayPool<byte>.Shared.Rent(data.Length);
            data.CopyTo(buffer);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, readerGone.Token);
            try
            {
                await channel.Writer.WriteAsync(new Chunk(buffer, data.Length), linked.Token).ConfigureAwait(false);
                return true;
            }
            catch (Exception ex) when (ex is ChannelClosedException || (ex is OperationCanceledException && ReaderStopped && !cancellationToken.IsCancellationRequested))
            {
                ArrayPool<byte>.Shared.Return(buffer);
                return false;
            }
        }

        /// <summary>No more bytes: the reader sees the end, or <paramref name="error"/> thrown from its next read.</summary>
        public void Complete(Exception? error = null) => channel.Writer.TryComplete(error);

        /// <summary>The reader stops: a waiting writer is released and later writes are dropped.</summary>
        public void StopReading()
        {
            if (disposed)
            {
                return;
            }
            readerGone.Cancel();
            while (channel.Reader.TryRead(out var chunk))
            {
                ArrayPool<byte>.Shared.Return(chunk.Buffer);
            }
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            if (disposed)
            {
                return;
            }
            disposed = true;
            Complete();
            StopReading();
            readerGone.Dispose();
        }

        private bool disposed;

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
                    var reader = owner.channel.Reader;
                    Chunk next;
                    while (!reader.TryRead(out next))
                    {
                        // A dedicated thread: blocking here is what it is for. A completion with an
                        // error rethrows that error; StopReading ends the wait with a cancellation.
                        if (!reader.WaitToReadAsync(owner.readerGone.Token).AsTask().GetAwaiter().GetResult())
                        {
                            return 0;
                        }
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
