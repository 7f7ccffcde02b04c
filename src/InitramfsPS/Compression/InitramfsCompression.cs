using System;
using System.IO;
using System.IO.Compression;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.Compression
{
    /// <summary>How an initramfs is compressed. The kernel must be built with the matching decompressor.</summary>
    public enum InitramfsCompression
    {
        /// <summary>A plain cpio archive.</summary>
        None,
        /// <summary>gzip: every kernel can read it.</summary>
        Gzip,
        /// <summary>zstd: faster to unpack and smaller; needs CONFIG_RD_ZSTD (Linux 5.9+).</summary>
        Zstd,
    }

    /// <summary>Chooses and opens compressors for the archive.</summary>
    public static class Compressors
    {
        /// <summary>The compression a file name implies (<c>.gz</c>, <c>.zst</c>), or None.</summary>
        public static InitramfsCompression FromFileName(string path)
        {
            string lower = path.ToLowerInvariant();
            if (lower.EndsWith(".gz", StringComparison.Ordinal) || lower.EndsWith(".gzip", StringComparison.Ordinal) || lower.EndsWith(".tgz", StringComparison.Ordinal))
            {
                return InitramfsCompression.Gzip;
            }
            if (lower.EndsWith(".zst", StringComparison.Ordinal) || lower.EndsWith(".zstd", StringComparison.Ordinal))
            {
                return InitramfsCompression.Zstd;
            }
            return InitramfsCompression.None;
        }

        /// <summary>The level used when none is given: gzip 6, zstd 3 (zstd's own default).</summary>
        public static int DefaultLevel(InitramfsCompression compression) => compression switch
        {
            InitramfsCompression.Gzip => 6,
            InitramfsCompression.Zstd => 3,
            _ => 0,
        };

        /// <summary>Checks a level against the compression's range (gzip 0–9, zstd 1–19).</summary>
        public static void CheckLevel(InitramfsCompression compression, int level)
        {
            (int min, int max) = compression switch
            {
                InitramfsCompression.Gzip => (0, 9),
                InitramfsCompression.Zstd => (1, 19),
                _ => (0, 0),
            };
            if (level < min || level > max)
            {
                throw new InitramfsException("CompressionLevelInvalid", FailureKind.InvalidArgument,
                    compression == InitramfsCompression.None
                        ? "-CompressionLevel does not apply to an uncompressed archive."
                        : $"{compression} levels run from {min} to {max}; {level} is outside.", level);
            }
        }

        /// <summary>
        /// Opens a compressing stream over <paramref name="output"/>. gzip goes through .NET's zlib
        /// with a header normalised to no time and OS byte 3 (Unix), so the bytes do not depend on
        /// the machine; zstd uses one worker per core (the output for a given worker count is fixed)
        /// and a content checksum the kernel verifies.
        /// </summary>
        public static Stream Open(Stream output, InitramfsCompression compression, int level, int workers)
        {
            switch (compression)
            {
                case InitramfsCompression.Gzip:
                    // net8.0 exposes levels only as an enum; map 0–9 onto it (zlib: 0, 1, 6, 9).
                    var dotnetLevel = level switch
                    {
                        0 => CompressionLevel.NoCompression,
                        <= 3 => CompressionLevel.Fastest,
                        <= 7 => CompressionLevel.Optimal,
                        _ => CompressionLevel.SmallestSize,
                    };
                    return new GZipStream(new GzipHeaderNormalizer(output), dotnetLevel, leaveOpen: false);
                case InitramfsCompression.Zstd:
                    var zstd = new ZstdSharp.CompressionStream(output, level, 1 << 20, leaveOpen: true);
                    zstd.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_checksumFlag, 1);
                    if (workers > 1)
                    {
                        zstd.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_nbWorkers, workers);
                    }
                    return zstd;
                default:
                    return new NonClosingStream(output);
            }
        }
    }

    /// <summary>
    /// Passes gzip output through, rewriting the header's MTIME to 0 and OS byte to 3, which zlib
    /// otherwise sets per platform: the same input then gives the same bytes everywhere.
    /// Does not close the stream below it.
    /// </summary>
    internal sealed class GzipHeaderNormalizer : WriteOnlyStream
    {
        private readonly Stream inner;
        private long position;

        public GzipHeaderNormalizer(Stream inner) => this.inner = inner;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (position < 10 && buffer.Length > 0)
            {
                byte[] copy = buffer.ToArray();
                for (long i = position; i < 10 && i - position < copy.Length; i++)
                {
                    int at = (int)(i - position);
                    if (i is >= 4 and <= 7)
                    {
                        copy[at] = 0;
                    }
                    else if (i == 9)
                    {
                        copy[at] = 3;
                    }
                }
                inner.Write(copy);
            }
            else
            {
                inner.Write(buffer);
            }
            position += buffer.Length;
        }

        public override void Flush() => inner.Flush();
    }

    /// <summary>A pass-through that leaves the stream below open when disposed.</summary>
    internal sealed class NonClosingStream : WriteOnlyStream
    {
        private readonly Stream inner;

        public NonClosingStream(Stream inner) => this.inner = inner;

        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

        public override void Flush() => inner.Flush();
    }
}
