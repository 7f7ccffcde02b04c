using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>Notices when the first bytes a server sends are "HTTP/" (an HTTP server's answer to a TLS hello).</summary>
    internal sealed class FirstBytesStream : Stream
    {
        private readonly Stream inner;
        private readonly Action onPlainHttp;
        private bool looked;

        public FirstBytesStream(Stream inner, Action onPlainHttp)
        {
            this.inner = inner;
            this.onPlainHttp = onPlainHttp;
        }

        public override int Read(byte[] buffer, int offset, int count) => Look(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));
        public override int Read(Span<byte> buffer) => Look(buffer[..inner.Read(buffer)]);
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            return Look(buffer.Span[..n]);
        }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Look(ReadOnlySpan<byte> read)
        {
            if (!looked && read.Length > 0)
            {
                looked = true;
                if (read.StartsWith("HTTP/"u8))
                {
                    onPlainHttp();
                }
            }
            return read.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override void Flush() => inner.Flush();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

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
