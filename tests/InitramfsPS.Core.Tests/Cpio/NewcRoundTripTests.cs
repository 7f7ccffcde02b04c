using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using InitramfsPS.Cpio;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Cpio
{
    /// <summary>Records written by <see cref="CpioRecordWriter"/> read back the same through <see cref="CpioRecordReader"/>.</summary>
    public class NewcRoundTripTests
    {
        private sealed record Written(CpioHeader Header, string Name, byte[] Data);

        private static byte[] Write(IEnumerable<Written> records, bool trailer = true)
        {
            using var stream = new MemoryStream();
            var writer = new CpioRecordWriter(stream);
            foreach (var r in records)
            {
                writer.WriteRecord(r.Header, Encoding.UTF8.GetBytes(r.Name), r.Data);
            }
            if (trailer)
            {
                writer.WriteTrailer();
            }
            Assert.Equal(stream.Length, writer.Position);
            return stream.ToArray();
        }

        private static List<(CpioRecord Record, byte[] Data)> Read(byte[] archive)
        {
            var reader = new CpioRecordReader(new MemoryStream(archive), "the test archive");
            var read = new List<(CpioRecord, byte[])>();
            while (reader.TryReadRecord(out var record))
            {
                read.Add((record, reader.ReadData(record)));
            }
            Assert.Equal(archive.Length, reader.Position);
            return read;
        }

        private static Written Entry(string name, uint type, uint perm, byte[]? data = null, uint ino = 1, uint nlink = 1,
            uint rdevMajor = 0, uint rdevMinor = 0, uint mtime = 1_700_000_000, uint uid = 0, uint gid = 0)
        {
            data ??= Array.Empty<byte>();
            return new Written(new CpioHeader
            {
                Ino = ino, Mode = type | perm, Uid = uid, Gid = gid, NLink = nlink, MTime = mtime, FileSize = (uint)data.Length,
                RDevMajor = rdevMajor, RDevMinor = rdevMinor,
            }, name, data);
        }

        private static void AssertRoundTrip(IReadOnlyList<Written> records)
        {
            byte[] archive = Write(records);
            var read = Read(archive);
            Assert.Equal(records.Count + 1, read.Count);
            for (int i = 0; i < records.Count; i++)
            {
                Assert.Equal(records[i].Header, read[i].Record.Header);
                Assert.Equal(records[i].Name, Encoding.UTF8.GetString(read[i].Record.Name!));
                Assert.Equal(records[i].Data, read[i].Data);
                Assert.False(read[i].Record.IsTrailer);
            }
            Assert.True(read[^1].Record.IsTrailer);
        }

        [Fact]
        public void Every_entry_type_reads_back_as_written()
        {
            AssertRoundTrip(new[]
            {
                Entry(".", NewcCodec.TypeDirectory, 0x1ED, ino: 1, nlink: 3),
                Entry("bin", NewcCodec.TypeDirectory, 0x1ED, ino: 2, nlink: 2, uid: 1000, gid: 100),
                Entry("bin/sh", NewcCodec.TypeFile, 0x1ED, Encoding.ASCII.GetBytes("#!/bin/busybox sh\n"), ino: 3),
                Entry("bin/ls", NewcCodec.TypeSymlink, 0x1FF, Encoding.ASCII.GetBytes("busybox"), ino: 4),
                Entry("console", NewcCodec.TypeChar, 0x180, ino: 5, rdevMajor: 5, rdevMinor: 1),
                Entry("sda", NewcCodec.TypeBlock, 0x1B0, ino: 6, rdevMajor: 8, rdevMinor: 0),
                Entry("fifo", NewcCodec.TypeFifo, 0x1A4, ino: 7),
                Entry("socket", NewcCodec.TypeSocket, 0x1ED, ino: 8),
                Entry("setuid", NewcCodec.TypeFile, 0xDED, new byte[] { 1 }, ino: 9),
            });
        }

        [Theory]
        [InlineData("café/naïve.txt")]
        [InlineData("日本語/ファイル")]
        [InlineData("emoji-😀")]
        [InlineData("a name with spaces and a\ttab")]
        public void Names_needing_utf8_read_back_byte_for_byte(string name)
        {
            AssertRoundTrip(new[] { Entry(name, NewcCodec.TypeFile, 0x1A4, Encoding.UTF8.GetBytes(name)) });
        }

        [Fact]
        public void Names_and_data_of_every_length_mod_4_stay_aligned()
        {
            var records = new List<Written>();
            for (int i = 1; i <= 8; i++)
            {
                records.Add(Entry(new string('n', i), NewcCodec.TypeFile, 0x1A4, new byte[i], ino: (uint)i));
            }
            AssertRoundTrip(records);
            byte[] archive = Write(records);
            long expected = NewcCodec.TrailerSize;
            foreach (var r in records)
            {
                expected += NewcCodec.RecordSize(r.Name.Length, r.Data.Length);
            }
            Assert.Equal(expected, archive.Length);
            Assert.Equal(0, archive.Length % 4);
        }

        [Fact]
        public void A_hardlink_group_keeps_its_inode_link_count_and_one_copy_of_the_data()
        {
            byte[] data = Encoding.ASCII.GetBytes("shared");
            AssertRoundTrip(new[]
            {
                Entry("a", NewcCodec.TypeFile, 0x1A4, data, ino: 7, nlink: 2),
                Entry("b", NewcCodec.TypeFile, 0x1A4, ino: 7, nlink: 2),
            });
        }

        [Fact]
        public void Header_fields_keep_their_full_32_bits()
        {
            var header = new CpioHeader
            {
                Ino = uint.MaxValue, Mode = NewcCodec.TypeChar | 0xFFF, Uid = uint.MaxValue, Gid = 0xDEADBEEF, NLink = uint.MaxValue,
                MTime = uint.MaxValue, DevMajor = 0x12345678, DevMinor = 0x9ABCDEF0, RDevMajor = uint.MaxValue, RDevMinor = 0xABCDEF01,
            };
            AssertRoundTrip(new[] { new Written(header, "x", Array.Empty<byte>()) });
        }

        [Fact]
        public void A_large_file_reads_back_whole()
        {
            var data = new byte[(5 << 20) + 3];
            new Random(15).NextBytes(data);
            AssertRoundTrip(new[] { Entry("big", NewcCodec.TypeFile, 0x1A4, data) });
        }

        [Fact]
        public void A_header_is_written_as_gnu_cpio_writes_it()
        {
            var header = new CpioHeader { Ino = 0x2A, Mode = NewcCodec.TypeFile | 0x1A4, NLink = 1, MTime = 0x65000000, FileSize = 5, RDevMajor = 0xAB };
            var bytes = new byte[NewcCodec.HeaderSize];
            NewcCodec.Encode(header, 6, bytes);
            Assert.Equal(
                "070701" + "0000002A" + "000081A4" + "00000000" + "00000000" + "00000001" + "65000000" + "00000005"
                + "00000000" + "00000000" + "000000AB" + "00000000" + "00000006" + "00000000",
                Encoding.ASCII.GetString(bytes));
        }

        [Fact]
        public void The_trailer_is_the_record_the_kernel_expects()
        {
            using var stream = new MemoryStream();
            new CpioRecordWriter(stream).WriteTrailer();
            string text = Encoding.ASCII.GetString(stream.ToArray());
            Assert.Equal(NewcCodec.TrailerSize, stream.Length);
            Assert.StartsWith("070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001", text, StringComparison.Ordinal);
            Assert.EndsWith("TRAILER!!!\0\0\0\0", text, StringComparison.Ordinal);
        }

        [Theory]
        [InlineData(1_800_000_000u, 1_700_000_000L, 1_700_000_000u)]
        [InlineData(1_600_000_000u, 1_700_000_000L, 1_600_000_000u)]
        [InlineData(5u, -1L, 0u)]
        [InlineData(uint.MaxValue, long.MaxValue, uint.MaxValue)]
        public void MakeReproducible_clamps_the_mtime_and_nothing_else(uint mtime, long epoch, uint expected)
        {
            var header = new CpioHeader { Ino = 3, Mode = NewcCodec.TypeFile | 0x1ED, Uid = 1, Gid = 2, NLink = 2, MTime = mtime, FileSize = 9 };
            var reproducible = NewcCodec.MakeReproducible(header, epoch);
            Assert.Equal(header with { MTime = expected }, reproducible);
        }

        [Fact]
        public void A_clamped_archive_reads_back_with_the_clamped_mtimes()
        {
            var records = new[]
            {
                Entry("old", NewcCodec.TypeFile, 0x1A4, new byte[] { 1 }, mtime: 100),
                Entry("new", NewcCodec.TypeFile, 0x1A4, new byte[] { 2 }, mtime: 2_000_000_000, ino: 2),
            };
            var clamped = Array.ConvertAll(records, r => r with { Header = NewcCodec.MakeReproducible(r.Header, 1_000_000) });
            var read = Read(Write(clamped));
            Assert.Equal(new uint[] { 100, 1_000_000 }, new[] { read[0].Record.Header.MTime, read[1].Record.Header.MTime });
        }

        [Fact]
        public void The_reader_stops_where_something_other_than_a_header_follows()
        {
            byte[] cpio = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4, new byte[] { 7 }) });
            byte[] archive = [.. cpio, 0, 0, 0, 0, 0x1F, 0x8B, 8, 0];
            var reader = new CpioRecordReader(new MemoryStream(archive), "the test archive");
            Assert.True(reader.TryReadRecord(out _));
            Assert.True(reader.TryReadRecord(out var trailer));
            Assert.True(trailer.IsTrailer);
            Assert.False(reader.TryReadRecord(out _));
            Assert.Equal(cpio.Length + 4, reader.Position);
        }

        [Fact]
        public void A_070702_record_with_the_right_sum_is_read()
        {
            byte[] data = { 1, 2, 250 };
            byte[] archive = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4, data) }, trailer: false);
            Patch(archive, 0, "070702");
            Patch(archive, 6 + (12 * 8), "000000FD");
            var read = Read(archive);
            Assert.Equal(253u, read[0].Record.Header.Check);
            Assert.Equal(data, read[0].Data);
        }

        [Theory]
        [InlineData("070707", "ArchiveInvalid", "odc")]
        [InlineData("070703", "ArchiveInvalid", "no cpio magic")]
        public void A_header_without_newc_magic_is_refused(string magic, string id, string message)
        {
            byte[] archive = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4) });
            Patch(archive, 0, magic);
            AssertRefused(archive, id, message);
        }

        [Fact]
        public void A_header_field_that_is_not_hexadecimal_is_refused()
        {
            byte[] archive = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4) });
            Patch(archive, 6 + 8, "0000G1A4");
            AssertRefused(archive, "ArchiveInvalid", "not hexadecimal");
        }

        [Fact]
        public void A_record_cut_short_is_refused_as_truncated()
        {
            byte[] archive = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4, new byte[100]) }, trailer: false);
            AssertRefused(archive[..150], "ArchiveTruncated", "run past the end");
            AssertRefused(archive[..60], "ArchiveTruncated", "header is cut short");
        }

        [Fact]
        public void A_name_without_its_nul_is_refused()
        {
            byte[] archive = Write(new[] { Entry("abc", NewcCodec.TypeFile, 0x1A4) });
            Patch(archive, 6 + (11 * 8), "00000003");
            AssertRefused(archive, "ArchiveInvalid", "not NUL-terminated");
        }

        [Fact]
        public void A_header_at_an_unaligned_offset_is_refused()
        {
            byte[] one = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4) }, trailer: false);
            byte[] archive = [.. one, 0, .. one];
            AssertRefused(archive, "ArchiveInvalid", "broken padding");
        }

        [Fact]
        public void A_070702_record_whose_data_does_not_match_its_sum_is_refused()
        {
            byte[] archive = Write(new[] { Entry("f", NewcCodec.TypeFile, 0x1A4, new byte[] { 1, 2, 3 }) });
            Patch(archive, 0, "070702");
            Patch(archive, 6 + (12 * 8), "00000007");
            AssertRefused(archive, "ArchiveChecksumMismatch", "070702 checksum");
        }

        [Theory]
        [InlineData(0u)]
        [InlineData(NewcCodec.MaxNameSize + 1u)]
        public void A_name_size_the_kernel_skips_gives_a_record_without_a_name(uint nameSize)
        {
            var name = new string('x', (int)Math.Max(nameSize, 1) - 1);
            byte[] archive = Write(new[] { Entry(name, NewcCodec.TypeFile, 0x1A4, new byte[] { 9 }) });
            Patch(archive, 6 + (11 * 8), nameSize.ToString("X8", System.Globalization.CultureInfo.InvariantCulture));
            var reader = new CpioRecordReader(new MemoryStream(archive), "the test archive");
            Assert.True(reader.TryReadRecord(out var record));
            Assert.Null(record.Name);
            Assert.Equal(nameSize, record.NameSize);
        }

        private static void Patch(byte[] archive, int offset, string ascii) => Encoding.ASCII.GetBytes(ascii).CopyTo(archive, offset);

        private static void AssertRefused(byte[] archive, string id, string message)
        {
            var e = Assert.Throws<InitramfsException>(() => Read(archive));
            Assert.Equal(id, e.ErrorId);
            Assert.Contains(message, e.Message, StringComparison.Ordinal);
            Assert.Contains("of the test archive", e.Message, StringComparison.Ordinal);
        }
    }
}
