using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Threading;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.Artifacts
{
    /// <summary>One part of an archive as a layer: its byte range, media type and digest.</summary>
    internal sealed record ArchiveSlice(long Offset, long Length, string MediaType, Digest Digest);

    /// <summary>An archive cut into its parts, with the digest of the whole.</summary>
    internal sealed record SplitArchive(string Path, string Compression, IReadOnlyList<ArchiveSlice> Parts, long Size, Digest Digest);

    /// <summary>
    /// Cuts an archive file into its independently compressed parts, so that each is a layer and
    /// two archives that share parts share layers in a registry:
    /// <list type="bullet">
    /// <item>zstd: frame by frame, found by walking the frame and block headers
    /// (<see cref="PartDecompressor.ZstdFrameEnd"/>), without decompressing; a skippable frame
    /// (magic 0x184D2A5?) is a part of its own.</item>
    /// <item>gzip: member by member. A member's end is known only by inflating it; that is
    /// <see cref="PartDecompressor"/>'s gzip reader (SharpCompress's DeflateStream, whose TotalIn
    /// is the exact count of bytes used; .NET's DeflateStream reads ahead and does not say), with
    /// its CRC-32 and length checked, into nothing.</item>
    /// <item>uncompressed: one part.</item>
    /// </list>
    /// NUL bytes between parts (the kernel skips them) belong to the part before them, so the
    /// parts joined are the file, byte for byte. A file that mixes compressions, or holds
    /// anything else between parts, is refused: it is not an archive this module writes.
    /// </summary>
    internal static class ArchiveSplitter
    {
        /// <summary>The most parts an artifact may have: each is a layer, and the manifest (at most 4 MiB) lists them.</summary>
        public const int MaxParts = 4096;

        /// <summary>The most one gzip part may inflate to while its end is looked for.</summary>
        public const long MaxPartExpansion = 16L << 30;

        private const uint ZstdMagic = 0xFD2FB528;

        public static SplitArchive Split(string path, CancellationToken cancellationToken)
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = RandomAccess.GetLength(handle);
            if (length == 0)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"'{path}' is empty, not an initramfs archive.", path);
            }
            var head = new byte[8];
            int got = RandomAccess.Read(handle, head, 0);
            string? compression = got >= 4 && (BitConverter.ToUInt32(head) & 0xFFFFFFF0) == 0x184D2A50 ? "zstd" : PartDecompressor.Identify(head.AsSpan(0, got));
            var ranges = new List<(long Offset, long Length, string MediaType)>();
            if (compression is null && head.AsSpan(0, got).StartsWith("07070"u8))
            {
                ranges.Add((0, length, ArtifactMediaTypes.PartCpio));
                compression = "none";
            }
            else if (compression is "zstd" or "gzip")
            {
                Walk(handle, length, path, compression, ranges, cancellationToken);
            }
            else
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData,
                    compression is null
                        ? $"'{path}' is not an initramfs archive (neither cpio newc, gzip nor zstd)."
                        : $"'{path}' is {compression}-compressed; an artifact's parts are gzip, zstd or uncompressed cpio.", path);
            }
            return Hash(handle, path, compression, ranges, length, cancellationToken);
        }

        private static void Walk(SafeFileHandle handle, long length, string path, string compression, List<(long, long, string)> ranges, CancellationToken cancellationToken)
        {
            string mediaType = compression == "zstd" ? ArtifactMediaTypes.PartZstd : ArtifactMediaTypes.PartGzip;
            var magic = new byte[4];
            long offset = 0;
            while (offset < length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string where = $"'{path}' at byte {offset}";
                int got = RandomAccess.Read(handle, magic, offset);
                long end;
                if (got >= 4 && compression == "zstd" && BitConverter.ToUInt32(magic) == ZstdMagic)
                {
                    end = PartDecompressor.ZstdFrameEnd(handle, length, offset, where, cancellationToken);
                }
                else if (got >= 4 && compression == "zstd" && (BitConverter.ToUInt32(magic) & 0xFFFFFFF0) == 0x184D2A50)
                {
                    end = SkippableFrameEnd(handle, length, offset, where);
                }
                else if (got >= 2 && compression == "gzip" && magic[0] == 0x1F && magic[1] == 0x8B)
                {
                    end = offset + PartDecompressor.Decompress(handle, length, offset, "gzip", Stream.Null, MaxPartExpansion, where, cancellationToken);
                }
                else if (ranges.Count > 0 && ZerosTo(handle, length, offset) is { } zerosEnd)
                {
                    // Padding the kernel skips: kept with the part before it.
                    var (o, l, m) = ranges[^1];
                    ranges[^1] = (o, l + (zerosEnd - offset), m);
                    offset = zerosEnd;
                    continue;
                }
                else
                {
                    throw new InitramfsException("ArchiveCorrupt", FailureKind.InvalidData,
                        $"{where}: expected a {compression} part (or NUL padding) and found something else; the archive is damaged or mixes compressions.", path);
                }
                if (ranges.Count == MaxParts)
                {
                    throw new InitramfsException("ArtifactTooManyParts", FailureKind.LimitExceeded,
                        $"'{path}' has more than {MaxParts} {compression} parts; an artifact holds at most {MaxParts} layers. Export it again (the module's exports have parts of megabytes).", path);
                }
                ranges.Add((offset, end - offset, mediaType));
                offset = end;
            }
        }

        /// <summary>A skippable frame: the magic, a 32-bit little-endian size, that many bytes.</summary>
        private static long SkippableFrameEnd(SafeFileHandle handle, long length, long offset, string where)
        {
            var size = new byte[4];
            if (RandomAccess.Read(handle, size, offset + 4) < 4 || offset + 8 + BitConverter.ToUInt32(size) > length)
            {
                throw new InitramfsException("ArchiveTruncated", FailureKind.InvalidData, $"{where}: a skippable zstd frame runs past the end of the file.", where);
            }
            return offset + 8 + BitConverter.ToUInt32(size);
        }

        /// <summary>Where a run of NUL bytes from <paramref name="offset"/> ends, if it reaches the next part or the end; null when it does not start with NUL.</summary>
        private static long? ZerosTo(SafeFileHandle handle, long length, long offset)
        {
            var buffer = new byte[4096];
            long at = offset;
            while (at < length)
            {
                int n = RandomAccess.Read(handle, buffer, at);
                int i = buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0);
                if (i >= 0)
                {
                    at += i;
                    break;
                }
                at += n;
            }
            return at == offset ? null : at;
        }

        /// <summary>One pass over the file: the sha256 of each part and of the whole.</summary>
        private static SplitArchive Hash(SafeFileHandle handle, string path, string compression, List<(long Offset, long Length, string MediaType)> ranges, long length, CancellationToken cancellationToken)
        {
            using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 20];
            var parts = new List<ArchiveSlice>(ranges.Count);
            foreach (var (offset, size, mediaType) in ranges)
            {
                using var part = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long done = 0;
                while (done < size)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, size - done)), offset + done);
                    if (n == 0)
                    {
                        throw new InitramfsException("ArchiveTruncated", FailureKind.InvalidData, $"'{path}' became shorter while it was read.", path);
                    }
                    part.AppendData(buffer, 0, n);
                    whole.AppendData(buffer, 0, n);
                    done += n;
                }
                parts.Add(new ArchiveSlice(offset, size, mediaType, Digest.FromSha256(part.GetHashAndReset())));
            }
            return new SplitArchive(path, compression, parts, length, Digest.FromSha256(whole.GetHashAndReset()));
        }
    }
}
