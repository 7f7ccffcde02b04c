using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>One header of a tar stream, after PAX and GNU long-name records are folded in.</summary>
    internal sealed class TarHeader
    {
        /// <summary>The name as written (not normalised).</summary>
        public string Name { get; set; } = string.Empty;

        /// <summary>Link target of a symlink or hardlink.</summary>
        public string LinkName { get; set; } = string.Empty;

        /// <summary>The ustar type flag ('0', '1', '2', '3', '4', '5', '6', '7').</summary>
        public char TypeFlag { get; set; }

        /// <summary>Permission bits (07777).</summary>
        public int Mode { get; set; }

        /// <summary>Owner user id.</summary>
        public long Uid { get; set; }

        /// <summary>Owner group id.</summary>
        public long Gid { get; set; }

        /// <summary>Modification time in Unix seconds.</summary>
        public long MTime { get; set; }

        /// <summary>Size of the entry's data.</summary>
        public long Size { get; set; }

        /// <summary>Device major number.</summary>
        public int DevMajor { get; set; }

        /// <summary>Device minor number.</summary>
        public int DevMinor { get; set; }

        /// <summary>Offset of the entry's data in the (decompressed) tar stream.</summary>
        public long DataOffset { get; set; }
    }

    /// <summary>
    /// A streaming tar reader of our own. We do not use SharpCompress here because its tar reader
    /// does not expose entry types or device numbers (hardlinks read as symlinks, character devices
    /// as empty files), and not System.Formats.Tar because it throws on tars that end without the
    /// two zero blocks, which umoci and other layer writers produce. This one keeps every type,
    /// owner, mode and device number, reads ustar, GNU and PAX headers, validates checksums, and
    /// treats a clean end of stream at a header boundary as the end of the archive.
    /// Data is skipped, never buffered: callers that need the bytes wrap the stream (hash, tee).
    /// </summary>
    internal sealed class TarReader
    {
        private const int Block = 512;
        private const int MaxMetaSize = 1 << 20;
        private static readonly UTF8Encoding StrictUtf8 = new(false, true);

        private readonly Stream stream;
        private readonly byte[] header = new byte[Block];
        private readonly byte[] scratch = new byte[64 * 1024];
        private readonly Dictionary<string, string> globalPax = new(StringComparer.Ordinal);
        private readonly bool seekData;
        private readonly CancellationToken cancellationToken;
        private bool ended;

        /// <summary>Reads tar headers from <paramref name="stream"/>, which need not be seekable.</summary>
        public TarReader(Stream stream) => this.stream = stream;

        /// <summary>
        /// Reads tar headers from a seekable <paramref name="stream"/>, seeking past each entry's data
        /// instead of reading it: a scan of the headers of a large archive then reads little.
        /// </summary>
        internal TarReader(Stream stream, bool seekData, CancellationToken cancellationToken = default)
            : this(stream)
        {
            this.seekData = seekData && stream.CanSeek;
            this.cancellationToken = cancellationToken;
        }

        /// <summary>
        /// Hands every header of the tar in <paramref name="stream"/> to <paramref name="onEntry"/>,
        /// checking for Ctrl+C and calling <paramref name="progress"/> every 1024 entries.
        /// </summary>
        public static void ReadAll(Stream stream, Action<TarHeader> onEntry, Action? progress, CancellationToken cancellationToken)
        {
            var reader = new TarReader(stream);
            long entries = 0;
            TarHeader? header;
            while ((header = reader.Next()) is not null)
            {
                if ((++entries & 1023) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Invoke();
                }
                onEntry(header);
            }
        }

        /// <summary>Bytes consumed so far.</summary>
        public long Position { get; private set; }

        /// <summary>
        /// The next entry, with its data skipped; null at the end of the archive (two zero blocks,
        /// one zero block, or the end of the stream at a header boundary).
        /// </summary>
        public TarHeader? Next() => Next(null);

        /// <summary>
        /// The next entry, as <see cref="Next()"/>; <paramref name="beforeData"/> sees each entry before its
        /// data is skipped, with a stream of that data (exactly its size), which it may read from or
        /// not: what it leaves is skipped. It may also refuse the entry by throwing, before any of a
        /// large entry's data is read.
        /// </summary>
        internal TarHeader? Next(Action<TarHeader, Stream>? beforeData)
        {
            if (ended)
            {
                return null;
            }
            string? longName = null;
            string? longLink = null;
            Dictionary<string, string>? pax = null;
            while (true)
            {
                long headerOffset = Position;
                int got = ReadFull(header, 0, Block);
                if (got == 0)
                {
                    if (longName is not null || longLink is not null || pax is not null)
                    {
                        throw Corrupt("the stream ended after an extended header, before its entry", headerOffset);
                    }
                    ended = true;
                    return null;
                }
                if (got < Block)
                {
                    throw Corrupt("the stream ended inside a header", headerOffset);
                }
                if (IsZero(header))
                {
                    if (longName is not null || longLink is not null || pax is not null)
                    {
                        throw Corrupt("the archive ended after an extended header, before its entry", headerOffset);
                    }
                    ended = true;
                    return null;
                }
                VerifyChecksum(headerOffset);

                char type = (char)header[156];
                long size = ParseNumber(124, 12, "size", headerOffset);
                bool isGnu = header[257] == 'u' && header[262] == ' ';
                if (size < 0)
                {
                    throw Corrupt("a negative size", headerOffset);
                }

                switch (type)
                {
                    case 'x':
                        pax ??= new Dictionary<string, string>(StringComparer.Ordinal);
                        ParsePax(ReadMeta(size, headerOffset), pax, headerOffset);
                        continue;
                    case 'g':
                        ParsePax(ReadMeta(size, headerOffset), globalPax, headerOffset);
                        continue;
                    case 'L':
                        longName = DecodeName(TrimNul(ReadMeta(size, headerOffset)), headerOffset);
                        continue;
                    case 'K':
                        longLink = DecodeName(TrimNul(ReadMeta(size, headerOffset)), headerOffset);
                        continue;
                }

                var entry = new TarHeader
                {
                    TypeFlag = type,
                    Mode = (int)(ParseNumber(100, 8, "mode", headerOffset) & 0xFFF),
                    Uid = ParseNumber(108, 8, "uid", headerOffset),
                    Gid = ParseNumber(116, 8, "gid", headerOffset),
                    Size = size,
                    MTime = ParseNumber(136, 12, "mtime", headerOffset),
                    DevMajor = (int)Math.Clamp(ParseNumber(329, 8, "devmajor", headerOffset), 0, int.MaxValue),
                    DevMinor = (int)Math.Clamp(ParseNumber(337, 8, "devminor", headerOffset), 0, int.MaxValue),
                    LinkName = DecodeName(Field(157, 100), headerOffset),
                };
                string name = DecodeName(Field(0, 100), headerOffset);
                bool isUstar = header[257] == 'u' && header[258] == 's' && header[259] == 't' && header[260] == 'a' && header[261] == 'r';
                if (isUstar && !isGnu && header[345] != 0)
                {
                    name = DecodeName(Field(345, 155), headerOffset) + "/" + name;
                }
                entry.Name = longName ?? name;
                if (longLink is not null)
                {
                    entry.LinkName = longLink;
                }
                ApplyPax(entry, globalPax, headerOffset);
                if (pax is not null)
                {
                    ApplyPax(entry, pax, headerOffset);
                }
                // Old V7 tars mark directories only by a trailing slash.
                if ((type == '0' || type == '\0') && entry.Name.EndsWith('/'))
                {
                    entry.TypeFlag = '5';
                }
                // Hardlinks, symlinks, devices, fifos and directories have no data, whatever a header says,
                // except that a hardlink's size is skipped as tar writers expect.
                entry.DataOffset = Position;
                long consumed = 0;
                if (beforeData is not null)
                {
                    var data = new EntryData(this, entry.Size, headerOffset);
                    beforeData(entry, data);
                    consumed = data.Consumed;
                }
                Skip(entry.Size, consumed, headerOffset);
                return entry;
            }
        }

        /// <summary>Skips what is left of an entry's <paramref name="size"/> bytes of data (<paramref name="consumed"/> were read) and its padding.</summary>
        private void Skip(long size, long consumed, long headerOffset)
        {
            if (seekData)
            {
                long padded = Padded(size) - consumed;
                long left = stream.Length - stream.Position;
                if (size - consumed > left)
                {
                    throw Corrupt("the stream ended inside an entry's data (a size larger than the layer?)", headerOffset);
                }
                long step = Math.Min(padded, left);
                stream.Seek(step, SeekOrigin.Current);
                Position += step;
                ended = step < padded;
                return;
            }
            long remaining = size - consumed;
            long chunks = 0;
            while (remaining > 0)
            {
                if ((++chunks & 255) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                int want = (int)Math.Min(scratch.Length, remaining);
                if (ReadFull(scratch, 0, want) < want)
                {
                    throw Corrupt("the stream ended inside an entry's data (a size larger than the layer?)", headerOffset);
                }
                remaining -= want;
            }
            // Some writers of end-block-less tars also drop the last entry's padding: that is the end.
            int pad = (int)(Padded(size) - size);
            if (pad > 0 && ReadFull(scratch, 0, pad) < pad)
            {
                ended = true;
            }
        }

        private byte[] ReadMeta(long size, long headerOffset)
        {
            if (size > MaxMetaSize)
            {
                throw Corrupt($"an extended header of {size} bytes (limit {MaxMetaSize})", headerOffset);
            }
            var data = new byte[size];
            if (ReadFull(data, 0, (int)size) < size)
            {
                throw Corrupt("the stream ended inside an extended header", headerOffset);
            }
            int pad = (int)(Padded(size) - size);
            if (pad > 0 && ReadFull(scratch, 0, pad) < pad)
            {
                throw Corrupt("the stream ended inside an extended header", headerOffset);
            }
            return data;
        }

        private static long Padded(long size) => (size + Block - 1) / Block * Block;

        private int ReadFull(byte[] buffer, int offset, int count)
        {
            int total = 0;
            while (total < count)
            {
                int n = stream.Read(buffer, offset + total, count - total);
                if (n <= 0)
                {
                    break;
                }
                total += n;
            }
            Position += total;
            return total;
        }

        private static bool IsZero(byte[] block)
        {
            foreach (byte b in block)
            {
                if (b != 0)
                {
                    return false;
                }
            }
            return true;
        }

        private void VerifyChecksum(long headerOffset)
        {
            long stored = ParseNumber(148, 8, "checksum", headerOffset);
            long unsignedSum = 0, signedSum = 0;
            for (int i = 0; i < Block; i++)
            {
                byte b = (i >= 148 && i < 156) ? (byte)' ' : header[i];
                unsignedSum += b;
                signedSum += (sbyte)b;
            }
            if (stored != unsignedSum && stored != signedSum)
            {
                throw Corrupt("a header checksum error", headerOffset);
            }
        }

        private ReadOnlySpan<byte> Field(int offset, int length) => TrimNul(header.AsSpan(offset, length));

        private static ReadOnlySpan<byte> TrimNul(ReadOnlySpan<byte> span)
        {
            int nul = span.IndexOf((byte)0);
            return nul < 0 ? span : span[..nul];
        }

        private static string DecodeName(ReadOnlySpan<byte> bytes, long headerOffset)
        {
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new InitramfsException("LayerEntryNameInvalid", FailureKind.InvalidData,
                    $"The tar header at offset {headerOffset} has a name that is not valid UTF-8.", headerOffset);
            }
        }

        private long ParseNumber(int offset, int length, string what, long headerOffset)
        {
            var field = header.AsSpan(offset, length);
            if ((field[0] & 0x80) != 0)
            {
                // GNU base-256: big-endian two's complement in the remaining bits.
                if ((field[0] & 0x40) != 0)
                {
                    throw Corrupt($"a negative {what}", headerOffset);
                }
                long value = field[0] & 0x3F;
                for (int i = 1; i < field.Length; i++)
                {
                    if (value > (long.MaxValue >> 8))
                    {
                        throw Corrupt($"a {what} too large", headerOffset);
                    }
                    value = (value << 8) | field[i];
                }
                return value;
            }
            long result = 0;
            int k = 0;
            while (k < field.Length && (field[k] == ' ' || field[k] == 0))
            {
                k++;
            }
            for (; k < field.Length; k++)
            {
                byte c = field[k];
                if (c == 0 || c == ' ')
                {
                    break;
                }
                if (c < '0' || c > '7' || result > (long.MaxValue >> 3))
                {
                    throw Corrupt($"an invalid {what} field", headerOffset);
                }
                result = (result << 3) | (long)(c - '0');
            }
            return result;
        }

        private static void ParsePax(byte[] data, Dictionary<string, string> into, long headerOffset)
        {
            int pos = 0;
            while (pos < data.Length)
            {
                int space = Array.IndexOf(data, (byte)' ', pos);
                if (space < 0 || !int.TryParse(Encoding.ASCII.GetString(data, pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out int length)
                    || length <= space - pos || pos + length > data.Length || data[pos + length - 1] != '\n')
                {
                    throw new InitramfsException("LayerTarCorrupt", FailureKind.InvalidData,
                        $"The tar has a malformed PAX record at offset {headerOffset}.", headerOffset);
                }
                var record = data.AsSpan(space + 1, pos + length - space - 2);
                int eq = record.IndexOf((byte)'=');
                if (eq <= 0)
                {
                    throw new InitramfsException("LayerTarCorrupt", FailureKind.InvalidData,
                        $"The tar has a malformed PAX record at offset {headerOffset}.", headerOffset);
                }
                string key = Encoding.UTF8.GetString(record[..eq]);
                string value = DecodeName(record[(eq + 1)..], headerOffset);
                if (value.Length == 0)
                {
                    into.Remove(key);
                }
                else
                {
                    into[key] = value;
                }
                pos += length;
            }
        }

        private static void ApplyPax(TarHeader entry, Dictionary<string, string> pax, long headerOffset)
        {
            foreach (var (key, value) in pax)
            {
                switch (key)
                {
                    case "path":
                        entry.Name = value;
                        break;
                    case "linkpath":
                        entry.LinkName = value;
                        break;
                    case "size":
                        entry.Size = PaxInteger(value, key, headerOffset);
                        break;
                    case "uid":
                        entry.Uid = PaxInteger(value, key, headerOffset);
                        break;
                    case "gid":
                        entry.Gid = PaxInteger(value, key, headerOffset);
                        break;
                    case "mtime":
                        int dot = value.IndexOf('.', StringComparison.Ordinal);
                        string whole = dot < 0 ? value : value[..dot];
                        entry.MTime = long.TryParse(whole, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long t) ? t : entry.MTime;
                        break;
                    default:
                        if (key.StartsWith("GNU.sparse.", StringComparison.Ordinal))
                        {
                            throw new InitramfsException("LayerSparseUnsupported", FailureKind.NotImplemented,
                                $"The tar entry at offset {headerOffset} is a sparse file, which layers do not use and this reader does not support.", headerOffset);
                        }
                        break;
                }
            }
        }

        private static long PaxInteger(string value, string key, long headerOffset)
        {
            if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
            {
                throw new InitramfsException("LayerTarCorrupt", FailureKind.InvalidData,
                    $"The tar has an invalid PAX {key} '{RootfsPath.Printable(value)}' at offset {headerOffset}.", headerOffset);
            }
            return n;
        }

        private static InitramfsException Corrupt(string what, long headerOffset) =>
            new("LayerTarCorrupt", FailureKind.InvalidData, $"The layer tar is corrupt: {what} at offset {headerOffset}.", headerOffset);

        /// <summary>The data of the entry <see cref="Next(Action{TarHeader, Stream})"/> is at, read through the reader so its position stays right.</summary>
        private sealed class EntryData : InitramfsPS.IO.ReadOnlyStream
        {
            private readonly TarReader owner;
            private readonly long size;
            private readonly long headerOffset;

            public EntryData(TarReader owner, long size, long headerOffset)
            {
                this.owner = owner;
                this.size = size;
                this.headerOffset = headerOffset;
            }

            public long Consumed { get; private set; }

            public override int Read(Span<byte> buffer)
            {
                int want = (int)Math.Min(buffer.Length, size - Consumed);
                if (want <= 0)
                {
                    return 0;
                }
                int n = owner.stream.Read(buffer[..want]);
                if (n <= 0)
                {
                    throw Corrupt("the stream ended inside an entry's data", headerOffset);
                }
                owner.Position += n;
                Consumed += n;
                return n;
            }
        }
    }
}
