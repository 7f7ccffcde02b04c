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
    internal static class Compressors
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

        /// <summary>
        /// A warning when <paramref name="compression"/> contradicts what the name of
        /// <paramref name="path"/> says (<c>.cpio</c>, <c>.gz</c>, <c>.zst</c>): a boot loader, a
        /// person or a tool that goes by the name would misread the file. Null when they agree or the
        /// name says nothing (<c>initrd.img</c>).
        /// </summary>
        public static string? NameMismatch(string path, InitramfsCompression compression)
        {
            var named = FromFileName(path);
            bool says = named != InitramfsCompression.None || path.EndsWith(".cpio", StringComparison.OrdinalIgnoreCase);
            if (!says || named == compression)
            {
                return null;
            }
            return $"-Compression {compression} writes {Describe(compression)} into '{Path.GetFileName(path)}', whose name says {Describe(named)}; " +
                "a tool or a person going by the name will misread it. Name the file for its compression, or leave -Compression out.";
        }

        private static string Describe(InitramfsCompression compression) => compression switch
        {
            InitramfsCompression.Gzip => "gzip",
            InitramfsCompression.Zstd => "zstd",
            _ => "an uncompressed cpio archive",
        };

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
        /// The .NET level for a gzip level. net8.0 exposes zlib's levels only as an enum, so 0–9
        /// map onto it as zlib's own: 0 stored, 1–3 fastest (zlib 1), 4–7 optimal (zlib 6),
        /// 8–9 smallest (zlib 9).
        /// </summary>
        public static CompressionLevel GzipLevel(int level) => level switch
        {
            0 => CompressionLevel.NoCompression,
            <= 3 => CompressionLevel.Fastest,
            <= 7 => CompressionLevel.Optimal,
            _ => CompressionLevel.SmallestSize,
        };
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
}
