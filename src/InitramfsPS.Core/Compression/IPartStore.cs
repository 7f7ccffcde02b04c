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
        byte[]? Find(byte[] uncompressedSha256, CancellationToken cancellationToken);

        /// <summary>Keeps <paramref name="compressed"/> (the part's bytes as written to the archive) under <paramref name="uncompressedSha256"/> of its <paramref name="uncompressedLength"/> bytes. A failure to keep is not an export's failure.</summary>
        void Keep(byte[] uncompressedSha256, long uncompressedLength, IReadOnlyList<ReadOnlyMemory<byte>> compressed, CancellationToken cancellationToken);

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
