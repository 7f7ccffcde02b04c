using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace InitramfsPS.Core.Tests.Layers
{
    /// <summary>
    /// Writes tar archives byte by byte, so a test controls every field a hostile or unusual writer
    /// could set: ustar or GNU magic, the ustar prefix, base-256 numbers, PAX and GNU long-name
    /// records, wrong sizes and checksums, missing end blocks or padding.
    /// </summary>
    internal sealed class TarBuilder
    {
        private const int Block = 512;
        private readonly MemoryStream tar = new();

        /// <summary>One header; the defaults make a root-owned 0644 file of the data given.</summary>
        internal sealed class Header
        {
            public string Name { get; set; } = string.Empty;
            public byte[]? RawName { get; set; }
            public char Type { get; set; } = '0';
            public int Mode { get; set; } = Convert.ToInt32("644", 8);
            public long Uid { get; set; }
            public long Gid { get; set; }
            public long MTime { get; set; }
            public string LinkName { get; set; } = string.Empty;
            public int DevMajor { get; set; }
            public int DevMinor { get; set; }
            public string Prefix { get; set; } = string.Empty;
            public bool Gnu { get; set; }
            /// <summary>The size field; null: the data's length.</summary>
            public long? Size { get; set; }
            /// <summary>Writes uid, gid and mtime in GNU base-256 form instead of octal.</summary>
            public bool Base256 { get; set; }
            /// <summary>Changes the header's bytes before the checksum is computed.</summary>
            public Action<byte[]>? Patch { get; set; }
            /// <summary>Stores this checksum instead of the right one.</summary>
            public long? Checksum { get; set; }
        }

        public TarBuilder File(string name, string data, int mode = 420, long uid = 0, long gid = 0, long mtime = 0) =>
            Add(new Header { Name = name, Mode = mode, Uid = uid, Gid = gid, MTime = mtime }, Encoding.UTF8.GetBytes(data));

        public TarBuilder Directory(string name, int mode = 493) => Add(new Header { Name = name, Type = '5', Mode = mode });

        public TarBuilder Symlink(string name, string target) => Add(new Header { Name = name, Type = '2', LinkName = target, Mode = 511 });

        public TarBuilder Hardlink(string name, string target) => Add(new Header { Name = name, Type = '1', LinkName = target });

        /// <summary>A whiteout or opaque marker is an empty regular file.</summary>
        public TarBuilder Empty(string name) => Add(new Header { Name = name }, Array.Empty<byte>());

        /// <summary>A PAX extended header ('x', or 'g' for a global one) with these records.</summary>
        public TarBuilder Pax(IEnumerable<KeyValuePair<string, string>> records, bool global = false)
        {
            var body = new MemoryStream();
            foreach (var (key, value) in records)
            {
                byte[] record = PaxRecord(key, value);
                body.Write(record, 0, record.Length);
            }
            return Add(new Header { Name = "PaxHeaders/x", Type = global ? 'g' : 'x' }, body.ToArray());
        }

        public TarBuilder Pax(string key, string value, bool global = false) =>
            Pax(new[] { new KeyValuePair<string, string>(key, value) }, global);

        /// <summary>One PAX record: its length counts its own digits.</summary>
        public static byte[] PaxRecord(string key, string value)
        {
            int payload = Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value) + 3;
            int length = payload + 1;
            while (length != payload + length.ToString(CultureInfo.InvariantCulture).Length)
            {
                length = payload + length.ToString(CultureInfo.InvariantCulture).Length;
            }
            return Encoding.UTF8.GetBytes($"{length} {key}={value}\n");
        }

        /// <summary>A GNU long name ('L') or long link ('K') record, NUL-terminated as GNU tar writes it.</summary>
        public TarBuilder GnuLong(char type, string value) =>
            Add(new Header { Name = "././@LongLink", Type = type, Gnu = true }, Encoding.UTF8.GetBytes(value + "\0"));

        public TarBuilder Add(Header h, byte[]? data = null, bool pad = true)
        {
            data ??= Array.Empty<byte>();
            var header = new byte[Block];
            PutBytes(header, 0, 100, h.RawName ?? Encoding.UTF8.GetBytes(h.Name));
            PutOctal(header, 100, 8, h.Mode);
            PutNumber(header, 108, 8, h.Uid, h.Base256);
            PutNumber(header, 116, 8, h.Gid, h.Base256);
            PutNumber(header, 124, 12, h.Size ?? data.Length, h.Base256);
            PutNumber(header, 136, 12, h.MTime, h.Base256);
            header[156] = (byte)h.Type;
            PutBytes(header, 157, 100, Encoding.UTF8.GetBytes(h.LinkName));
            PutBytes(header, 257, 8, h.Gnu ? "ustar  \0"u8.ToArray() : "ustar\000"u8.ToArray());
            PutOctal(header, 329, 8, h.DevMajor);
            PutOctal(header, 337, 8, h.DevMinor);
            PutBytes(header, 345, 155, Encoding.UTF8.GetBytes(h.Prefix));
            h.Patch?.Invoke(header);
            SetChecksum(header, h.Checksum);
            tar.Write(header);
            tar.Write(data);
            if (pad)
            {
                tar.Write(new byte[(Block - data.Length % Block) % Block]);
            }
            return this;
        }

        /// <summary>Bytes as they are, with no header: data smuggled after a header, a torn block.</summary>
        public TarBuilder Raw(byte[] bytes)
        {
            tar.Write(bytes);
            return this;
        }

        /// <summary>The archive, with the two zero blocks at its end unless <paramref name="endBlocks"/> is false.</summary>
        public byte[] Build(bool endBlocks = true)
        {
            var copy = new MemoryStream();
            tar.Position = 0;
            tar.CopyTo(copy);
            if (endBlocks)
            {
                copy.Write(new byte[2 * Block]);
            }
            return copy.ToArray();
        }

        public static void SetChecksum(byte[] header, long? forced = null)
        {
            for (int i = 148; i < 156; i++)
            {
                header[i] = (byte)' ';
            }
            long sum = 0;
            foreach (byte b in header)
            {
                sum += b;
            }
            PutOctal(header, 148, 7, forced ?? sum);
        }

        private static void PutBytes(byte[] header, int offset, int width, byte[] value)
        {
            Array.Clear(header, offset, width);
            Array.Copy(value, 0, header, offset, Math.Min(value.Length, width));
        }

        /// <summary>Octal, zero-padded, NUL-terminated, as ustar writers do.</summary>
        private static void PutOctal(byte[] header, int offset, int width, long value)
        {
            string digits = Convert.ToString(value, 8).PadLeft(width - 1, '0');
            PutBytes(header, offset, width, Encoding.ASCII.GetBytes(digits));
        }

        private static void PutNumber(byte[] header, int offset, int width, long value, bool base256)
        {
            if (!base256)
            {
                PutOctal(header, offset, width, value);
                return;
            }
            // GNU base-256: the top bit of the first byte set, the rest big-endian.
            for (int i = width - 1; i >= 1; i--)
            {
                header[offset + i] = (byte)(value & 0xFF);
                value >>= 8;
            }
            header[offset] = (byte)(0x80 | (value & 0x3F));
        }
    }
}
