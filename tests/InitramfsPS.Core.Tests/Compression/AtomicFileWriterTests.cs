using System;
using System.IO;
using System.Security.Cryptography;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using Xunit;

namespace InitramfsPS.Core.Tests.Compression
{
    public sealed class AtomicFileWriterTests : IDisposable
    {
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-atomic-" + Guid.NewGuid().ToString("N"));

        public AtomicFileWriterTests() => Directory.CreateDirectory(directory);

        public void Dispose() => Directory.Delete(directory, recursive: true);

        private static byte[] Content(int length)
        {
            var bytes = new byte[length];
            new Random(length).NextBytes(bytes);
            return bytes;
        }

        [Fact]
        public void The_digest_is_the_sha256_of_the_content_and_the_file_appears_only_at_commit()
        {
            byte[] content = Content(3 << 20);
            string final = Path.Combine(directory, "out.bin");
            using (var writer = new AtomicFileWriter(Path.Combine(directory, "out.partial"), 1))
            {
                writer.Write(content.AsSpan(0, 1000));
                writer.Write(content.AsSpan(1000));
                Assert.False(File.Exists(final));
                Assert.Equal(SHA256.HashData(content), writer.Sha256());
                Assert.True(writer.Commit(final, ExistingFile.Fail));
            }
            Assert.Equal(content, File.ReadAllBytes(final));
            Assert.Equal(new[] { final }, Directory.GetFiles(directory));
        }

        [Fact]
        public void Nothing_is_left_behind_when_the_writer_is_not_committed()
        {
            var ex = Assert.Throws<InvalidOperationException>((Action)(() =>
            {
                using var writer = new AtomicFileWriter(Path.Combine(directory, "out.partial"), 1 << 16);
                writer.Write(Content(100_000));
                throw new InvalidOperationException("the producer failed");
            }));
            Assert.Equal("the producer failed", ex.Message);
            Assert.Empty(Directory.GetFileSystemEntries(directory));
        }

        [Fact]
        public void Starting_over_hashes_only_what_follows()
        {
            byte[] content = Content(5000);
            using var writer = new AtomicFileWriter(Path.Combine(directory, "out.partial"), 1 << 16);
            writer.Write(Content(777));
            writer.SetLength(0);
            writer.Position = 0;
            writer.Write(content);
            Assert.Equal(SHA256.HashData(content), writer.Sha256());
            string final = Path.Combine(directory, "out.bin");
            writer.Commit(final, ExistingFile.Fail);
            Assert.Equal(content, File.ReadAllBytes(final));
        }

        [Fact]
        public void A_blob_is_stored_under_the_digest_its_writer_computed()
        {
            var store = new BlobStore(directory);
            byte[] content = Content(70_000);
            string path;
            Digest digest;
            using (var writer = store.CreateWriter())
            {
                writer.Write(content, content.Length);
                digest = writer.Digest;
                path = writer.Commit();
            }
            Assert.Equal(Digest.FromSha256(SHA256.HashData(content)), digest);
            Assert.Equal(store.PathOf(digest), path);
            Assert.Equal(content, File.ReadAllBytes(path));
            Assert.Empty(Directory.GetFiles(Path.Combine(directory, "tmp")));
        }

        [Fact]
        public void A_blob_committed_under_another_sha256_is_refused_and_not_stored()
        {
            var store = new BlobStore(directory);
            var other = Digest.FromSha256(SHA256.HashData(new byte[] { 1, 2, 3 }));
            using (var writer = store.CreateWriter())
            {
                writer.Write(Content(1000), 1000);
                var ex = Assert.Throws<InitramfsException>(() => writer.Commit(other));
                Assert.Equal("DigestMismatch", ex.ErrorId);
            }
            Assert.False(File.Exists(store.PathOf(other)));
            Assert.Empty(Directory.GetFiles(Path.Combine(directory, "tmp")));
        }
    }
}
