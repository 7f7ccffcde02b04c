using System;
using System.IO;
using System.Security.Cryptography;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>A read-only pass-through stream that hashes and counts what is read.</summary>
    internal sealed class HashingReadStream : ReadOnlyStream
    {
        private readonly Stream inner;
        private readonly IncrementalHash? hash;
        private readonly BlockHasher? blocks;

        /// <summary>Wraps <paramref name="inner"/>.</summary>
        public HashingReadStream(Stream inner, IncrementalHash? hash)
        {
            this.inner = inner;
            this.hash = hash;
        }

        /// <summary>Wraps <paramref name="inner"/>, also recording the digests of its blocks.</summary>
        internal HashingReadStream(Stream inner, IncrementalHash? hash, BlockHasher? blocks)
            : this(inner, hash) => this.blocks = blocks;

        /// <summary>Bytes read so far.</summary>
        public long BytesRead { get; private set; }

        /// <inheritdoc/>
        public override int Read(Span<byte> buffer)
        {
            int n = inner.Read(buffer);
            if (n > 0)
            {
                BytesRead += n;
                hash?.AppendData(buffer[..n]);
                blocks?.Append(buffer[..n]);
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
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }
    }
}
