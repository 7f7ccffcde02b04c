using System;
using System.IO;
using System.Security.Cryptography;
using InitramfsPS.Cache;
using InitramfsPS.Errors;

namespace InitramfsPS.Layers
{
    /// <summary>A read-only pass-through stream that hashes and counts what is read, and stops at a byte limit.</summary>
    public sealed class HashingReadStream : Stream
    {
        private readonly Stream inner;
        private readonly IncrementalHash? hash;
        private readonly long limit;
        private readonly Func<long, Exception>? overLimit;
        private readonly TeeTarget? tee;

        /// <summary>Wraps <paramref name="inner"/>; <paramref name="limit"/> ≤ 0 means no limit.</summary>
        public HashingReadStream(Stream inner, IncrementalHash? hash, long limit = 0, Func<long, Exception>? overLimit = null, TeeTarget? tee = null)
        {
            this.inner = inner;
            this.hash = hash;
            this.limit = limit;
            this.overLimit = overLimit;
            this.tee = tee;
        }

        /// <summary>Bytes read so far.</summary>
        public long BytesRead { get; private set; }

        /// <inheritdoc/>
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        /// <inheritdoc/>
        public override int Read(Span<byte> buffer)
        {
            int n = inner.Read(buffer);
            if (n > 0)
            {
                BytesRead += n;
                if (limit > 0 && BytesRead > limit)
                {
                    throw overLimit?.Invoke(limit) ?? new InvalidDataException("limit exceeded");
                }
                hash?.AppendData(buffer[..n]);
                tee?.Write(buffer[..n]);
            }
            return n;
        }

        /// <summary>Reads to the end so the hash covers every byte (padding after a tar's end blocks included).</summary>
        public void Drain()
        {
            var scratch = new byte[1 << 16];
            while (Read(scratch, 0, scratch.Length) > 0)
            {
            }
        }

        /// <inheritdoc/>
        public override bool CanRead => true;
        /// <inheritdoc/>
        public override bool CanSeek => false;
        /// <inheritdoc/>
        public override bool CanWrite => false;
        /// <inheritdoc/>
        public override long Length => throw new NotSupportedException();
        /// <inheritdoc/>
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }
        /// <inheritdoc/>
        public override void Flush()
        {
        }
        /// <inheritdoc/>
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override void SetLength(long value) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Where a <see cref="HashingReadStream"/> copies what it reads (the decompressed layer going into the cache).</summary>
    public sealed class TeeTarget
    {
        private readonly BlobWriter writer;

        /// <summary>Copies into <paramref name="writer"/>.</summary>
        public TeeTarget(BlobWriter writer) => this.writer = writer;

        internal void Write(ReadOnlySpan<byte> data)
        {
            try
            {
                writer.Stream.Write(data);
            }
            catch (IOException ex)
            {
                throw new InitramfsException("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write a layer to the cache: {ex.Message}", writer.TempPath, ex);
            }
        }
    }
}
