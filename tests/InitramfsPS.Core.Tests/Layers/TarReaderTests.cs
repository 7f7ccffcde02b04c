using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.Layers;
using Xunit;

namespace InitramfsPS.Core.Tests.Layers
{
    /// <summary>
    /// The tar reader on the dialects layer writers produce (ustar, GNU, PAX, V7) and on the
    /// malformed archives a hostile image can hold: every header field, every way a stream ends.
    /// </summary>
    public class TarReaderTests
    {
        private static List<TarHeader> ReadAll(byte[] tar, bool seek = false)
        {
            var reader = new TarReader(new MemoryStream(tar), seek);
            var headers = new List<TarHeader>();
            TarHeader? h;
            while ((h = reader.Next()) is not null)
            {
                headers.Add(h);
            }
            return headers;
        }

        private static InitramfsException Refused(byte[] tar) =>
            Assert.Throws<InitramfsException>(() => ReadAll(tar));

        private static int Octal(string digits) => Convert.ToInt32(digits, 8);

        [Fact]
        public void A_ustar_entry_keeps_every_field_and_its_data_offset()
        {
            byte[] tar = new TarBuilder()
                .File("home/user/notes", "hello", mode: Octal("4755"), uid: 1000, gid: 100, mtime: 1234567890)
                .Add(new TarBuilder.Header { Name = "dev/loop0", Type = '4', DevMajor = 7, DevMinor = 3, Mode = Octal("660"), Gid = 6 })
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal(2, entries.Count);
            var notes = entries[0];
            Assert.Equal(("home/user/notes", '0', Octal("4755"), 1000L, 100L, 1234567890L, 5L, 512L),
                (notes.Name, notes.TypeFlag, notes.Mode, notes.Uid, notes.Gid, notes.MTime, notes.Size, notes.DataOffset));
            var loop = entries[1];
            Assert.Equal(('4', 7, 3, 6L), (loop.TypeFlag, loop.DevMajor, loop.DevMinor, loop.Gid));
        }

        [Fact]
        public void The_ustar_prefix_is_joined_to_the_name()
        {
            string prefix = new string('d', 60) + "/" + new string('e', 60);
            var entries = ReadAll(new TarBuilder().Add(new TarBuilder.Header { Name = new string('f', 90), Prefix = prefix }).Build());
            Assert.Equal(prefix + "/" + new string('f', 90), entries[0].Name);
        }

        [Fact]
        public void A_GNU_header_has_no_prefix_field_so_those_bytes_are_not_part_of_the_name()
        {
            // GNU tar keeps atime and ctime where ustar has the prefix.
            var entries = ReadAll(new TarBuilder().Add(new TarBuilder.Header { Name = "f", Prefix = "14567012345", Gnu = true }).Build());
            Assert.Equal("f", entries[0].Name);
        }

        [Fact]
        public void A_PAX_header_overrides_path_linkpath_size_owner_and_mtime_of_the_next_entry_only()
        {
            byte[] tar = new TarBuilder()
                .Pax(new Dictionary<string, string>
                {
                    ["path"] = new string('x', 150),
                    ["linkpath"] = "/target/" + new string('y', 120),
                    ["uid"] = "4294967296",
                    ["gid"] = "70000",
                    ["mtime"] = "1700000000.123456789",
                })
                .Symlink("short", "short-target")
                .File("next", "n")
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal(new string('x', 150), entries[0].Name);
            Assert.Equal("/target/" + new string('y', 120), entries[0].LinkName);
            Assert.Equal((4294967296L, 70000L, 1700000000L), (entries[0].Uid, entries[0].Gid, entries[0].MTime));
            Assert.Equal(("next", 0L), (entries[1].Name, entries[1].Uid));
        }

        [Fact]
        public void A_PAX_size_is_the_size_the_data_is_skipped_by()
        {
            byte[] data = new byte[700];
            Array.Fill(data, (byte)'z');
            byte[] tar = new TarBuilder()
                .Pax("size", "700")
                .Add(new TarBuilder.Header { Name = "big", Size = 0 }, data)
                .File("after", "a")
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal((700L, 1536L), (entries[0].Size, entries[0].DataOffset));
            Assert.Equal("after", entries[1].Name);
        }

        [Fact]
        public void A_global_PAX_header_applies_to_every_later_entry_until_a_later_one_deletes_the_key()
        {
            byte[] tar = new TarBuilder()
                .Pax("uid", "1234", global: true)
                .File("a", "1")
                .File("b", "2")
                .Pax("uid", string.Empty, global: true)
                .File("c", "3", uid: 5)
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal(new[] { 1234L, 1234L, 5L }, entries.ConvertAll(e => e.Uid));
        }

        [Fact]
        public void A_PAX_size_of_zero_makes_the_entrys_data_the_next_header()
        {
            // What the digest-checked bytes say is what is read: the smuggled header is an entry
            // of its own, and the layer rules (not the reader) decide about its name.
            byte[] smuggled = new TarBuilder().File("../../outside/x", "smuggled").Build(endBlocks: false);
            byte[] tar = new TarBuilder().Pax("size", "0").Add(new TarBuilder.Header { Name = "cover" }, smuggled).Build();
            var entries = ReadAll(tar);
            Assert.Equal(new[] { "cover", "../../outside/x" }, entries.ConvertAll(e => e.Name));
            Assert.Equal(0, entries[0].Size);
        }

        [Theory]
        [InlineData("99999999", "LayerTarCorrupt")]  // larger than the stream
        [InlineData("-1", "LayerTarCorrupt")]
        [InlineData("12x", "LayerTarCorrupt")]
        public void A_bad_PAX_size_is_refused(string size, string id)
        {
            byte[] tar = new TarBuilder().Pax("size", size).File("big", "x").Build();
            Assert.Equal(id, Refused(tar).ErrorId);
        }

        [Theory]
        [InlineData("30 path=short\n")]        // the length is not the record's
        [InlineData("x path=a\n")]             // no length
        [InlineData("11 noequal\n")]           // no '='
        [InlineData("10 path=abc")]            // no newline
        public void A_malformed_PAX_record_is_refused(string record)
        {
            byte[] tar = new TarBuilder()
                .Add(new TarBuilder.Header { Name = "pax", Type = 'x' }, Encoding.ASCII.GetBytes(record))
                .File("f", "x")
                .Build();
            Assert.Equal("LayerTarCorrupt", Refused(tar).ErrorId);
        }

        [Fact]
        public void A_GNU_sparse_entry_is_refused_as_unsupported()
        {
            byte[] tar = new TarBuilder().Pax("GNU.sparse.major", "1").File("sparse", "x").Build();
            Assert.Equal("LayerSparseUnsupported", Refused(tar).ErrorId);
        }

        [Fact]
        public void GNU_long_name_and_long_link_records_name_the_next_entry()
        {
            string longName = string.Join('/', new[] { new string('a', 80), new string('b', 80), new string('c', 80) });
            string longLink = "/" + new string('l', 200);
            byte[] tar = new TarBuilder()
                .GnuLong('L', longName)
                .GnuLong('K', longLink)
                .Add(new TarBuilder.Header { Name = "truncated", Type = '2', LinkName = "truncated", Gnu = true })
                .File("plain", "p")
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal((longName, longLink, '2'), (entries[0].Name, entries[0].LinkName, entries[0].TypeFlag));
            Assert.Equal(("plain", string.Empty), (entries[1].Name, entries[1].LinkName));
        }

        [Theory]
        [InlineData('L', true)]
        [InlineData('L', false)]
        [InlineData('x', true)]
        [InlineData('K', false)]
        public void An_extended_header_with_no_entry_after_it_is_refused(char type, bool endBlocks)
        {
            var builder = new TarBuilder().File("init", "#!/init\n");
            builder = type == 'x' ? builder.Pax("path", "x") : builder.GnuLong(type, "x");
            Assert.Equal("LayerTarCorrupt", Refused(builder.Build(endBlocks)).ErrorId);
        }

        [Fact]
        public void An_extended_header_larger_than_a_MiB_is_refused_before_it_is_read()
        {
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header { Name = "pax", Type = 'x', Size = 2L << 20 }).Build();
            var e = Refused(tar);
            Assert.Equal("LayerTarCorrupt", e.ErrorId);
            Assert.Contains("limit", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Base_256_numbers_are_read_for_owner_mtime_and_size()
        {
            byte[] data = Encoding.ASCII.GetBytes("five!");
            byte[] tar = new TarBuilder()
                .Add(new TarBuilder.Header { Name = "big-ids", Uid = 1L << 40, Gid = 3_000_000_000, MTime = 1L << 36, Base256 = true }, data)
                .File("after", "a")
                .Build();
            var entries = ReadAll(tar);
            Assert.Equal((1L << 40, 3_000_000_000L, 1L << 36, 5L), (entries[0].Uid, entries[0].Gid, entries[0].MTime, entries[0].Size));
            Assert.Equal("after", entries[1].Name);
        }

        [Fact]
        public void A_negative_base_256_number_is_refused()
        {
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header { Name = "neg", Patch = h => Array.Fill(h, (byte)0xFF, 108, 8) }).Build();
            var e = Refused(tar);
            Assert.Equal("LayerTarCorrupt", e.ErrorId);
            Assert.Contains("negative uid", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void A_base_256_number_past_64_bits_is_refused()
        {
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header
            {
                Name = "huge",
                Patch = h =>
                {
                    h[136] = 0x80 | 0x3F;
                    Array.Fill(h, (byte)0xFF, 137, 11);
                },
            }).Build();
            Assert.Contains("mtime too large", Refused(tar).Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Octal_fields_may_be_space_padded_and_a_non_octal_digit_is_refused()
        {
            byte[] spaced = new TarBuilder().Add(new TarBuilder.Header
            {
                Name = "spaced",
                Patch = h => Encoding.ASCII.GetBytes("  1750 \0").CopyTo(h, 108),
            }).Build();
            Assert.Equal(1000L, ReadAll(spaced)[0].Uid);

            byte[] nine = new TarBuilder().Add(new TarBuilder.Header { Name = "nine", Patch = h => h[124 + 10] = (byte)'9' }).Build();
            Assert.Contains("invalid size field", Refused(nine).Message, StringComparison.Ordinal);
        }

        [Fact]
        public void A_header_checksum_error_is_refused_and_a_signed_checksum_is_taken()
        {
            Assert.Equal("LayerTarCorrupt", Refused(new TarBuilder().Add(new TarBuilder.Header { Name = "x", Checksum = 1234 }).Build()).ErrorId);

            // Old writers summed the header as signed bytes: a name with bytes >= 0x80 makes the sums differ.
            byte[] probe = new TarBuilder().Add(new TarBuilder.Header { Name = "caf\u00e9" }).Build();
            long signed = 0, unsigned = 0;
            for (int i = 0; i < 512; i++)
            {
                byte b = i is >= 148 and < 156 ? (byte)' ' : probe[i];
                signed += (sbyte)b;
                unsigned += b;
            }
            Assert.NotEqual(unsigned, signed);
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header { Name = "caf\u00e9", Checksum = signed }).Build();
            Assert.Equal("caf\u00e9", ReadAll(tar)[0].Name);
        }

        [Fact]
        public void A_tar_without_end_blocks_ends_after_its_last_entry()
        {
            byte[] tar = new TarBuilder().File("a", "x").File("b", "yy").Build(endBlocks: false);
            Assert.Equal(0, tar.Length % 512);
            Assert.Equal(new[] { "a", "b" }, ReadAll(tar).ConvertAll(e => e.Name));
        }

        [Fact]
        public void A_tar_whose_last_entry_lacks_its_padding_ends_there()
        {
            byte[] tar = new TarBuilder().File("a", "x").Add(new TarBuilder.Header { Name = "b" }, new byte[] { 1, 2, 3 }, pad: false).Build(endBlocks: false);
            Assert.Equal(512 * 3 + 3, tar.Length);
            Assert.Equal(new[] { "a", "b" }, ReadAll(tar).ConvertAll(e => e.Name));
        }

        [Fact]
        public void One_zero_block_ends_the_archive_and_what_follows_is_not_read()
        {
            byte[] tar = new TarBuilder().File("a", "x").Raw(new byte[512]).File("hidden", "h").Build();
            Assert.Equal(new[] { "a" }, ReadAll(tar).ConvertAll(e => e.Name));
        }

        [Theory]
        [InlineData(300)]   // inside the first header
        [InlineData(1100)]  // inside the second header
        public void A_stream_that_ends_inside_a_header_is_refused(int length)
        {
            byte[] tar = new TarBuilder().File("a", "x").File("b", "y").Build();
            var e = Refused(tar[..length]);
            Assert.Equal("LayerTarCorrupt", e.ErrorId);
            Assert.Contains("inside a header", e.Message, StringComparison.Ordinal);
        }

        [Theory]
        [InlineData(false)]
        [InlineData(true)]
        public void A_size_past_the_end_of_the_stream_is_refused(bool seek)
        {
            byte[] tar = new TarBuilder().File("init", "#!/init\n").Add(new TarBuilder.Header { Name = "x", Size = 1L << 30 }, new byte[] { 1 }).Build();
            var e = Assert.Throws<InitramfsException>(() => ReadAll(tar, seek));
            Assert.Contains("inside an entry's data", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void An_old_V7_directory_is_marked_by_a_trailing_slash()
        {
            var entries = ReadAll(new TarBuilder().Add(new TarBuilder.Header { Name = "etc/", Type = '\0' }).Add(new TarBuilder.Header { Name = "file", Type = '\0' }).Build());
            Assert.Equal(new[] { '5', '\0' }, entries.ConvertAll(e => e.TypeFlag));
        }

        [Fact]
        public void A_NUL_in_a_ustar_name_ends_the_name()
        {
            var entries = ReadAll(new TarBuilder().Add(new TarBuilder.Header { RawName = Encoding.ASCII.GetBytes("a\0/../../outside/x") }).Build());
            Assert.Equal("a", entries[0].Name);
        }

        public static TheoryData<byte[], int> InvalidUtf8 => new()
        {
            { new byte[] { 0x61, 0xFF, 0xFE, 0x2F, 0x78 }, 0 },
            { new byte[] { 0xC0, 0xAE, 0xC0, 0xAE, 0x2F, 0x78 }, 0 },  // an overlong '..'
            { new byte[] { 0x2F, 0xC3, 0x28 }, 157 },                 // the link name
            { new byte[] { 0x80, 0x2F, 0x61 }, 345 },                 // the ustar prefix
        };

        [Theory]
        [MemberData(nameof(InvalidUtf8))]
        public void A_name_that_is_not_valid_UTF8_is_refused(byte[] bytes, int field)
        {
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header { Name = "victim", Type = '2', LinkName = "init", Patch = h => bytes.CopyTo(h, field) }).Build();
            Assert.Equal("LayerEntryNameInvalid", Refused(tar).ErrorId);
        }

        [Theory]
        [InlineData(0)]
        [InlineData(3)]
        [InlineData(700)]
        public void A_reader_of_the_data_sees_exactly_the_entry_and_the_next_header_is_found_whatever_it_read(int read)
        {
            byte[] data = new byte[700];
            new Random(7).NextBytes(data);
            byte[] tar = new TarBuilder().Add(new TarBuilder.Header { Name = "f" }, data).File("g", "g").Build();
            var reader = new TarReader(new MemoryStream(tar));
            byte[]? seen = null;
            var first = reader.Next((h, s) =>
            {
                var buffer = new byte[1000];
                int total = 0;
                int n;
                while (total < read && (n = s.Read(buffer, total, Math.Min(read - total, 100))) > 0)
                {
                    total += n;
                }
                if (read == 700)
                {
                    Assert.Equal(0, s.Read(buffer, total, 100));
                }
                seen = buffer[..total];
            });
            Assert.Equal("f", first!.Name);
            Assert.Equal(data[..read], seen);
            Assert.Equal("g", reader.Next()!.Name);
            Assert.Null(reader.Next());
        }

        [Fact]
        public void Seeking_past_the_data_reads_the_same_headers_as_reading_it()
        {
            byte[] tar = new TarBuilder()
                .Pax("path", new string('p', 200))
                .Add(new TarBuilder.Header { Name = "x" }, new byte[5000])
                .GnuLong('L', new string('q', 300))
                .File("y", "y")
                .Directory("d/")
                .Build(endBlocks: false);
            var read = ReadAll(tar);
            var sought = ReadAll(tar, seek: true);
            Assert.Equal(3, read.Count);
            Assert.Equal(read.ConvertAll(h => (h.Name, h.Size, h.DataOffset)), sought.ConvertAll(h => (h.Name, h.Size, h.DataOffset)));
        }

        [Fact]
        public void ReadAll_hands_over_every_header_and_stops_when_cancelled()
        {
            var builder = new TarBuilder();
            for (int i = 0; i < 2100; i++)
            {
                builder.Add(new TarBuilder.Header { Name = $"f{i}" });
            }
            byte[] tar = builder.Build();
            int count = 0, progress = 0;
            TarReader.ReadAll(new MemoryStream(tar), _ => count++, () => progress++, CancellationToken.None);
            Assert.Equal((2100, 2), (count, progress));

            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.ThrowsAny<OperationCanceledException>(() => TarReader.ReadAll(new MemoryStream(tar), _ => { }, null, cancelled.Token));
        }
    }
}
