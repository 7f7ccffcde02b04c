using System;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Cpio
{
    /// <summary>The fields of one newc header (Linux buffer-format.rst), the name size aside.</summary>
    internal readonly record struct CpioHeader
    {
        /// <summary>Inode number; equal for the names of one hardlink group.</summary>
        public uint Ino { get; init; }
        /// <summary>File type and permission bits.</summary>
        public uint Mode { get; init; }
        /// <summary>Owner.</summary>
        public uint Uid { get; init; }
        /// <summary>Group.</summary>
        public uint Gid { get; init; }
        /// <summary>Link count.</summary>
        public uint NLink { get; init; }
        /// <summary>Modification time.</summary>
        public uint MTime { get; init; }
        /// <summary>Size of the data that follows.</summary>
        public uint FileSize { get; init; }
        /// <summary>Major number of the device the file came from; with <see cref="Ino"/> it keys a hardlink group.</summary>
        public uint DevMajor { get; init; }
        /// <summary>Minor number of the device the file came from.</summary>
        public uint DevMinor { get; init; }
        /// <summary>Major number of a device node.</summary>
        public uint RDevMajor { get; init; }
        /// <summary>Minor number of a device node.</summary>
        public uint RDevMinor { get; init; }
        /// <summary>The sum of the data's bytes in a 070702 header; 0 in 070701.</summary>
        public uint Check { get; init; }
    }

    /// <summary>What <see cref="NewcCodec.Decode"/> found in 110 header bytes.</summary>
    internal enum NewcHeaderKind
    {
        /// <summary>A 070701 header.</summary>
        Newc,
        /// <summary>A 070702 header: newc whose check field sums the data of a regular file.</summary>
        NewcWithChecksum,
        /// <summary>An old portable (odc, 070707) header, which the kernel does not read.</summary>
        Odc,
        /// <summary>No cpio magic.</summary>
        NoMagic,
        /// <summary>The magic of newc, but a field that is not 8 hexadecimal digits.</summary>
        NotHexadecimal,
    }

    /// <summary>
    /// The cpio "newc" format in both directions (Linux buffer-format.rst, the format the kernel's
    /// init/initramfs.c unpacks): a 110-byte ASCII header (the magic 070701, then 13 fields of 8
    /// hexadecimal digits), the NUL-terminated name padded to 4 bytes, the data padded to 4 bytes,
    /// and a record named TRAILER!!! at the end. Pure functions only: reading and writing streams
    /// is <see cref="CpioRecordReader"/>'s and <see cref="CpioRecordWriter"/>'s.
    /// </summary>
    internal static class NewcCodec
    {
        /// <summary>File type bits of a newc mode.</summary>
        public const uint TypeFile = 0x8000, TypeDirectory = 0x4000, TypeSymlink = 0xA000, TypeChar = 0x2000, TypeBlock = 0x6000, TypeFifo = 0x1000, TypeSocket = 0xC000;

        /// <summary>The type bits of a mode.</summary>
        public const uint TypeMask = 0xF000;

        /// <summary>Bytes of a header.</summary>
        public const int HeaderSize = 110;

        /// <summary>The name of the record that ends an archive (and resets the kernel's hardlink table).</summary>
        public const string Trailer = "TRAILER!!!";

        /// <summary>
        /// The largest name size (the NUL included) the kernel takes: it skips a record whose name
        /// size is 0 or more than PATH_MAX. A symlink target longer than PATH_MAX is skipped too.
        /// </summary>
        public const int MaxNameSize = RootfsPath.PathMax;

        /// <summary>The largest data a record can hold: the size field is 32 bits.</summary>
        public const long MaxFileSize = uint.MaxValue;

        internal static ReadOnlySpan<byte> TrailerName => "TRAILER!!!"u8;

        /// <summary>Rounds up to the next multiple of 4, where names and data end in newc.</summary>
        public static long Align4(long n) => (n + 3) & ~3L;

        /// <summary>Zero bytes that follow <paramref name="position"/> to reach a multiple of 4.</summary>
        public static int Padding(long position) => (int)((4 - (position & 3)) & 3);

        /// <summary>Bytes one record takes: the header and NUL-terminated name, then the data, each padded to 4.</summary>
        public static long RecordSize(int nameBytes, long dataBytes) => Align4(HeaderSize + nameBytes + 1) + Align4(dataBytes);

        /// <summary>Bytes the TRAILER!!! record takes.</summary>
        public static long TrailerSize => RecordSize(Trailer.Length, 0);

        /// <summary>The header of the TRAILER!!! record, as GNU cpio writes it.</summary>
        public static CpioHeader TrailerHeader => new() { NLink = 1 };

        /// <summary>
        /// Writes the 110 header bytes of <paramref name="header"/> for a name of
        /// <paramref name="nameSize"/> bytes, NUL included. The magic is 070701 and the check field
        /// 0, as newc wants; hex digits upper-case, as GNU cpio writes them.
        /// </summary>
        public static void Encode(in CpioHeader header, uint nameSize, Span<byte> destination)
        {
            if (destination.Length < HeaderSize)
            {
                throw new ArgumentException("A newc header takes 110 bytes.", nameof(destination));
            }
            "070701"u8.CopyTo(destination);
            Hex(destination, 0, header.Ino);
            Hex(destination, 1, header.Mode);
            Hex(destination, 2, header.Uid);
            Hex(destination, 3, header.Gid);
            Hex(destination, 4, header.NLink);
            Hex(destination, 5, header.MTime);
            Hex(destination, 6, header.FileSize);
            Hex(destination, 7, header.DevMajor);
            Hex(destination, 8, header.DevMinor);
            Hex(destination, 9, header.RDevMajor);
            Hex(destination, 10, header.RDevMinor);
            Hex(destination, 11, nameSize);
            Hex(destination, 12, 0);
        }

        /// <summary>
        /// Reads 110 header bytes. The fields are set only for <see cref="NewcHeaderKind.Newc"/> and
        /// <see cref="NewcHeaderKind.NewcWithChecksum"/>; <paramref name="nameSize"/> counts the NUL.
        /// </summary>
        internal static NewcHeaderKind Decode(ReadOnlySpan<byte> source, out CpioHeader header, out uint nameSize)
        {
            header = default;
            nameSize = 0;
            var magic = source[..6];
            NewcHeaderKind kind;
            if (magic.SequenceEqual("070701"u8))
            {
                kind = NewcHeaderKind.Newc;
            }
            else if (magic.SequenceEqual("070702"u8))
            {
                kind = NewcHeaderKind.NewcWithChecksum;
            }
            else
            {
                return magic.SequenceEqual("070707"u8) ? NewcHeaderKind.Odc : NewcHeaderKind.NoMagic;
            }
            Span<uint> fields = stackalloc uint[13];
            for (int field = 0; field < fields.Length; field++)
            {
                if (!TryHex(source.Slice(6 + (field * 8), 8), out fields[field]))
                {
                    return NewcHeaderKind.NotHexadecimal;
                }
            }
            header = new CpioHeader
            {
                Ino = fields[0], Mode = fields[1], Uid = fields[2], Gid = fields[3], NLink = fields[4], MTime = fields[5],
                FileSize = fields[6], DevMajor = fields[7], DevMinor = fields[8], RDevMajor = fields[9], RDevMinor = fields[10],
                Check = fields[12],
            };
            nameSize = fields[11];
            return kind;
        }

        /// <summary>
        /// The reproducibility step, kept pure (u-root's MakeReproducible): every mtime clamped to at
        /// most <paramref name="sourceDateEpoch"/> (Unix seconds, as SOURCE_DATE_EPOCH asks). The rest
        /// of what makes an export reproducible is its plan: names in byte order, inode numbers in
        /// output order, owners and modes from the rootfs, never from the host.
        /// </summary>
        public static CpioHeader MakeReproducible(CpioHeader header, long sourceDateEpoch) =>
            header with { MTime = (uint)Math.Min(header.MTime, Math.Clamp(sourceDateEpoch, 0, uint.MaxValue)) };

        /// <summary>The entry type of a mode's type bits; null for bits the kernel creates nothing for.</summary>
        public static EntryType? TypeOf(uint mode) => (mode & TypeMask) switch
        {
            TypeFile => EntryType.File,
            TypeDirectory => EntryType.Directory,
            TypeSymlink => EntryType.Symlink,
            TypeChar => EntryType.CharDevice,
            TypeBlock => EntryType.BlockDevice,
            TypeFifo => EntryType.Fifo,
            TypeSocket => EntryType.Socket,
            _ => null,
        };

        /// <summary>The type bits of an entry type.</summary>
        public static uint TypeBits(EntryType type) => type switch
        {
            EntryType.File => TypeFile,
            EntryType.Directory => TypeDirectory,
            EntryType.Symlink => TypeSymlink,
            EntryType.CharDevice => TypeChar,
            EntryType.BlockDevice => TypeBlock,
            EntryType.Fifo => TypeFifo,
            _ => TypeSocket,
        };

        private static void Hex(Span<byte> header, int field, uint value)
        {
            int offset = 6 + (field * 8);
            for (int i = 7; i >= 0; i--)
            {
                uint digit = value & 0xF;
                header[offset + i] = (byte)(digit < 10 ? '0' + digit : 'A' + digit - 10);
                value >>= 4;
            }
        }

        private static bool TryHex(ReadOnlySpan<byte> digits, out uint value)
        {
            value = 0;
            foreach (byte c in digits)
            {
                int digit = c switch
                {
                    >= (byte)'0' and <= (byte)'9' => c - '0',
                    >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                    >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
                    _ => -1,
                };
                if (digit < 0)
                {
                    return false;
                }
                value = (value << 4) | (uint)digit;
            }
            return true;
        }
    }
}
