using System;
using System.IO;
using System.Text;
using InitramfsPS.IO;

namespace InitramfsPS.Cpio
{
    /// <summary>The fields of one newc header (Linux buffer-format.rst).</summary>
    public readonly record struct CpioHeader
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
        /// <summary>Major number of a device node.</summary>
        public uint RDevMajor { get; init; }
        /// <summary>Minor number of a device node.</summary>
        public uint RDevMinor { get; init; }
    }

    /// <summary>
    /// Writes cpio "newc" (070701) records: a 110-byte ASCII header, the NUL-terminated name padded
    /// to 4 bytes, the data padded to 4 bytes, and a TRAILER!!! record at the end.
    /// </summary>
    public sealed class CpioNewcWriter
    {
        /// <summary>File type bits of a newc mode.</summary>
        public const uint TypeFile = 0x8000, TypeDirectory = 0x4000, TypeSymlink = 0xA000, TypeChar = 0x2000, TypeBlock = 0x6000, TypeFifo = 0x1000, TypeSocket = 0xC000;

        private static readonly byte[] Zeros = new byte[4];
        private readonly Stream output;
        private readonly byte[] header = new byte[110];

        /// <summary>Writes to <paramref name="output"/>.</summary>
        public CpioNewcWriter(Stream output) => this.output = output;

        /// <summary>Bytes written so far.</summary>
        public long Position { get; private set; }

        /// <summary>Bytes one record takes: the header and NUL-terminated name, then the data, each padded to 4.</summary>
        public static long RecordSize(int nameBytes, long dataBytes) => Align4(110 + nameBytes + 1) + Align4(dataBytes);

        /// <summary>Bytes the TRAILER!!! record takes.</summary>
        public static long TrailerSize => RecordSize(10, 0);

        private static long Align4(long n) => (n + 3) & ~3L;

        /// <summary>Writes a header and the padded name; the caller then writes exactly FileSize bytes and calls <see cref="EndData"/>.</summary>
        public void WriteHeader(in CpioHeader h, ReadOnlySpan<byte> name)
        {
            Encoding.ASCII.GetBytes("070701", header);
            Hex(6, h.Ino);
            Hex(14, h.Mode);
            Hex(22, h.Uid);
            Hex(30, h.Gid);
            Hex(38, h.NLink);
            Hex(46, h.MTime);
            Hex(54, h.FileSize);
            Hex(62, 0); // devmajor: the file system the file came from, which an initramfs does not have
            Hex(70, 0);
            Hex(78, h.RDevMajor);
            Hex(86, h.RDevMinor);
            Hex(94, (uint)name.Length + 1);
            Hex(102, 0); // check: only the 070702 format uses it
            output.Write(header);
            output.Write(name);
            output.WriteByte(0);
            Position += header.Length + name.Length + 1;
            Pad();
        }

        /// <summary>Writes part of an entry's data.</summary>
        public void WriteData(ReadOnlySpan<byte> data)
        {
            output.Write(data);
            Position += data.Length;
        }

        /// <summary>Counts <paramref name="count"/> bytes of data the caller wrote to the output stream itself.</summary>
        public void Advance(int count) => Position += count;

        /// <summary>Pads after an entry's data.</summary>
        public void EndData() => Pad();

        /// <summary>Writes the TRAILER!!! record that ends the archive.</summary>
        public void WriteTrailer() => WriteHeader(new CpioHeader { NLink = 1 }, "TRAILER!!!"u8);

        /// <summary>A stream view that counts data written through it into <see cref="Position"/>.</summary>
        public Stream DataStream => new DataView(this);

        private void Pad()
        {
            int pad = (int)((4 - (Position & 3)) & 3);
            if (pad > 0)
            {
                output.Write(Zeros, 0, pad);
                Position += pad;
            }
        }

        private void Hex(int offset, uint value)
        {
            for (int i = 7; i >= 0; i--)
            {
                uint digit = value & 0xF;
                header[offset + i] = (byte)(digit < 10 ? '0' + digit : 'A' + digit - 10);
                value >>= 4;
            }
        }

        private sealed class DataView : WriteOnlyStream
        {
            private readonly CpioNewcWriter writer;

            public DataView(CpioNewcWriter writer) => this.writer = writer;

            public override void Write(ReadOnlySpan<byte> buffer) => writer.WriteData(buffer);

            public override void Flush() => writer.output.Flush();
        }
    }
}
