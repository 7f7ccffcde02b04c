using System;
using System.IO;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// Decompresses one compressed part of an initramfs (one gzip member or one zstd frame, as the
    /// kernel's decompressors take one per call) and says exactly how many input bytes it used, so
    /// the next part can be read from the byte after it.
    /// </summary>
    /// <remarks>
    /// Why not System.IO.Compression.GZipStream: it reads ahead into its own buffer, silently stops
    /// (or runs on into the next member) at the end of a member, and does not say how many input
    /// bytes it consumed. Instead:
    /// <list type="bullet">
    /// <item>gzip: the member header (RFC 1952) is parsed here, the raw deflate data is inflated with
    /// SharpCompress's managed <c>DeflateStream</c>, whose <c>TotalIn</c> is the exact number of
    /// bytes the inflater used (it may read further into its buffer, but we read by position, so
    /// that costs nothing), and the 8-byte trailer after it is checked (CRC-32 and ISIZE).</item>
    /// <item>zstd: the end of the frame is found by walking its block headers (RFC 8878: a frame
    /// header, 3-byte block headers whose sizes are explicit, an optional checksum), which needs no
    /// decoding; ZstdSharp then decodes exactly that byte range, with checkEndOfStream, so neither
    /// a truncated frame nor a following part can be mistaken for frame data.</item>
    /// </list>
    /// Input is read by position from a file handle; output goes to a sink (the cache), never memory.
    /// </remarks>
    internal static class PartDecompressor
    {
        /// <summary>Names of the compressions the kernel knows (lib/decompress.c), found at <paramref name="data"/>'s start; null if none.</summary>
        public static string? Identify(ReadOnlySpan<byte> data)
        {
            if (data.StartsWith(new byte[] { 0x1F, 0x8B }) || data.StartsWith(new byte[] { 0x1F, 0x9E }))
            {
                return "gzip";
            }
            if (data.StartsWith(new byte[] { 0x28, 0xB5, 0x2F, 0xFD }))
            {
                return "zstd";
            }
            if (data.StartsWith("BZh"u8))
            {
                return "bzip2";
            }
            if (data.StartsWith(new byte[] { 0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00 }))
            {
                return "xz";
            }
            if (data.StartsWith(new byte[] { 0x5D, 0x00, 0x00 }))
            {
                return "lzma";
            }
            if (data.StartsWith(new byte[] { 0x89, 0x4C, 0x5A, 0x4F }))
            {
                return "lzo";
            }
            if (data.StartsWith(new byte[] { 0x02, 0x21, 0x4C, 0x18 }))
            {
                return "lz4";
            }
            return null;
        }

        /// <summary>
        /// Decompresses the part at <paramref name="offset"/> of the file into <paramref name="sink"/>
        /// (at most <paramref name="maxOutput"/> bytes) and returns the number of input bytes it spans.
        /// </summary>
        public static long Decompress(SafeFileHandle input, long fileLength, long offset, string compression, Stream sink,
            long maxOutput, string where, CancellationToken cancellationToken)
        {
            return compression switch
            {
                "gzip" => Gzip(input, fileLength, offset, sink, maxOutput, where, cancellationToken),
                "zstd" => Zstd(input, fileLength, offset, sink, maxOutput, where, cancellationToken),
                _ => throw new InitramfsException("ArchiveCompressionUnsupported", FailureKind.NotImplemented,
                    $"{where} is {compression}-compressed; only gzip and zstd parts can be imported.", where),
            };
        }

        private static long Gzip(SafeFileHandle input, long fileLength, long offset, Stream sink, long maxOutput, string where, CancellationToken cancellationToken)
        {
            var header = new PositionalReader(input, offset, fileLength);
            if (header.Byte() != 0x1F || header.Byte() != 0x8B)
            {
                throw Invalid(where, "the old 'pack' gzip format (1f 9e) is not supported");
            }
            if (header.Byte() != 8)
            {
                throw Invalid(where, "the gzip compression method is not deflate");
            }
            int flags = header.Byte();
            if ((flags & 0xE0) != 0)
            {
                throw Invalid(where, "the gzip header has reserved flags set");
            }
            header.Skip(6); // MTIME, XFL, OS
            if ((flags & 0x04) != 0)
            {
                int xlen = header.Byte() | (header.Byte() << 8);
                header.Skip(xlen);
            }
            if ((flags & 0x08) != 0)
            {
                header.SkipString();
            }
            if ((flags & 0x10) != 0)
            {
                header.SkipString();
            }
            if ((flags & 0x02) != 0)
            {
                header.Skip(2);
            }
            long deflateStart = header.Position;

            var crc = new Crc32();
            long produced = 0;
            long used;
            var raw = new RangeReadStream(input, deflateStart, fileLength);
            try
            {
                using var inflater = new SharpCompress.Compressors.Deflate.DeflateStream(raw, SharpCompress.Compressors.CompressionMode.Decompress,
                    SharpCompress.Compressors.Deflate.CompressionLevel.Default, true, System.Text.Encoding.UTF8);
                var buffer = new byte[1 << 17];
                int n;
                while ((n = inflater.Read(buffer, 0, buffer.Length)) > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    produced += n;
                    if (produced > maxOutput)
                    {
                        throw TooLarge(where, maxOutput);
                    }
                    crc.Append(buffer.AsSpan(0, n));
                    sink.Write(buffer, 0, n);
                }
                used = inflater.TotalIn;
            }
            catch (Exception ex) when (ex is SharpCompress.Compressors.Deflate.ZlibException or InvalidDataException or IndexOutOfRangeException or ArgumentException)
            {
                throw new InitramfsException("ArchiveCorrupt", FailureKind.InvalidData, $"{where}: the gzip data is corrupt: {ex.Message}", where, ex);
            }
            long trailer = deflateStart + used;
            if (trailer + 8 > fileLength)
            {
                throw new InitramfsException("ArchiveTruncated", FailureKind.InvalidData,
                    $"{where}: the gzip data ends before its end marker (the file is truncated).", where);
            }
            var tail = new PositionalReader(input, trailer, fileLength);
            uint storedCrc = tail.UInt32();
            uint storedSize = tail.UInt32();
            if (storedCrc != crc.Value || storedSize != (uint)produced)
            {
                throw new InitramfsException("ArchiveCorrupt", FailureKind.InvalidData,
                    $"{where}: the gzip data does not match its CRC-32 and length (damaged, or truncated and followed by other data).", where);
            }
            return trailer + 8 - offset;
        }

        private static long Zstd(SafeFileHandle input, long fileLength, long offset, Stream sink, long maxOutput, string where, CancellationToken cancellationToken)
        {
            long end = ZstdFrameEnd(input, fileLength, offset, where, cancellationToken);
            long produced = 0;
            try
            {
                using var decoder = new ZstdSharp.DecompressionStream(new RangeReadStream(input, offset, end), 1 << 17, checkEndOfStream: true, leaveOpen: false);
                var buffer = new byte[1 << 17];
                int n;
                while ((n = decoder.Read(buffer, 0, buffer.Length)) > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    produced += n;
                    if (produced > maxOutput)
                    {
                        throw TooLarge(where, maxOutput);
                    }
                    sink.Write(buffer, 0, n);
                }
            }
            catch (Exception ex) when (ex is ZstdSharp.ZstdException or EndOfStreamException or InvalidDataException)
            {
                throw new InitramfsException("ArchiveCorrupt", FailureKind.InvalidData, $"{where}: the zstd data is corrupt: {ex.Message}", where, ex);
            }
            return end - offset;
        }

        /// <summary>Finds where the zstd frame at <paramref name="offset"/> ends by walking its headers (RFC 8878 §3.1.1).</summary>
        internal static long ZstdFrameEnd(SafeFileHandle input, long fileLength, long offset, string where, CancellationToken cancellationToken)
        {
            var r = new PositionalReader(input, offset, fileLength, truncatedMessage: "the zstd frame is truncated");
            r.Skip(4); // magic, checked by the caller
            int descriptor = r.Byte();
            int fcsFlag = descriptor >> 6;
            bool singleSegment = (descriptor & 0x20) != 0;
            bool checksum = (descriptor & 0x04) != 0;
            if ((descriptor & 0x08) != 0)
            {
                throw Invalid(where, "the zstd frame header has its reserved bit set");
            }
            int skip = (singleSegment ? 0 : 1) + (descriptor & 3) switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 }
                + fcsFlag switch { 0 => singleSegment ? 1 : 0, 1 => 2, 2 => 4, _ => 8 };
            r.Skip(skip);
            long blocks = 0;
            while (true)
            {
                if ((++blocks & 4095) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                int blockHeader = r.Byte() | (r.Byte() << 8) | (r.Byte() << 16);
                bool last = (blockHeader & 1) != 0;
                int type = (blockHeader >> 1) & 3;
                int size = blockHeader >> 3;
                if (type == 3)
                {
                    throw Invalid(where, "a zstd block has the reserved type");
                }
                if (size > 128 * 1024)
                {
                    throw Invalid(where, "a zstd block is larger than 128 KiB");
                }
                r.Skip(type == 1 ? 1 : size);
                if (last)
                {
                    break;
                }
            }
            if (checksum)
            {
                r.Skip(4);
            }
            return r.Position;
        }

        private static InitramfsException Invalid(string where, string what) =>
            new("ArchiveInvalid", FailureKind.InvalidData, $"{where}: {what}.", where);

        private static InitramfsException TooLarge(string where, long max) =>
            new("ArchiveTooLarge", FailureKind.LimitExceeded,
                $"{where} expands past {max} bytes (a decompression bomb?); raise -MaxSize if it is genuine.", where);

        /// <summary>
        /// Reads small fields by position, failing with ArchiveTruncated past the end. Reads go through a
        /// buffer of its own: walking a zstd frame reads a 3-byte header per block, and a pread for each
        /// byte took 26 s for a part of 2 million empty blocks.
        /// </summary>
        private sealed class PositionalReader
        {
            private const int BufferSize = 64 * 1024;
            private readonly SafeFileHandle handle;
            private readonly long end;
            private readonly string truncatedMessage;
            private readonly byte[] buffer = new byte[BufferSize];
            private long bufferStart;
            private int bufferLength;

            public PositionalReader(SafeFileHandle handle, long start, long end, string truncatedMessage = "the compressed part is truncated")
            {
                this.handle = handle;
                Position = start;
                this.end = end;
                this.truncatedMessage = truncatedMessage;
            }

            public long Position { get; private set; }

            public int Byte()
            {
                if (Position >= end)
                {
                    throw Truncated();
                }
                if (Position < bufferStart || Position >= bufferStart + bufferLength)
                {
                    Fill();
                }
                return buffer[(int)(Position++ - bufferStart)];
            }

            public uint UInt32() => (uint)(Byte() | (Byte() << 8) | (Byte() << 16) | (Byte() << 24));

            public void Skip(long count)
            {
                if (count > end - Position)
                {
                    throw Truncated();
                }
                Position += count;
            }

            public void SkipString()
            {
                // Bounded by the file; a name or comment of a gzip header is rarely long.
                while (Byte() != 0)
                {
                }
            }

            private void Fill()
            {
                int want = (int)Math.Min(BufferSize, end - Position);
                int n = RandomAccess.Read(handle, buffer.AsSpan(0, want), Position);
                if (n <= 0)
                {
                    throw Truncated();
                }
                bufferStart = Position;
                bufferLength = n;
            }

            private InitramfsException Truncated() =>
                new("ArchiveTruncated", FailureKind.InvalidData, $"At offset {Position}: {truncatedMessage}.", Position);
        }
    }

    /// <summary>A read-only stream over a byte range of a file, read by position (no shared seek state).</summary>
    internal sealed class RangeReadStream : ReadOnlyStream
    {
        private readonly SafeFileHandle handle;
        private readonly long end;
        private long position;

        public RangeReadStream(SafeFileHandle handle, long start, long end)
        {
            this.handle = handle;
            position = start;
            this.end = end;
        }

        public override int Read(Span<byte> buffer)
        {
            int want = (int)Math.Min(buffer.Length, end - position);
            if (want <= 0)
            {
                return 0;
            }
            int n = RandomAccess.Read(handle, buffer[..want], position);
            position += n;
            return n;
        }

        public override long Position { get => position; set => throw new NotSupportedException(); }
    }

    /// <summary>CRC-32 (IEEE 802.3, as gzip's trailer uses), table-driven.</summary>
    internal sealed class Crc32
    {
        private static readonly uint[] Table = BuildTable();
        private uint crc = 0xFFFFFFFF;

        public uint Value => ~crc;

        public void Append(ReadOnlySpan<byte> data)
        {
            uint c = crc;
            foreach (byte b in data)
            {
                c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
            }
            crc = c;
        }

        private static uint[] BuildTable()
        {
            var table = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++)
                {
                    c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
                }
                table[n] = c;
            }
            return table;
        }
    }
}
