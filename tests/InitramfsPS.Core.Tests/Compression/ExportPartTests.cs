using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using InitramfsPS.Compression;
using InitramfsPS.Cpio;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Compression
{
    /// <summary>
    /// Part cuts, seen only through the exporter and the bytes of the file: a compressed export is
    /// a concatenation of independently compressed parts (gzip members, zstd frames), each of which
    /// decompresses alone, ends at an entry boundary, never splits a hardlink group, and whose
    /// concatenation is exactly the cpio an uncompressed export writes. The parts are found here
    /// by parsing the formats (RFC 1952, RFC 8878), not by the engine's own part reader.
    /// </summary>
    public sealed class ExportPartTests : IDisposable
    {
        /// <summary>The part size aimed at, at the default levels (PartPipeline.DefaultPartSize).</summary>
        private const int PartSize = 4 << 20;

        private const int MiB = 1 << 20;
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-unit-" + Guid.NewGuid().ToString("N"));

        public ExportPartTests() => Directory.CreateDirectory(directory);

        public void Dispose() => Directory.Delete(directory, recursive: true);

        /// <summary>
        /// About 24 MiB of cpio: files of a little over 1 MiB, so cuts fall after a few of them, and a
        /// hardlink group whose first name carries 11 MiB, more than a part buffer: a cut is due
        /// after it, which the group's other names must hold off.
        /// </summary>
        private static Rootfs Sample()
        {
            var r = new Rootfs();
            var random = new Random(15);
            byte[] Data(int length)
            {
                // Compressible but not trivially: a 16-letter alphabet.
                var bytes = new byte[length];
                random.NextBytes(bytes);
                for (int i = 0; i < bytes.Length; i++)
                {
                    bytes[i] = (byte)('a' + (bytes[i] & 15));
                }
                return bytes;
            }
            void Dir(string path) => r.Set(new RootfsEntry { Path = path, Type = EntryType.Directory, Mode = 493 }, null);
            void File(string path, byte[] data, HardlinkGroup? group = null) =>
                r.Set(new RootfsEntry { Path = path, Type = EntryType.File, Mode = 420, Size = data.Length, Content = new InlineContent(data), Hardlink = group }, null);
            Dir("/a");
            for (int i = 0; i < 6; i++)
            {
                File($"/a/f{i:D2}", Data(MiB + 1000 + i));
            }
            Dir("/b");
            var group = new HardlinkGroup();
            byte[] shared = Data(11 * MiB);
            foreach (string name in new[] { "/b/h1", "/b/h2", "/b/h3" })
            {
                File(name, shared, group);
            }
            Dir("/c");
            for (int i = 0; i < 6; i++)
            {
                File($"/c/f{i:D2}", Data(MiB + 3 + i));
            }
            return r;
        }

        private (ExportReport Report, byte[] Bytes) Export(Rootfs rootfs, InitramfsCompression compression, int workers = 4, IPartStore? store = null)
        {
            string path = Path.Combine(directory, $"{Guid.NewGuid():N}.cpio");
            var report = InitramfsExporter.Export(rootfs, path, new ExportSettings
            {
                Compression = compression,
                Level = Compressors.DefaultLevel(compression),
                Workers = workers,
                AddDefaultEntries = false,
                AllowUnbootable = true,
                PartStore = store,
            }, CancellationToken.None);
            return (report, System.IO.File.ReadAllBytes(path));
        }

        [Theory]
        [InlineData(InitramfsCompression.Gzip)]
        [InlineData(InitramfsCompression.Zstd)]
        public void Each_part_decompresses_alone_ends_at_an_entry_and_keeps_hardlink_groups_whole(InitramfsCompression compression)
        {
            var rootfs = Sample();
            var (plainReport, cpio) = Export(rootfs, InitramfsCompression.None);
            Assert.Equal(1, plainReport.PartCount);
            var (report, file) = Export(rootfs, compression);

            var parts = (compression == InitramfsCompression.Gzip ? GzipMembers(file) : ZstdFrames(file)).ToList();
            Assert.Equal(report.PartCount, parts.Count);
            Assert.True(parts.Count >= 3, $"{parts.Count} parts");
            Assert.Equal(Convert.ToHexString(SHA256.HashData(file)).ToLowerInvariant(), report.Sha256);

            var decompressed = parts.ConvertAll(p => compression == InitramfsCompression.Gzip ? Gunzip(p) : Unzstd(p));
            Assert.Equal(cpio, decompressed.SelectMany(p => p).ToArray());
            Assert.Equal(report.UncompressedSize, cpio.Length);

            var seen = new Dictionary<uint, int>();
            for (int i = 0; i < decompressed.Count; i++)
            {
                var entries = NewcEntries(decompressed[i]);
                bool last = i == decompressed.Count - 1;
                Assert.Equal(last, entries[^1].Name == "TRAILER!!!");
                Assert.DoesNotContain(entries.SkipLast(1), e => e.Name == "TRAILER!!!");
                if (!last && entries.All(e => e.NLink == 1))
                {
                    // No cut is drawn before half the part size; an earlier one is forced only by
                    // an entry that would not fit in the part buffer, which then begins the next part.
                    var next = NewcEntries(decompressed[i + 1])[0];
                    Assert.True(decompressed[i].Length >= PartSize / 2 || decompressed[i].Length + next.FileSize > 2 * PartSize,
                        $"part {i} holds {decompressed[i].Length} bytes");
                }
                Assert.True(decompressed[i].Length <= 2 * PartSize || entries.Any(e => e.NLink > 1 || e.FileSize > PartSize),
                    $"part {i} holds {decompressed[i].Length} bytes, more than its buffer");
                foreach (var e in entries.Where(e => e.NLink > 1 && e.IsFile))
                {
                    Assert.True(!seen.TryGetValue(e.Ino, out int part) || part == i, $"'{e.Name}' is in part {i}, its first link in part {part}");
                    seen[e.Ino] = i;
                }
            }

            // The group really was under pressure: its first name is larger than a part buffer, so
            // a cut was due right after it, where the group held it off.
            var partOfGroup = decompressed.FindIndex(p => NewcEntries(p).Any(e => e.Name == "b/h2"));
            var inPart = NewcEntries(decompressed[partOfGroup]);
            Assert.True(inPart.First(e => e.Name == "b/h2").Offset > 2 * PartSize);
            Assert.Equal(new[] { "b/h1", "b/h2", "b/h3" }, inPart.Where(e => e.NLink == 3).Select(e => e.Name));
            Assert.Equal(new long[] { 11 * MiB, 0, 0 }, inPart.Where(e => e.NLink == 3).Select(e => e.FileSize));
        }

        [Theory]
        [InlineData(InitramfsCompression.Gzip)]
        [InlineData(InitramfsCompression.Zstd)]
        public void Where_parts_end_depends_on_the_content_not_on_the_worker_count(InitramfsCompression compression)
        {
            var rootfs = Sample();
            var one = Export(rootfs, compression, workers: 1);
            var many = Export(rootfs, compression, workers: 3);
            Assert.Equal(one.Report.Sha256, many.Report.Sha256);
            Assert.Equal(one.Report.PartCount, many.Report.PartCount);
            Assert.Equal(one.Bytes, many.Bytes);
        }

        [Theory]
        [InlineData(InitramfsCompression.Gzip)]
        [InlineData(InitramfsCompression.Zstd)]
        public void One_added_file_leaves_every_part_but_its_own_the_same_bytes(InitramfsCompression compression)
        {
            var rootfs = Sample();
            var before = Export(rootfs, compression);
            var changed = Sample();
            changed.Set(new RootfsEntry { Path = "/a/f02-agent", Type = EntryType.File, Mode = 493, Size = 5000, Content = new InlineContent(new byte[5000]) }, null);
            var after = Export(changed, compression);
            var split = compression == InitramfsCompression.Gzip ? (Func<byte[], IEnumerable<byte[]>>)GzipMembers : ZstdFrames;
            var old = split(before.Bytes).Select(Convert.ToHexString).ToHashSet();
            var parts = split(after.Bytes).ToList();
            int changedParts = parts.Count(p => !old.Contains(Convert.ToHexString(p)));
            Assert.True(parts.Count >= 4, $"{parts.Count} parts");
            // Its own part, and at most the next when the file pushed a boundary past the maximum.
            Assert.InRange(changedParts, 1, 2);
        }

        [Theory]
        [InlineData(InitramfsCompression.Gzip, 1)]
        [InlineData(InitramfsCompression.Gzip, 3)]
        [InlineData(InitramfsCompression.Zstd, 1)]
        [InlineData(InitramfsCompression.Zstd, 3)]
        public void Kept_parts_are_copied_and_the_archive_is_the_same_bytes_as_without_them(InitramfsCompression compression, int workers)
        {
            var rootfs = Sample();
            var cold = Export(rootfs, compression, workers);
            Assert.Equal(cold.Report.PartCount, cold.Report.PartsCompressed);
            Assert.Equal(0, cold.Report.PartsReused);

            var store = new MemoryPartStore();
            var first = Export(rootfs, compression, workers, store);
            Assert.Equal(cold.Bytes, first.Bytes);
            Assert.Equal(0, first.Report.PartsReused);
            // Parts larger than their buffer stream and are not kept (the group's 11 MiB head).
            int kept = store.Count;
            Assert.InRange(kept, first.Report.PartCount - 2, first.Report.PartCount);

            var warm = Export(rootfs, compression, 4 - workers, store);
            Assert.Equal(cold.Bytes, warm.Bytes);
            Assert.Equal(kept, warm.Report.PartsReused);
            Assert.Equal(warm.Report.PartCount - kept, warm.Report.PartsCompressed);
            Assert.True(warm.Report.BytesCompressed < first.Report.BytesCompressed / 2);

            var changed = Sample();
            changed.Set(new RootfsEntry { Path = "/c/f03", Type = EntryType.File, Mode = 420, Size = 7, Content = new InlineContent("changed"u8.ToArray()) }, null);
            var rebuilt = Export(changed, compression, workers, store);
            Assert.Equal(Export(changed, compression, workers).Bytes, rebuilt.Bytes);
            Assert.Equal(rebuilt.Report.PartCount - rebuilt.Report.PartsReused, rebuilt.Report.PartsCompressed);
            Assert.InRange(rebuilt.Report.PartsCompressed, 1, 2 + (rebuilt.Report.PartCount - kept));
            // Every buffer of every kept part handed out went back once written.
            Assert.True(store.HandedOut > 0);
            Assert.Equal(store.HandedOut, store.GivenBack);
        }

        /// <summary>A part store in memory, as the cache's is on disk.</summary>
        private sealed class MemoryPartStore : IPartStore
        {
            private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> parts = new();
            private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (byte[], long)> recipes = new();

            public int Count => parts.Count;

            public int GivenBack;

            public int HandedOut;

            // In buffers of 64 KiB, as the cache hands out its pooled buffers, so that a kept part
            // written as several segments is what these tests check.
            public KeptPart? Find(byte[] uncompressedSha256, CancellationToken cancellationToken)
            {
                if (!parts.TryGetValue(Convert.ToHexString(uncompressedSha256), out var bytes))
                {
                    return null;
                }
                var segments = bytes.Chunk(64 << 10).Select(c => new ArraySegment<byte>(c)).ToList();
                Interlocked.Add(ref HandedOut, segments.Count);
                return new KeptPart(segments, bytes.Length, _ => Interlocked.Increment(ref GivenBack), new Nothing());
            }

            private sealed class Nothing : IDisposable
            {
                public void Dispose()
                {
                }
            }

            public IPartKeeper? BeginKeep(byte[] uncompressedSha256, long uncompressedLength) => new Keeper(this, Convert.ToHexString(uncompressedSha256));

            private sealed class Keeper(MemoryPartStore store, string key) : IPartKeeper
            {
                private readonly MemoryStream bytes = new();

                public void Write(ReadOnlySpan<byte> compressed) => bytes.Write(compressed);

                public void Commit(CancellationToken cancellationToken) => store.parts[key] = bytes.ToArray();

                public void Dispose()
                {
                }
            }

            public (byte[] Sha256, long Length)? Recall(byte[] recipe) =>
                recipes.TryGetValue(Convert.ToHexString(recipe), out var known) ? known : null;

            public void Remember(byte[] recipe, byte[] uncompressedSha256, long length) =>
                recipes[Convert.ToHexString(recipe)] = (uncompressedSha256, length);

            public int Recalled => recipes.Count;
        }

        [Fact]
        public void A_part_found_from_its_recipe_is_copied_without_reading_its_entries()
        {
            // Twelve 1 MiB files read from one backing file through its block digests, as a
            // layer's files are.
            string backing = Path.Combine(directory, "layer.bin");
            var random = new Random(16);
            var data = new byte[12 * MiB];
            random.NextBytes(data);
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (byte)('a' + (data[i] & 15));
            }
            System.IO.File.WriteAllBytes(backing, data);
            using var hasher = new BlockHasher();
            hasher.Append(data);
            var blocks = new BlockDigests(backing, data.Length, hasher.Finish(), BlockOwner.LayoutBlob, "layer");
            var r = new Rootfs();
            r.Set(new RootfsEntry { Path = "/d", Type = EntryType.Directory, Mode = 493 }, null);
            for (int i = 0; i < 12; i++)
            {
                r.Set(new RootfsEntry { Path = $"/d/f{i:D2}", Type = EntryType.File, Mode = 420, Size = MiB, Content = new FileRangeContent(blocks, (long)i * MiB, MiB) }, null);
            }
            var store = new MemoryPartStore();
            var first = Export(r, InitramfsCompression.Zstd, 2, store);
            Assert.True(first.Report.PartCount >= 2, $"{first.Report.PartCount} parts");
            Assert.Equal(first.Report.PartCount, store.Recalled);

            // One byte of f05 changes on disk, its length does not: any read of it now fails its
            // block check. Found from their recipes, the parts are copied and nothing is read.
            using (var file = new FileStream(backing, FileMode.Open, FileAccess.Write))
            {
                file.Position = (5L * MiB) + 100;
                file.WriteByte((byte)(data[(5 * MiB) + 100] ^ 0x7F));
            }
            var again = Export(r, InitramfsCompression.Zstd, 2, store);
            Assert.Equal(first.Bytes, again.Bytes);
            Assert.Equal(again.Report.PartCount, again.Report.PartsReused);
            Assert.Equal(0, again.Report.PartsCompressed);
            Assert.Equal(0, again.Report.BytesCompressed);
            Assert.Equal(first.Report.UncompressedSize, again.Report.UncompressedSize);

            var refused = Assert.Throws<InitramfsException>(() => Export(r, InitramfsCompression.Zstd, 2));
            Assert.Equal("LayerContentChanged", refused.ErrorId);
        }

        [Fact]
        public void A_small_archive_is_one_part()
        {
            var r = new Rootfs();
            r.Set(new RootfsEntry { Path = "/init", Type = EntryType.File, Mode = 493, Size = 10, Content = new InlineContent("#!/bin/sh\n"u8) }, null);
            var (report, file) = Export(r, InitramfsCompression.Zstd);
            Assert.Equal(1, report.PartCount);
            Assert.Single(ZstdFrames(file));
            Assert.Equal(new[] { ".", "init", "TRAILER!!!" }, NewcEntries(Unzstd(file)).Select(e => e.Name));
        }

        private sealed record NewcEntry(string Name, uint Ino, uint NLink, long FileSize, bool IsFile, long Offset);

        /// <summary>The entries of a run of newc records, which must end exactly at the end of <paramref name="cpio"/>.</summary>
        private static List<NewcEntry> NewcEntries(byte[] cpio)
        {
            var entries = new List<NewcEntry>();
            long at = 0;
            while (at < cpio.Length)
            {
                Assert.True(cpio.Length - at >= 110, $"a header torn at {at}");
                Assert.Equal("070701", Encoding.ASCII.GetString(cpio, (int)at, 6));
                uint Field(int k) => Convert.ToUInt32(Encoding.ASCII.GetString(cpio, (int)at + 6 + 8 * k, 8), 16);
                uint mode = Field(1);
                uint nlink = Field(4);
                long size = Field(6);
                int nameSize = (int)Field(11);
                string name = Encoding.UTF8.GetString(cpio, (int)at + 110, nameSize - 1);
                entries.Add(new NewcEntry(name, Field(0), nlink, size, (mode & 0xF000) == 0x8000, at));
                long dataAt = Align4(at + 110 + nameSize);
                at = Align4(dataAt + size);
                Assert.True(at <= cpio.Length, $"'{name}' runs past the end of its part");
            }
            return entries;
        }

        private static long Align4(long n) => (n + 3) & ~3L;

        /// <summary>
        /// The gzip members of the file: each begins with the header the exporter writes (deflate,
        /// no flags, MTIME 0, OS 3), and is checked to be one whole member by its trailer's ISIZE.
        /// </summary>
        private static IEnumerable<byte[]> GzipMembers(byte[] file)
        {
            var starts = new List<int>();
            for (int i = 0; i + 10 <= file.Length; i++)
            {
                if (file[i] == 0x1F && file[i + 1] == 0x8B && file[i + 2] == 8 && file[i + 3] == 0
                    && file[i + 4] == 0 && file[i + 5] == 0 && file[i + 6] == 0 && file[i + 7] == 0 && file[i + 9] == 3)
                {
                    starts.Add(i);
                }
            }
            Assert.Equal(0, starts[0]);
            starts.Add(file.Length);
            for (int k = 0; k + 1 < starts.Count; k++)
            {
                byte[] member = file[starts[k]..starts[k + 1]];
                uint isize = BitConverter.ToUInt32(member, member.Length - 4);
                Assert.Equal((uint)Gunzip(member).Length, isize);
                yield return member;
            }
        }

        private static byte[] Gunzip(byte[] member)
        {
            using var gzip = new GZipStream(new MemoryStream(member), CompressionMode.Decompress);
            var output = new MemoryStream();
            gzip.CopyTo(output);
            return output.ToArray();
        }

        /// <summary>The zstd frames of the file, found by walking their headers and block headers (RFC 8878).</summary>
        private static IEnumerable<byte[]> ZstdFrames(byte[] file)
        {
            int at = 0;
            while (at < file.Length)
            {
                int start = at;
                Assert.Equal(0xFD2FB528u, BitConverter.ToUInt32(file, at));
                at += 4;
                byte descriptor = file[at++];
                int fcsFlag = descriptor >> 6;
                bool singleSegment = (descriptor & 0x20) != 0;
                bool checksum = (descriptor & 0x04) != 0;
                int dictIdSize = new[] { 0, 1, 2, 4 }[descriptor & 3];
                int fcsSize = fcsFlag == 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
                at += (singleSegment ? 0 : 1) + dictIdSize + fcsSize;
                bool lastBlock;
                do
                {
                    int header = file[at] | (file[at + 1] << 8) | (file[at + 2] << 16);
                    at += 3;
                    lastBlock = (header & 1) != 0;
                    int type = (header >> 1) & 3;
                    int size = header >> 3;
                    Assert.NotEqual(3, type);
                    at += type == 1 ? 1 : size;
                }
                while (!lastBlock);
                at += checksum ? 4 : 0;
                Assert.True(at <= file.Length);
                yield return file[start..at];
            }
        }

        private static byte[] Unzstd(byte[] frame)
        {
            using var zstd = new ZstdSharp.DecompressionStream(new MemoryStream(frame), checkEndOfStream: true);
            var output = new MemoryStream();
            zstd.CopyTo(output);
            return output.ToArray();
        }
    }
}
