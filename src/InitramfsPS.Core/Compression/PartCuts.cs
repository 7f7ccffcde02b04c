using System;
using InitramfsPS.IO;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// Where the parts of an export end: at entry boundaries chosen by the content, so that a change
    /// to one entry touches only the parts around it and every other part is the same bytes as
    /// before, to be reused from the part cache (issue 16).
    /// </summary>
    /// <remarks>
    /// <para>The boundary before an entry is a cut, once the part holds <see cref="MinBytes"/>, with
    /// the chance (size of the entry before) / <see cref="Scale"/>, drawn from a hash of the
    /// entry's name: each byte of cpio carries the same chance of ending a part whatever the sizes of
    /// the entries. With the minimum at 3/4 of the target, the scale at 1/2 and the maximum at the
    /// part buffer (twice the target), parts average about 1.2 times the target. Name and size are the entry's own: an added, removed or replaced entry moves no
    /// boundary but the ones its own bytes push past <see cref="MinBytes"/> or
    /// <see cref="MaxBytes"/>, which the next cut drawn by the names sets right again.</para>
    /// <para>Three cuts are forced, also by content: at <see cref="MaxBytes"/> (one part in about
    /// e^(-(max - min) / scale) = 1 in 12); before an entry that would not fit in the part buffer;
    /// and after an entry larger than the buffer, which is then alone in its part and streams
    /// through the compressor. Never inside a hardlink group (the caller's <c>canSplit</c>).</para>
    /// <para>The sizes were chosen by measurement on Debian minbase (docs/design-notes.md,
    /// "Content-defined parts"): against the fixed cuts before, level 3 +0.3% and level 19 -1.2% in
    /// size, and one part re-encoded for a file added, removed or replaced.</para>
    /// </remarks>
    internal sealed class PartCuts
    {
        /// <summary>Salt of the name hash for cuts, apart from the one of inode numbers.</summary>
        private const ulong Salt = 0xC0FFEE;

        /// <summary>Cuts for parts of <paramref name="target"/> bytes on average, in part buffers of <paramref name="buffer"/> bytes.</summary>
        public PartCuts(long target, long buffer)
        {
            Target = target;
            BufferBytes = buffer;
            MinBytes = target * 3 / 4;
            Scale = target / 2;
            MaxBytes = buffer;
        }

        /// <summary>No cut at all: an uncompressed archive, written as one part.</summary>
        public static PartCuts None { get; } = new(long.MaxValue / 4, long.MaxValue / 4);

        /// <summary>The average part size aimed at.</summary>
        public long Target { get; }

        /// <summary>No cut drawn by a name before a part holds this many bytes.</summary>
        public long MinBytes { get; }

        /// <summary>Bytes of cpio per expected cut past <see cref="MinBytes"/>.</summary>
        public long Scale { get; }

        /// <summary>A part holding this many bytes ends at the next boundary.</summary>
        public long MaxBytes { get; }

        /// <summary>The part buffer: an entry that would take a part past it begins a new part.</summary>
        public long BufferBytes { get; }

        /// <summary>
        /// Whether a part holding <paramref name="partBytes"/>, whose last entry took
        /// <paramref name="previousRecord"/> bytes, ends before the entry named
        /// <paramref name="archiveName"/> of <paramref name="record"/> bytes (header, name, data
        /// and padding).
        /// </summary>
        public bool CutBefore(long partBytes, long previousRecord, ReadOnlySpan<byte> archiveName, long record)
        {
            if (partBytes == 0 || ReferenceEquals(this, None))
            {
                return false;
            }
            if (previousRecord >= BufferBytes || partBytes + record > BufferBytes || partBytes >= MaxBytes)
            {
                return true;
            }
            if (partBytes < MinBytes)
            {
                return false;
            }
            return StableHash.Fraction(StableHash.Of(archiveName, Salt)) * Scale < previousRecord;
        }
    }
}
