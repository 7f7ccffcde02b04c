using System;
using System.IO;
using System.Security.Cryptography;

namespace InitramfsPS.Cpio
{
    /// <summary>A write-through stream that counts and sha256-hashes what passes, so the report costs no second read.</summary>
    public sealed class HashingWriteStream : Stream
    {
        private readonly Stream inner;
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        /// <summary>Wraps <paramref name="inner"/> (left open).</summary>
        public HashingWriteStream(Stream inner) => this.inner = inner;

        /// <summary>Bytes written.</summary>
        public long BytesWritten { get; private set; }

        /// <summary>The sha256 of everything written, as lower-case hex.</summary>
        public string Sha256Hex() => Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant();

        /// <inheritdoc/>
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        /// <inheritdoc/>
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            hash.AppendData(buffer);
            BytesWritten += buffer.Length;
        }

        /// <inheritdoc/>
        public override bool CanRead => false;
        /// <inheritdoc/>
        public override bool CanSeek => false;
        /// <inheritdoc/>
        public override bool CanWrite => true;
        /// <inheritdoc/>
        public override long Length => BytesWritten;
        /// <inheritdoc/>
        public override long Position { get => BytesWritten; set => throw new NotSupportedException(); }
        /// <inheritdoc/>
        public override void Flush() => inner.Flush();
        /// <inheritdoc/>
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override void SetLength(long value) => throw new NotSupportedException();

        /// <inheritdoc/>
        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                hash.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
