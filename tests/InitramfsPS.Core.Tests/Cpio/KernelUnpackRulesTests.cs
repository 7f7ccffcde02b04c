using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Cpio;
using InitramfsPS.Errors;
using InitramfsPS.Import;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Cpio
{
    /// <summary>
    /// The importer unpacks an archive as the kernel's init/initramfs.c does: what a user would see
    /// differ in the booted VM if one of these rules were read otherwise.
    /// </summary>
    public sealed class KernelUnpackRulesTests : IDisposable
    {
        private readonly string work = Directory.CreateTempSubdirectory("initramfsps-cpio-").FullName;

        public void Dispose() => Directory.Delete(work, recursive: true);

        /// <summary>Writes records as a test wants them, mistakes included.</summary>
        private sealed class Archive
        {
            private readonly MemoryStream stream = new();
            private readonly CpioRecordWriter writer;
            private uint nextIno = 100;

            public Archive() => writer = new CpioRecordWriter(stream);

            public Archive Record(string name, uint type, uint perm = 0x1ED, byte[]? data = null, uint? ino = null, uint nlink = 1,
                uint mtime = 1_000, uint devMajor = 0, uint rdevMajor = 0, uint rdevMinor = 0)
            {
                data ??= Array.Empty<byte>();
                var header = new CpioHeader
                {
                    Ino = ino ?? nextIno++, Mode = type | perm, NLink = nlink, MTime = mtime, FileSize = (uint)data.Length, DevMajor = devMajor,
                    RDevMajor = rdevMajor, RDevMinor = rdevMinor,
                };
                writer.WriteRecord(header, Encoding.UTF8.GetBytes(name), data);
                return this;
            }

            public Archive Dir(string name, uint mtime = 1_000, uint perm = 0x1ED) => Record(name, NewcCodec.TypeDirectory, perm, mtime: mtime);

            public Archive File(string name, string text, uint? ino = null, uint nlink = 1, uint devMajor = 0) =>
                Record(name, NewcCodec.TypeFile, 0x1A4, Encoding.UTF8.GetBytes(text), ino, nlink, devMajor: devMajor);

            public Archive Trailer()
            {
                writer.WriteTrailer();
                return this;
            }

            public byte[] Bytes => stream.ToArray();
        }

        private ImportResult Import(byte[] archive)
        {
            string path = Path.Combine(work, $"{Guid.NewGuid():N}.cpio");
            System.IO.File.WriteAllBytes(path, archive);
            return InitramfsImporter.Import(path, new BlobStore(Path.Combine(work, "cache")), new ImportOptions(), CancellationToken.None);
        }

        private static string Text(RootfsEntry? entry)
        {
            Assert.NotNull(entry);
            Assert.Equal(EntryType.File, entry.Type);
            if (entry.Content is null)
            {
                return string.Empty;
            }
            using var reader = new ContentReader();
            return Encoding.UTF8.GetString(reader.ReadPrefix(entry.Content, (int)entry.Content.Length));
        }

        [Fact]
        public void A_later_entry_replaces_an_earlier_one_of_the_same_name()
        {
            var rootfs = Import(new Archive().Dir(".").File("etc", "first").File("etc", "second").Trailer().Bytes).Rootfs;
            Assert.Equal("second", Text(rootfs.GetEntry("/etc")));
        }

        [Fact]
        public void A_directory_over_a_directory_keeps_its_children_and_takes_the_later_metadata()
        {
            var result = Import(new Archive().Dir(".").Dir("d", mtime: 10).File("d/f", "x").Dir("d", mtime: 20, perm: 0x1C0).Trailer().Bytes);
            var d = result.Rootfs.GetEntry("/d");
            Assert.NotNull(d);
            Assert.Equal(20, d.MTime);
            Assert.Equal(0x1C0, d.Mode);
            Assert.Equal("x", Text(result.Rootfs.GetEntry("/d/f")));
        }

        [Fact]
        public void A_directory_keeps_its_own_mtime_when_entries_are_unpacked_into_it_later()
        {
            // The kernel sets directories' mtimes at the end (dir_utime), so their children do not touch them.
            var rootfs = Import(new Archive().Dir(".", mtime: 5).Dir("d", mtime: 7).File("d/a", "a").File("d/b", "b").Trailer().Bytes).Rootfs;
            Assert.Equal(7, rootfs.GetEntry("/d")!.MTime);
            Assert.Equal(5, rootfs.GetEntry("/")!.MTime);
        }

        [Fact]
        public void A_file_over_a_directory_that_has_children_is_dropped_with_a_note()
        {
            var result = Import(new Archive().Dir(".").Dir("d").File("d/f", "x").File("d", "not a dir").Trailer().Bytes);
            Assert.Equal(EntryType.Directory, result.Rootfs.GetEntry("/d")!.Type);
            Assert.Contains(result.Notes, n => n.Contains("'d' was dropped", StringComparison.Ordinal) && n.Contains("not empty", StringComparison.Ordinal));
        }

        [Fact]
        public void An_entry_whose_parent_is_missing_is_dropped_with_a_note()
        {
            var result = Import(new Archive().Dir(".").File("missing/f", "x").Trailer().Bytes);
            Assert.Null(result.Rootfs.GetEntry("/missing/f"));
            Assert.Contains(result.Notes, n => n.Contains("does not exist", StringComparison.Ordinal));
        }

        [Fact]
        public void Names_with_the_same_inode_and_a_link_count_above_one_are_one_file()
        {
            // GNU cpio puts the data on the last name of a group.
            var rootfs = Import(new Archive().Dir(".").File("a", "", ino: 7, nlink: 2).File("b", "shared", ino: 7, nlink: 2).Trailer().Bytes).Rootfs;
            var a = rootfs.GetEntry("/a")!;
            var b = rootfs.GetEntry("/b")!;
            Assert.NotNull(a.Hardlink);
            Assert.Same(a.Hardlink, b.Hardlink);
            Assert.Equal("shared", Text(a));
            Assert.Equal("shared", Text(b));
        }

        [Fact]
        public void The_same_inode_on_another_device_or_with_one_link_is_another_file()
        {
            var rootfs = Import(new Archive().Dir(".")
                .File("a", "a", ino: 7, nlink: 2).File("b", "", ino: 7, nlink: 2, devMajor: 1)
                .File("c", "c", ino: 8, nlink: 1).File("d", "", ino: 8, nlink: 1).Trailer().Bytes).Rootfs;
            Assert.NotSame(rootfs.GetEntry("/a")!.Hardlink, rootfs.GetEntry("/b")!.Hardlink);
            Assert.Equal(string.Empty, Text(rootfs.GetEntry("/b")));
            Assert.Null(rootfs.GetEntry("/c")!.Hardlink);
            Assert.Equal(string.Empty, Text(rootfs.GetEntry("/d")));
        }

        [Fact]
        public void A_trailer_ends_the_hardlink_groups_before_it()
        {
            var rootfs = Import(new Archive().Dir(".").File("a", "data", ino: 7, nlink: 2).Trailer()
                .File("b", "", ino: 7, nlink: 2).Trailer().Bytes).Rootfs;
            Assert.Equal("data", Text(rootfs.GetEntry("/a")));
            Assert.Equal(string.Empty, Text(rootfs.GetEntry("/b")));
            Assert.NotSame(rootfs.GetEntry("/a")!.Hardlink, rootfs.GetEntry("/b")!.Hardlink);
        }

        [Fact]
        public void Device_nodes_keep_their_numbers()
        {
            var rootfs = Import(new Archive().Dir(".").Dir("dev")
                .Record("dev/console", NewcCodec.TypeChar, 0x180, rdevMajor: 5, rdevMinor: 1)
                .Record("dev/sdb1", NewcCodec.TypeBlock, 0x1B0, rdevMajor: 8, rdevMinor: 17).Trailer().Bytes).Rootfs;
            var console = rootfs.GetEntry("/dev/console")!;
            var sdb1 = rootfs.GetEntry("/dev/sdb1")!;
            Assert.Equal((EntryType.CharDevice, 5, 1, 0x180), (console.Type, console.DevMajor, console.DevMinor, console.Mode));
            Assert.Equal((EntryType.BlockDevice, 8, 17), (sdb1.Type, sdb1.DevMajor, sdb1.DevMinor));
        }

        [Fact]
        public void A_name_longer_than_path_max_is_dropped_with_a_note()
        {
            string name = new('n', RootfsPath.PathMax);
            var result = Import(new Archive().Dir(".").File(name, "x").File("kept", "y").Trailer().Bytes);
            Assert.Equal(new[] { "/", "/kept" }, result.Rootfs.GetEntries().Select(e => e.Path));
            Assert.Contains(result.Notes, n => n.Contains("the kernel takes 1 to PATH_MAX", StringComparison.Ordinal));
        }

        [Fact]
        public void A_symlink_target_longer_than_path_max_is_dropped_with_a_note()
        {
            var target = Encoding.ASCII.GetBytes(new string('t', RootfsPath.PathMax + 1));
            var result = Import(new Archive().Dir(".").Record("link", NewcCodec.TypeSymlink, 0x1FF, target).Trailer().Bytes);
            Assert.Null(result.Rootfs.GetEntry("/link"));
            Assert.Contains(result.Notes, n => n.Contains("more than PATH_MAX", StringComparison.Ordinal));
        }

        [Fact]
        public void A_special_file_that_carries_data_is_dropped_with_a_note()
        {
            var result = Import(new Archive().Dir(".").Record("fifo", NewcCodec.TypeFifo, 0x1A4, new byte[] { 1, 2, 3, 4 }).Trailer().Bytes);
            Assert.Null(result.Rootfs.GetEntry("/fifo"));
            Assert.Contains(result.Notes, n => n.Contains("Fifo entry with 4 bytes", StringComparison.Ordinal));
        }

        [Fact]
        public void A_part_without_a_trailer_is_still_unpacked()
        {
            var rootfs = Import(new Archive().Dir(".").File("f", "x").Bytes).Rootfs;
            Assert.Equal("x", Text(rootfs.GetEntry("/f")));
        }

        [Fact]
        public void Concatenated_gzip_zstd_and_plain_parts_unpack_as_one_with_padding_between_them()
        {
            byte[] first = new Archive().Dir(".").Dir("a").File("a/x", "from gzip").File("a/y", "gzip").Trailer().Bytes;
            byte[] second = new Archive().File("a/y", "from zstd").Dir("b").Trailer().Bytes;
            byte[] third = new Archive().File("b/plain", "from plain").Trailer().Bytes;
            byte[] gzip = Gzip(first);
            byte[] zstd = new ZstdSharp.Compressor(3).Wrap(second).ToArray();
            var archive = new List<byte>(gzip);
            archive.AddRange(new byte[3]);
            archive.AddRange(zstd);
            while (archive.Count % 4 != 0)
            {
                archive.Add(0);
            }
            archive.AddRange(new byte[8]);
            int plainOffset = archive.Count;
            archive.AddRange(third);
            archive.AddRange(new byte[5]);

            var result = Import(archive.ToArray());
            Assert.Equal(new[] { "gzip", "zstd", "none" }, result.Parts.Select(p => p.Compression));
            Assert.Equal(new long[] { 0, gzip.Length + 3, plainOffset }, result.Parts.Select(p => p.Offset));
            Assert.Equal("from gzip", Text(result.Rootfs.GetEntry("/a/x")));
            Assert.Equal("from zstd", Text(result.Rootfs.GetEntry("/a/y")));
            Assert.Equal("from plain", Text(result.Rootfs.GetEntry("/b/plain")));
            Assert.Empty(result.Notes);
        }

        [Fact]
        public void A_plain_part_followed_at_an_unaligned_offset_is_refused_as_broken_padding()
        {
            byte[] plain = new Archive().Dir(".").Trailer().Bytes;
            byte[] archive = [.. plain, 0, 0, 0, 0, 0, .. Gzip(plain)];
            var e = Assert.Throws<InitramfsException>(() => Import(archive));
            Assert.Equal("ArchiveInvalid", e.ErrorId);
            Assert.Contains("broken padding", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Junk_after_the_records_inside_a_compressed_part_is_refused()
        {
            byte[] cpio = [.. new Archive().Dir(".").Trailer().Bytes, (byte)'J', (byte)'U', (byte)'N', (byte)'K'];
            var e = Assert.Throws<InitramfsException>(() => Import(Gzip(cpio)));
            Assert.Equal("ArchiveInvalid", e.ErrorId);
            Assert.Contains("junk within the compressed part", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Bytes_that_are_neither_cpio_nor_a_known_compression_are_refused()
        {
            var e = Assert.Throws<InitramfsException>(() => Import(Encoding.ASCII.GetBytes("this is no archive")));
            Assert.Equal("ArchiveInvalid", e.ErrorId);
        }

        private static byte[] Gzip(byte[] data)
        {
            using var output = new MemoryStream();
            using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
            {
                gzip.Write(data);
            }
            return output.ToArray();
        }
    }
}
