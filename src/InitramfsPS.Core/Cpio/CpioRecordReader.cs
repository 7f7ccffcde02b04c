using System;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Cpio
{
    /// <summary>Bytes a <see cref="CpioRecordReader"/> reads by position: an archive file, a decompressed part, a buffer.</summary>
    internal interface ICpioSource
    {
        /// <summary>Bytes in the source.</summary>
        long Length { get; }

        /// <summary>Reads up to <paramref name="buffer"/>'s length at <paramref name="position"/>; fewer only at the end.</summary>
        int ReadAt(long position, Span<byte> buffer);
    }

    /// <summary>
    /// One record as read (u-root's Record): its header, its name, and where its data lies in the
    /// source (a range, not a copy: a file's bytes are read only when wanted).
    /// </summary>
    internal readonly record struct CpioRecord
    {
        /// <summary>The header's fields.</summary>
        public required CpioHeader Header { get; init; }

        /// <summary>
        /// The name's bytes before its first NUL; null when the name size is 0 or more than
        /// <see cref="NewcCodec.MaxNameSize"/>, a record the kernel skips without reading its name.
        /// </summary>
        public required byte[]? Name { get; init; }

        /// <summary>The name size of the header, its NUL counted.</summary>
        public uint NameSize { get; init; }

        /// <summary>Offset of the header in the source.</summary>
        public long Offset { get; init; }

        /// <summary>Offset of the data in the source; <see cref="CpioHeader.FileSize"/> bytes long.</summary>
        public long DataOffset { get; init; }

        /// <summary>Whether this is a TRAILER!!! record.</summary>
        public bool IsTrailer => Name is { } name && name.AsSpan().SequenceEqual(NewcCodec.TrailerName);
    }

    /// <summary>
    /// Reads newc records one by one from a source (u-root's RecordReader), as the kernel's
    /// unpack_to_rootfs reads one run of them: each header at a 4-byte aligned offset, NUL bytes
    /// allowed between records, 070701 or 070702 (whose regular files' data is checked against the
    /// header's sum). The run ends at the end of the source or at the first non-NUL byte that cannot
    /// start a header: there a compressed part or junk may follow, which is the caller's to judge.
    /// Names are handed over as bytes; what an entry means for a rootfs is the importer's business.
    /// Malformed input raises ArchiveInvalid, ArchiveTruncated or ArchiveChecksumMismatch.
    /// </summary>
    internal sealed class CpioRecordReader
    {
        private readonly ICpioSource source;
        private readonly string description;
        private readonly string? target;
        private readonly CancellationToken cancellationToken;
        private readonly byte[] header = new byte[NewcCodec.HeaderSize];
        private readonly byte[] scratch = new byte[1 << 16];

        /// <summary>Reads <paramref name="source"/> from <paramref name="position"/>.</summary>
        /// <param name="source">The bytes.</param>
        /// <param name="position">Where the first header (or NUL padding before it) is.</param>
        /// <param name="description">The source in messages ("offset 12 of {description}").</param>
        /// <param name="target">The target object of the errors raised (the archive's path).</param>
        /// <param name="cancellationToken">Checked while skipping padding and summing data.</param>
        public CpioRecordReader(ICpioSource source, long position, string description, string? target, CancellationToken cancellationToken)
        {
            this.source = source;
            Position = position;
            this.description = description;
            this.target = target;
            this.cancellationToken = cancellationToken;
        }

        /// <summary>Reads a seekable stream from its start.</summary>
        public CpioRecordReader(Stream stream, string description)
            : this(new StreamSource(stream), 0, description, null, CancellationToken.None)
        {
        }

        /// <summary>Where the next record is looked for; after <see cref="TryReadRecord"/> returned false, where the run ended.</summary>
        public long Position { get; private set; }

        /// <summary>Where an offset is, for messages.</summary>
        public string Where(long offset) => Where(offset, description);

        /// <summary>Where an offset of a source is, for messages.</summary>
        public static string Where(long offset, string description) => string.Create(CultureInfo.InvariantCulture, $"offset {offset} of {description}");

        /// <summary>
        /// Reads the next record, after any NUL padding; false at the end of the source or where a
        /// byte that cannot start a header follows (then <see cref="Position"/> is at that byte).
        /// A TRAILER!!! record is returned like any other: an initramfs goes on after it.
        /// </summary>
        public bool TryReadRecord(out CpioRecord record)
        {
            record = default;
            long pos = SkipZeros(source, Position, scratch, cancellationToken);
            Position = pos;
            if (pos >= source.Length)
            {
                return false;
            }
            if ((pos & 3) != 0)
            {
                throw Invalid(pos, "broken padding: a cpio header at an offset that is not a multiple of 4");
            }
            if (source.ReadAt(pos, header.AsSpan(0, 1)) != 1 || header[0] != (byte)'0')
            {
                return false;
            }
            if (pos + NewcCodec.HeaderSize > source.Length || source.ReadAt(pos, header) != NewcCodec.HeaderSize)
            {
                throw Truncated(pos, "a cpio header is cut short");
            }
            var kind = NewcCodec.Decode(header, out var h, out uint nameSize);
            switch (kind)
            {
                case NewcHeaderKind.Odc:
                    throw Invalid(pos, "an old (odc) cpio header; the kernel reads only newc (cpio -H newc)");
                case NewcHeaderKind.NoMagic:
                    throw Invalid(pos, "no cpio magic (070701)");
                case NewcHeaderKind.NotHexadecimal:
                    throw Invalid(pos, "a cpio header field is not hexadecimal");
            }
            long nameStart = pos + NewcCodec.HeaderSize;
            long dataStart = NewcCodec.Align4(nameStart + nameSize);
            long dataEnd = dataStart + h.FileSize;
            if (nameStart + nameSize > source.Length || dataEnd > source.Length)
            {
                throw Truncated(pos, string.Create(CultureInfo.InvariantCulture,
                    $"an entry's name and data ({nameSize} + {h.FileSize} bytes) run past the end of the data"));
            }
            byte[]? name = null;
            if (nameSize != 0 && nameSize <= NewcCodec.MaxNameSize)
            {
                var nameBytes = new byte[nameSize];
                source.ReadAt(nameStart, nameBytes);
                if (nameBytes[^1] != 0)
                {
                    throw Invalid(pos, "an entry's name is not NUL-terminated (malformed archive)");
                }
                name = nameBytes.AsSpan(0, Array.IndexOf(nameBytes, (byte)0)).ToArray();
            }
            record = new CpioRecord { Header = h, Name = name, NameSize = nameSize, Offset = pos, DataOffset = dataStart };
            if (kind == NewcHeaderKind.NewcWithChecksum && name is not null && !record.IsTrailer
                && (h.Mode & NewcCodec.TypeMask) == NewcCodec.TypeFile && Checksum(dataStart, h.FileSize) != h.Check)
            {
                throw new InitramfsException("ArchiveChecksumMismatch", FailureKind.InvalidData,
                    $"The data of '{RootfsPath.Printable(Encoding.UTF8.GetString(name))}' at {Where(pos)} does not match its 070702 checksum.", target);
            }
            Position = Math.Min(NewcCodec.Align4(dataEnd), source.Length);
            return true;
        }

        /// <summary>A record's data, whole: for small data such as a symlink's target.</summary>
        public byte[] ReadData(in CpioRecord record)
        {
            var data = new byte[record.Header.FileSize];
            if (source.ReadAt(record.DataOffset, data) != data.Length)
            {
                throw Truncated(record.DataOffset, "file data is cut short");
            }
            return data;
        }

        /// <summary>The offset of the first non-NUL byte at or after <paramref name="position"/>, or the source's length.</summary>
        public static long SkipZeros(ICpioSource source, long position, Span<byte> scratch, CancellationToken cancellationToken)
        {
            while (position < source.Length)
            {
                int n = source.ReadAt(position, scratch[..(int)Math.Min(scratch.Length, source.Length - position)]);
                if (n <= 0)
                {
                    return source.Length;
                }
                int i = scratch[..n].IndexOfAnyExcept((byte)0);
                if (i >= 0)
                {
                    return position + i;
                }
                position += n;
                cancellationToken.ThrowIfCancellationRequested();
            }
            return position;
        }

        private uint Checksum(long start, long length)
        {
            uint sum = 0;
            long done = 0;
            while (done < length)
            {
                int n = source.ReadAt(start + done, scratch.AsSpan(0, (int)Math.Min(scratch.Length, length - done)));
                if (n <= 0)
                {
                    throw Truncated(start + done, "file data is cut short");
                }
                foreach (byte b in scratch.AsSpan(0, n))
                {
                    sum += b;
                }
                done += n;
            }
            return sum;
        }

        private InitramfsException Invalid(long pos, string what) =>
            new("ArchiveInvalid", FailureKind.InvalidData, $"At {Where(pos)}: {what}.", target);

        private InitramfsException Truncated(long pos, string what) =>
            new("ArchiveTruncated", FailureKind.InvalidData, $"At {Where(pos)}: {what} (the archive is truncated or a size field is wrong).", target);

        /// <summary>A seekable stream read by position.</summary>
        private sealed class StreamSource : ICpioSource
        {
            private readonly Stream stream;

            public StreamSource(Stream stream)
            {
                if (!stream.CanSeek)
                {
                    throw new ArgumentException("The stream must be seekable: records are read by position.", nameof(stream));
                }
                this.stream = stream;
            }

            public long Length => stream.Length;

            public int ReadAt(long position, Span<byte> buffer)
            {
                stream.Position = position;
                int total = 0;
                while (total < buffer.Length)
                {
                    int n = stream.Read(buffer[total..]);
                    if (n <= 0)
                    {
                        break;
                    }
                    total += n;
                }
                return total;
            }
        }
    }
}
