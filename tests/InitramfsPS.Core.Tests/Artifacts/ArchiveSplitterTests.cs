using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Security.Cryptography;
using System.Threading;
using InitramfsPS.Artifacts;
using InitramfsPS.Errors;
using Xunit;

namespace InitramfsPS.Core.Tests.Artifacts
{
    public sealed class ArchiveSplitterTests : IDisposable
    {
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-splitter-" + Guid.NewGuid().ToString("N"));

        public ArchiveSplitterTests() => Directory.CreateDirectory(directory);

        public void Dispose() => Directory.Delete(directory, recursive: true);

        private static byte[] Chunk(int seed, int length)
        {
            // Compressible, different per seed.
            var bytes = new byte[length];
            var random = new Random(seed);
            for (int i = 0; i < bytes.Length; i += 16)
            {
                bytes[i] = (byte)random.Next(32);
            }
            return bytes;
        }

        private static byte[] Zstd(byte[] data)
        {
            using var compressor = new ZstdSharp.Compressor(3);
            return compressor.Wrap(data).ToArray();
        }

        private static byte[] Gzip(byte[] data)
        {
            using var memory = new MemoryStream();
            using (var gzip = new GZipStream(memory, CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(data);
            }
            return memory.ToArray();
        }

        private string Write(string name, IEnumerable<byte[]> pieces)
        {
            string path = Path.Combine(directory, name);
            File.WriteAllBytes(path, pieces.SelectMany(p => p).ToArray());
            return path;
        }

        private static byte[] Join(SplitArchive split)
        {
            byte[] file = File.ReadAllBytes(split.Path);
            return split.Parts.SelectMany(p => file.AsSpan((int)p.Offset, (int)p.Length).ToArray()).ToArray();
        }

        [Fact]
        public void ZstdFramesBecomeOnePartEachAndJoinToTheFile()
        {
            var frames = Enumerable.Range(1, 5).Select(i => Zstd(Chunk(i, 200_000 + i * 1000))).ToList();
            // A skippable frame and NUL padding, which the kernel passes over, stay in the file.
            byte[] skippable = { 0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 1, 2, 3 };
            string path = Write("a.cpio.zst", frames.Take(2).Append(skippable).Concat(frames.Skip(2)).Append(new byte[7]));
            var split = ArchiveSplitter.Split(path, CancellationToken.None);
            Assert.Equal("zstd", split.Compression);
            Assert.Equal(6, split.Parts.Count);
            Assert.All(split.Parts, p => Assert.Equal(ArtifactMediaTypes.PartZstd, p.MediaType));
            Assert.Equal(frames[0].Length, split.Parts[0].Length);
            Assert.Equal(skippable.Length, split.Parts[2].Length);
            Assert.Equal(frames[4].Length + 7, split.Parts[5].Length);
            Assert.Equal(File.ReadAllBytes(path), Join(split));
            Assert.Equal("sha256:" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant(), split.Digest.ToString());
            Assert.Equal("sha256:" + Convert.ToHexString(SHA256.HashData(frames[1])).ToLowerInvariant(), split.Parts[1].Digest.ToString());
        }

        [Fact]
        public void GzipMembersBecomeOnePartEachAndJoinToTheFile()
        {
            var members = Enumerable.Range(1, 4).Select(i => Gzip(Chunk(i, 300_000))).ToList();
            string path = Write("a.cpio.gz", members);
            var split = ArchiveSplitter.Split(path, CancellationToken.None);
            Assert.Equal("gzip", split.Compression);
            Assert.Equal(members.Select(m => (long)m.Length), split.Parts.Select(p => p.Length));
            Assert.All(split.Parts, p => Assert.Equal(ArtifactMediaTypes.PartGzip, p.MediaType));
            Assert.Equal(File.ReadAllBytes(path), Join(split));
        }

        [Fact]
        public void AnUncompressedArchiveIsOnePart()
        {
            byte[] cpio = System.Text.Encoding.ASCII.GetBytes("070701" + new string('0', 104) + "TRAILER!!!\0\0");
            string path = Write("a.cpio", new[] { cpio });
            var split = ArchiveSplitter.Split(path, CancellationToken.None);
            Assert.Equal("none", split.Compression);
            var part = Assert.Single(split.Parts);
            Assert.Equal(ArtifactMediaTypes.PartCpio, part.MediaType);
            Assert.Equal(cpio.Length, part.Length);
        }

        public static TheoryData<string, string> Damaged => new()
        {
            { "junk between zstd frames", "ArchiveCorrupt" },
            { "a zstd frame cut short", "ArchiveTruncated" },
            { "a gzip member with a flipped byte", "ArchiveCorrupt" },
            { "a gzip member followed by zstd", "ArchiveCorrupt" },
            { "random bytes", "ArchiveInvalid" },
            { "an empty file", "ArchiveInvalid" },
        };

        [Theory]
        [MemberData(nameof(Damaged))]
        public void ADamagedArchiveIsAClearError(string what, string id)
        {
            byte[] zstd = Zstd(Chunk(1, 100_000));
            byte[] gzip = Gzip(Chunk(2, 100_000));
            byte[] flipped = (byte[])gzip.Clone();
            flipped[flipped.Length / 2] ^= 0xFF;
            byte[] random = new byte[4096];
            new Random(3).NextBytes(random);
            random[0] = 0x42;
            byte[][] pieces = what switch
            {
                "junk between zstd frames" => new[] { zstd, new byte[] { 1, 2, 3, 4, 5 }, zstd },
                "a zstd frame cut short" => new[] { zstd, zstd.AsSpan(0, zstd.Length / 2).ToArray() },
                "a gzip member with a flipped byte" => new[] { gzip, flipped },
                "a gzip member followed by zstd" => new[] { gzip, zstd },
                "random bytes" => new[] { random },
                _ => new[] { Array.Empty<byte>() },
            };
            string path = Write("damaged", pieces);
            var ex = Assert.Throws<InitramfsException>(() => ArchiveSplitter.Split(path, CancellationToken.None));
            Assert.Equal(id, ex.ErrorId);
        }
    }
}
