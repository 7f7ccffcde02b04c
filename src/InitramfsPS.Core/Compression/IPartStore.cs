using System;
using System.Collections.Generic;
using System.Threading;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// Compressed parts kept from earlier exports (issue 16), for one codec, level and compressor:
    /// a part whose uncompressed bytes have the same sha256 is copied instead of compressed. The
    /// export wires the cache's store in; the pipeline knows only this. Called from several
    /// compressor threads at once.
    /// </summary>
    internal interface IPartStore
    {
        /// <summary>The compressed bytes of a part kept under <paramref name="uncompressedSha256"/>, verified; null when there is none (or it was bad).</summary>
        KeptPart? Find(byte[] uncompressedSha256, CancellationToken cancellationToken);

        /// <summary>
        /// Begins keeping a part whose <paramref name="uncompressedLength"/> bytes hash to
        /// <paramref name="uncompressedSha256"/>: its compressed bytes are written to the keeper as
        /// they are produced, then committed. Null when the store cannot take it; a failure to keep
        /// is never an export's failure.
        /// </summary>
        IPartKeeper? BeginKeep(byte[] uncompressedSha256, long uncompressedLength);

        /// <summary>
        /// The sha256 and length of the uncompressed bytes of the part with this recipe (what its
        /// bytes are made of, hashed: see Export's PartPlan), recorded by an earlier export; null
        /// when unknown. Lets an export find a kept part without reading its entries.
        /// </summary>
        (byte[] Sha256, long Length)? Recall(byte[] recipe);

        /// <summary>Records that the part with <paramref name="recipe"/> is <paramref name="length"/> bytes with sha256 <paramref name="uncompressedSha256"/>.</summary>
        void Remember(byte[] recipe, byte[] uncompressedSha256, long length);
    }
}

namespace InitramfsPS.Compression
{
    /// <summary>
    /// The compressed bytes of a kept part (<see cref="IPartStore.Find"/>), in the store's buffers:
    /// written out as they are and given back one by one once written, not copied into one array
    /// (a rebuild of Debian minbase copies 52 MB of parts; the copy and the fresh arrays cost more
    /// CPU than verifying them).
    /// </summary>
    internal sealed class KeptPart : IDisposable
    {
        private readonly Action<byte[]> giveBack;
        private readonly IDisposable owner;

        /// <summary>Bytes in <paramref name="segments"/>, in order; <paramref name="giveBack"/> takes one buffer back, <paramref name="owner"/> all that are left.</summary>
        public KeptPart(IReadOnlyList<ArraySegment<byte>> segments, long length, Action<byte[]> giveBack, IDisposable owner)
        {
            Segments = segments;
            Length = length;
            this.giveBack = giveBack;
            this.owner = owner;
        }

        /// <summary>The bytes, in order; each segment starts at its buffer's start.</summary>
        public IReadOnlyList<ArraySegment<byte>> Segments { get; }

        /// <summary>Bytes in all.</summary>
        public long Length { get; }

        /// <summary>Gives one of <see cref="Segments"/>' buffers back, once, from any thread.</summary>
        public void GiveBack(byte[] buffer) => giveBack(buffer);

        /// <summary>Gives back every buffer not given back yet.</summary>
        public void Dispose() => owner.Dispose();
    }

    /// <summary>A part being kept (<see cref="IPartStore.BeginKeep"/>); disposed without <see cref="Commit"/>, nothing is kept.</summary>
    internal interface IPartKeeper : IDisposable
    {
        /// <summary>The next compressed bytes of the part, in order.</summary>
        void Write(ReadOnlySpan<byte> compressed);

        /// <summary>The part is whole: keep it.</summary>
        void Commit(CancellationToken cancellationToken);
    }
}
