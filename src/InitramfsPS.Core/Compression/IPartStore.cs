using System;
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
        byte[]? Find(byte[] uncompressedSha256, CancellationToken cancellationToken);

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
    /// <summary>A part being kept (<see cref="IPartStore.BeginKeep"/>); disposed without <see cref="Commit"/>, nothing is kept.</summary>
    internal interface IPartKeeper : IDisposable
    {
        /// <summary>The next compressed bytes of the part, in order.</summary>
        void Write(ReadOnlySpan<byte> compressed);

        /// <summary>The part is whole: keep it.</summary>
        void Commit(CancellationToken cancellationToken);
    }
}
