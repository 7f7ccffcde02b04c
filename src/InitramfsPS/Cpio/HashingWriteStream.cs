using System;
using System.IO;
using System.Security.Cryptography;
using InitramfsPS.IO;

namespace InitramfsPS.Cpio
{
    /// <summary>A write-through stream that counts and sha256-hashes what passes, so the report costs no second read.</summary>
    public sealed class HashingWriteStream : WriteOnlyStream
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
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            hash.AppendData(buffer);
            BytesWritten += buffer.Length;
        }

        /// <inheritdoc/>
        public override void Flush() => inner.Flush();

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
