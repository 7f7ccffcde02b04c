using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// A registry that stopped sending: no connection, no answer, or a body that stalled. An
    /// <see cref="IOException"/>, so it is retried as a dropped connection is.
    /// </summary>
    internal sealed class TransferStalledException : IOException
    {
        /// <summary>Creates the exception; the message says what did not arrive in time.</summary>
        public TransferStalledException(string message)
            : base(message)
        {
        }
    }

    /// <summary>
    /// Reads a response body and fails with <see cref="TransferStalledException"/> when fewer than
    /// <c>rate × window</c> bytes arrive within a window: a read that waits past the end of the
    /// window is cancelled (which closes the connection), and a trickle that keeps each read short
    /// fails when its window ends.
    /// </summary>
    internal sealed class StallGuardStream : Stream
    {
        private readonly Stream inner;
        private readonly TimeSpan window;
        private readonly long need;
        private long markTicks;
        private long sinceMark;

        /// <summary>Wraps <paramref name="inner"/>; a zero window or rate turns the check off.</summary>
        public StallGuardStream(Stream inner, TimeSpan window, long minBytesPerSecond)
        {
            this.inner = inner;
            this.window = window;
            need = window > TimeSpan.Zero && minBytesPerSecond > 0 ? Math.Max(1, (long)(minBytesPerSecond * window.TotalSeconds)) : 0;
            markTicks = Stopwatch.GetTimestamp();
        }

        private bool Off => need == 0;

        private TransferStalledException Stalled() =>
            new($"fewer than {Units.Bytes(need)} arrived in {RegistryLimits.Format(window)}, the transfer stalled");

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Off)
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            var left = window - Stopwatch.GetElapsedTime(markTicks);
            if (left <= TimeSpan.Zero)
            {
                throw Stalled();
            }
            int n;
            using (var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timer.CancelAfter(left);
                try
                {
                    n = await inner.ReadAsync(buffer, timer.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw Stalled();
                }
            }
            sinceMark += n;
            if (sinceMark >= need)
            {
                markTicks = Stopwatch.GetTimestamp();
                sinceMark = 0;
            }
            else if (n > 0 && Stopwatch.GetElapsedTime(markTicks) >= window)
            {
                throw Stalled();
            }
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
