using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Tasks;
using InitramfsPS.Artifacts;
using InitramfsPS.Cache;
using InitramfsPS.Core.Tests.Registry;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Artifacts
{
    /// <summary>Save over a stub registry: what is joined, what is reused, and that a failure leaves no file.</summary>
    public sealed class ArtifactSaverTests : IDisposable
    {
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-saver-" + Guid.NewGuid().ToString("N"));
        private readonly byte[][] parts = { Random(3000, 1), Random(5000, 2) };

        public ArtifactSaverTests() => Directory.CreateDirectory(directory);

        public void Dispose() => Directory.Delete(directory, recursive: true);

        private static byte[] Random(int length, int seed)
        {
            var bytes = new byte[length];
            new Random(seed).NextBytes(bytes);
            return bytes;
        }

        private static string DigestOf(byte[] bytes) => "sha256:" + Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

        /// <summary>A registry holding the artifact under tag 1.0; <paramref name="serve"/> may change a blob's bytes on the way.</summary>
        private StubRegistry Registry(string? archiveDigest = null, Func<string, byte[], byte[]>? serve = null)
        {
            byte[] archive = parts.SelectMany(p => p).ToArray();
            var config = Encoding.UTF8.GetBytes($"{{\"os\":\"linux\",\"architecture\":\"amd64\",\"compression\":\"zstd\",\"entryCount\":7,\"uncompressedSize\":9000,\"archiveSize\":{archive.Length},\"archiveDigest\":\"{archiveDigest ?? DigestOf(archive)}\",\"moduleVersion\":\"0.1.0\"}}");
            var blobs = parts.Append(config).ToDictionary(DigestOf, b => b);
            var manifest = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"" + ArtifactMediaTypes.ArtifactType + "\"," +
                $"\"config\":{{\"mediaType\":\"{ArtifactMediaTypes.Config}\",\"digest\":\"{DigestOf(config)}\",\"size\":{config.Length}}},\"layers\":[" +
                string.Join(",", parts.Select(p => $"{{\"mediaType\":\"{ArtifactMediaTypes.PartZstd}\",\"digest\":\"{DigestOf(p)}\",\"size\":{p.Length}}}")) + "]}");
            return new StubRegistry((request, _) =>
            {
                string path = request.RequestUri!.AbsolutePath;
                if (path.EndsWith("/manifests/1.0", StringComparison.Ordinal))
                {
                    return StubRegistry.Ok(manifest);
                }
                string digest = path[(path.LastIndexOf('/') + 1)..];
                return blobs.TryGetValue(digest, out var bytes)
                    ? StubRegistry.Ok(serve?.Invoke(digest, bytes) ?? bytes, "application/octet-stream")
                    : StubRegistry.Json(HttpStatusCode.NotFound, "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"}]}");
            });
        }

        private Task<SaveResult> Save(StubRegistry stub, BlobStore store, string name) =>
            ArtifactSaver.SaveAsync(StubRegistry.Client(stub), ImageReference.Parse(StubRegistry.Reference), store,
                new SaveRequest { ArchivePath = Path.Combine(directory, name) }, TestContext.Current.CancellationToken);

        [Fact]
        public async Task The_parts_are_joined_in_order_and_a_second_save_reuses_them_from_the_cache()
        {
            var store = new BlobStore(Path.Combine(directory, "cache"));
            var first = Registry();
            var second = Registry();

            var saved = await Save(first, store, "a.cpio.zst");
            var again = await Save(second, store, "b.cpio.zst");

            Assert.Equal(parts.SelectMany(p => p).ToArray(), File.ReadAllBytes(saved.ArchivePath));
            Assert.Equal((2, 0, 8000L), (saved.BlobsDownloaded, saved.BlobsReused, saved.BytesDownloaded));
            Assert.Equal((0, 2, 8000L), (again.BlobsDownloaded, again.BlobsReused, again.BytesReused));
            Assert.DoesNotContain(second.Seen, s => parts.Any(p => s.Uri.AbsolutePath.EndsWith(DigestOf(p), StringComparison.Ordinal)));
            Assert.Equal(7, again.Config.EntryCount);
        }

        [Fact]
        public async Task A_part_whose_bytes_do_not_match_is_DigestMismatch_and_leaves_no_file_and_no_blob()
        {
            var store = new BlobStore(Path.Combine(directory, "cache"));
            string bad = DigestOf(parts[1]);
            var stub = Registry(serve: (digest, bytes) =>
            {
                if (digest != bad)
                {
                    return bytes;
                }
                var changed = (byte[])bytes.Clone();
                changed[10] ^= 0xFF;
                return changed;
            });

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => Save(stub, store, "a.cpio.zst"));

            Assert.Equal("DigestMismatch", ex.ErrorId);
            Assert.Contains(bad, ex.Message, StringComparison.Ordinal);
            Assert.Equal(new[] { "cache" }, Directory.GetFileSystemEntries(directory).Select(Path.GetFileName));
            Assert.False(store.Has(Digest.Parse(bad)));
        }

        [Fact]
        public async Task A_cached_part_changed_on_disk_since_it_was_verified_cannot_reach_the_archive()
        {
            var store = new BlobStore(Path.Combine(directory, "cache"));
            await Save(Registry(), store, "a.cpio.zst");
            string blob = store.PathOf(Digest.Parse(DigestOf(parts[0])));
            File.SetAttributes(blob, FileAttributes.Normal);
            var bytes = File.ReadAllBytes(blob);
            bytes[0] ^= 0xFF;
            File.WriteAllBytes(blob, bytes);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => Save(Registry(), store, "b.cpio.zst"));

            Assert.Equal("ArchiveDigestMismatch", ex.ErrorId);
            Assert.Contains("Get-OciCache -Verify", ex.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(directory, "b.cpio.zst")));
            Assert.Empty(Directory.GetFiles(directory, ".b.cpio.zst.*"));
        }

        [Fact]
        public async Task Parts_that_do_not_make_the_archive_the_config_names_are_ArchiveDigestMismatch_and_leave_no_file()
        {
            var store = new BlobStore(Path.Combine(directory, "cache"));
            var stub = Registry(archiveDigest: "sha256:" + new string('0', 64));

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => Save(stub, store, "a.cpio.zst"));

            Assert.Equal("ArchiveDigestMismatch", ex.ErrorId);
            Assert.Equal(new[] { "cache" }, Directory.GetFileSystemEntries(directory).Select(Path.GetFileName));
        }
    }
}
