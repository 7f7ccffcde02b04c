using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using InitramfsPS.IO;
using Xunit;

namespace InitramfsPS.Core.Tests.Cache
{
    /// <summary>
    /// The cache of an export's compressed parts: what comes back is what was stored, or a miss;
    /// what is damaged is a miss and goes; and the parts are entries of the cache like the others,
    /// listed, evicted and cleared.
    /// </summary>
    public sealed class PartCacheTests : IDisposable
    {
        private readonly string root = Path.Combine(Path.GetTempPath(), "initramfsps-parts-" + Guid.NewGuid().ToString("N"));

        private static CancellationToken Ct => TestContext.Current.CancellationToken;

        public void Dispose()
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }

        private static byte[] Bytes(int length, int seed)
        {
            var bytes = new byte[length];
            new Random(seed).NextBytes(bytes);
            return bytes;
        }

        /// <summary>The key of <paramref name="uncompressed"/> as an export would make it.</summary>
        private static PartKey Key(byte[] uncompressed, string codec = "zstd", int level = 3, string? compressor = null) =>
            new(SHA256.HashData(uncompressed), codec, level, compressor ?? PartKey.CompressorIdentity(codec)) { UncompressedLength = uncompressed.Length };

        /// <summary>The bytes in segments cut at <paramref name="cuts"/>, as the pipeline's chunks hold them.</summary>
        private static List<ReadOnlyMemory<byte>> Segments(byte[] bytes, params int[] cuts)
        {
            var segments = new List<ReadOnlyMemory<byte>>();
            int start = 0;
            foreach (int cut in cuts.Append(bytes.Length))
            {
                segments.Add(bytes.AsMemory(start, cut - start));
                start = cut;
            }
            return segments;
        }

        private static byte[] Whole(CachedPart part) => part.Segments.SelectMany(s => s).ToArray();

        private string RecordPath(PartKey key) => Path.Combine(root, "parts", PartRecord.NameOf(key));

        private string BlobPath(Digest digest) => Path.Combine(root, "blobs", digest.Algorithm, digest.Hex);

        private IEnumerable<string> Leftovers() =>
            Directory.Exists(root) ? Directory.EnumerateFiles(root, "*.partial", SearchOption.AllDirectories) : Enumerable.Empty<string>();

        /// <summary>Stores a part of <paramref name="compressedLength"/> bytes (not real zstd: the cache keeps what it is given) and returns its key and bytes.</summary>
        private (PartKey Key, byte[] Compressed, Digest Digest) Stored(PartCache cache, int seed, int compressedLength = 100_000, string codec = "zstd", int level = 3)
        {
            var key = Key(Bytes(3 * compressedLength, seed), codec, level);
            byte[] compressed = Bytes(compressedLength, seed + 1000);
            Digest? digest = cache.TryStore(key, Segments(compressed, compressedLength / 3), Ct);
            Assert.NotNull(digest);
            return (key, compressed, digest.Value);
        }

        [Fact]
        public void A_stored_part_comes_back_whole_as_a_blob_named_by_its_sha256()
        {
            var cache = new PartCache(new BlobStore(root));
            byte[] uncompressed = Bytes(5 << 20, 1);
            var key = Key(uncompressed);
            byte[] compressed = Bytes((5 << 19) + 123, 2);

            Digest? digest = cache.TryStore(key, Segments(compressed, 1, 4096, 1 << 20), Ct);

            Assert.Equal(Digest.Compute("sha256", compressed), digest);
            Assert.Equal(compressed, File.ReadAllBytes(BlobPath(digest!.Value)));
            Assert.True(File.Exists(RecordPath(key)));
            Assert.Empty(Leftovers());
            // A new cache on the same directory (the next export) finds it.
            var again = new PartCache(new BlobStore(root));
            Assert.True(again.TryGet(key, Ct, out var part));
            using (part)
            {
                Assert.Equal(compressed, Whole(part));
                Assert.Equal(digest, part.Digest);
                Assert.Equal(compressed.Length, part.Length);
                Assert.Equal(3, part.Segments.Count);
                Assert.All(part.Segments, s => Assert.Equal(0, s.Offset));
                part.Release(part.Segments[0].Array!);
                Assert.Throws<ArgumentException>(() => part.Release(part.Segments[0].Array!));
            }
            // The same key spelled anew (another array, another uncompressed length noted) is the same key.
            var sameKey = new PartKey((byte[])key.UncompressedSha256.Clone(), "zstd", 3, PartKey.CompressorIdentity("zstd"));
            Assert.Equal(key, sameKey);
            Assert.True(again.TryGet(sameKey, Ct, out var hit));
            hit.Dispose();
        }

        [Fact]
        public void Another_level_codec_compressor_or_content_is_a_miss_that_removes_nothing()
        {
            var cache = new PartCache(new BlobStore(root));
            var (key, compressed, _) = Stored(cache, 3);

            Assert.False(cache.TryGet(key with { Level = 4 }, Ct, out _));
            Assert.False(cache.TryGet(key with { Codec = "gzip" }, Ct, out _));
            Assert.False(cache.TryGet(key with { Codec = "gzip", Compressor = PartKey.CompressorIdentity("gzip") }, Ct, out _));
            Assert.False(cache.TryGet(key with { Compressor = "ZstdSharp 0.0.1" }, Ct, out _));
            Assert.False(cache.TryGet(Key(Bytes(10_000, 3)), Ct, out _));

            Assert.True(cache.TryGet(key, Ct, out var part));
            using (part)
            {
                Assert.Equal(compressed, Whole(part));
            }
        }

        [Fact]
        public void The_compressor_identity_names_the_library_and_is_computed_once()
        {
            string zstd = PartKey.CompressorIdentity("zstd");
            string gzip = PartKey.CompressorIdentity("gzip");
            Assert.StartsWith("ZstdSharp ", zstd, StringComparison.Ordinal);
            Assert.Contains(Environment.Version.ToString(), gzip, StringComparison.Ordinal);
            Assert.Contains("System.IO.Compression", gzip, StringComparison.Ordinal);
            Assert.Same(zstd, PartKey.CompressorIdentity("zstd"));
            Assert.NotEqual(zstd, gzip);
            Assert.Throws<ArgumentException>(() => PartKey.CompressorIdentity("xz"));
            var cache = new PartCache(new BlobStore(root));
            Assert.Throws<ArgumentException>(() => cache.TryGet(Key(Bytes(10, 1)) with { Codec = "xz" }, Ct, out _));
            Assert.Throws<ArgumentException>(() => cache.TryStore(Key(Bytes(10, 1)) with { Compressor = "two\nlines" }, Segments(Bytes(10, 2)), Ct));
        }

        [Theory]
        [InlineData("flipped")]
        [InlineData("truncated")]
        [InlineData("empty")]
        public void A_damaged_blob_is_a_miss_and_the_entry_is_gone(string damage)
        {
            var cache = new PartCache(new BlobStore(root));
            var (key, compressed, digest) = Stored(cache, 4);
            string blob = BlobPath(digest);
            byte[] bytes = File.ReadAllBytes(blob);
            switch (damage)
            {
                case "flipped":
                    bytes[bytes.Length / 2] ^= 0x10;
                    File.WriteAllBytes(blob, bytes);
                    break;
                case "truncated":
                    File.WriteAllBytes(blob, bytes[..^1]);
                    break;
                default:
                    File.WriteAllBytes(blob, Array.Empty<byte>());
                    break;
            }

            Assert.False(cache.TryGet(key, Ct, out _));

            Assert.False(File.Exists(blob));
            Assert.False(File.Exists(RecordPath(key)));
            Assert.False(File.Exists(Path.Combine(root, "used", "sha256", digest.Hex)));
            Assert.Empty(Leftovers());
            // Stored again, it is whole again.
            Assert.Equal(digest, cache.TryStore(key, Segments(compressed), Ct));
            Assert.True(cache.TryGet(key, Ct, out var part));
            part.Dispose();
        }

        [Theory]
        [InlineData("truncated")]
        [InlineData("empty")]
        [InlineData("garbage")]
        [InlineData("oversized")]
        [InlineData("another key's")]
        [InlineData("wrong length")]
        [InlineData("level spelled 03")]
        [InlineData("another check")]
        [InlineData("check spelled upper-case")]
        [InlineData("version 1, no check")]
        [InlineData("a directory")]
        public void A_bad_key_record_is_a_miss_and_is_removed_but_its_blob_stays(string kind)
        {
            var cache = new PartCache(new BlobStore(root));
            var (key, _, digest) = Stored(cache, 5);
            var (other, _, _) = Stored(cache, 6);
            string path = RecordPath(key);
            string text = File.ReadAllText(path);
            switch (kind)
            {
                case "truncated":
                    File.WriteAllText(path, text[..(text.Length / 2)]);
                    break;
                case "empty":
                    File.WriteAllText(path, string.Empty);
                    break;
                case "garbage":
                    File.WriteAllBytes(path, Bytes(300, 7));
                    break;
                case "oversized":
                    File.WriteAllText(path, text + new string('#', PartRecord.MaxSize));
                    break;
                case "another key's":
                    File.Copy(RecordPath(other), path, overwrite: true);
                    break;
                case "wrong length":
                    File.WriteAllText(path, text.Replace($" {File.ReadAllBytes(BlobPath(digest)).Length}\n", " 99\n", StringComparison.Ordinal));
                    break;
                case "level spelled 03":
                    File.WriteAllText(path, text.Replace("level 3\n", "level 03\n", StringComparison.Ordinal));
                    break;
                case "another check":
                    // Well formed, but not the BLAKE3 of the blob: the blob hashes to its name, so the record is what is wrong.
                    File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(text, "check blake3:[0-9a-f]{64}", "check blake3:" + new string('0', 64)));
                    break;
                case "check spelled upper-case":
                    File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(text, "check blake3:([0-9a-f]{64})", m => "check blake3:" + m.Groups[1].Value.ToUpperInvariant()));
                    break;
                case "version 1, no check":
                    File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(text.Replace("initramfsps-part 2\n", "initramfsps-part 1\n", StringComparison.Ordinal), "check blake3:[0-9a-f]{64}\n", string.Empty));
                    break;
                default:
                    File.Delete(path);
                    Directory.CreateDirectory(path);
                    break;
            }

            Assert.False(cache.TryGet(key, Ct, out _));

            if (kind != "a directory")
            {
                Assert.False(File.Exists(path));
            }
            Assert.True(File.Exists(BlobPath(digest)), "a blob that hashes to its name is not what was wrong");
            Assert.Empty(Leftovers());
            Assert.True(cache.TryGet(other, Ct, out var part), "the other key's entry stays");
            part.Dispose();
        }

        [Fact]
        public void A_key_record_whose_blob_is_gone_is_a_miss_and_is_removed()
        {
            var cache = new PartCache(new BlobStore(root));
            var (key, _, digest) = Stored(cache, 8);
            File.Delete(BlobPath(digest));

            Assert.False(cache.TryGet(key, Ct, out _));

            Assert.False(File.Exists(RecordPath(key)));
            Assert.Empty(Leftovers());
        }

        [Fact]
        public void The_upkeep_sweeps_key_records_whose_blob_is_gone_unless_a_running_command_leased_it()
        {
            var store = new BlobStore(root);
            var cache = new PartCache(store);
            var (gone, _, goneDigest) = Stored(cache, 9);
            var (kept, _, _) = Stored(cache, 10);
            var (leased, _, leasedDigest) = Stored(cache, 11);
            File.Delete(BlobPath(goneDigest));
            File.Delete(BlobPath(leasedDigest));
            using var lease = new CacheLease(root);
            // As a writer holds the blob it is about to commit and point its record at.
            lease.Hold(leasedDigest);

            Assert.Empty(CacheInventory.RemoveEntries(store, Array.Empty<CacheBlob>(), Ct));

            Assert.False(File.Exists(RecordPath(gone)));
            Assert.True(File.Exists(RecordPath(kept)));
            Assert.True(File.Exists(RecordPath(leased)));
        }

        [Fact]
        public void Exports_storing_the_same_key_at_once_all_succeed_and_leave_one_good_entry()
        {
            for (int round = 0; round < 10; round++)
            {
                var key = Key(Bytes(50_000, 100 + round));
                byte[] compressed = Bytes(3 << 20, 200 + round);
                var expected = Digest.Compute("sha256", compressed);
                const int Writers = 3;
                var results = new Digest?[Writers];
                var wrongHits = 0;
                var failures = new System.Collections.Concurrent.ConcurrentBag<Exception>();
                using var start = new Barrier(Writers + 1);
                var threads = new List<Thread>();
                for (int i = 0; i < Writers; i++)
                {
                    int n = i;
                    threads.Add(new Thread(() => Catch(failures, () =>
                    {
                        // Each as another process: its own store and lease.
                        using var lease = new CacheLease(root);
                        var cache = new PartCache(new BlobStore(root, lease));
                        start.SignalAndWait(Ct);
                        results[n] = cache.TryStore(key, Segments(compressed, 1 << 20, 2 << 20), Ct);
                    })));
                }
                threads.Add(new Thread(() => Catch(failures, () =>
                {
                    // And a reader of the same key meanwhile: a hit is the whole part, or it is a miss.
                    var cache = new PartCache(new BlobStore(root));
                    start.SignalAndWait(Ct);
                    for (int i = 0; i < 20; i++)
                    {
                        if (cache.TryGet(key, Ct, out var part))
                        {
                            using (part)
                            {
                                if (!Whole(part).AsSpan().SequenceEqual(compressed))
                                {
                                    Interlocked.Increment(ref wrongHits);
                                }
                            }
                        }
                    }
                })));
                threads.ForEach(t => t.Start());
                threads.ForEach(t => t.Join());

                Assert.Empty(failures);
                Assert.All(results, r => Assert.Equal(expected, r));
                Assert.Equal(0, wrongHits);
                Assert.Equal(compressed, File.ReadAllBytes(BlobPath(expected)));
                Assert.True(PartRecord.TryParse(File.ReadAllBytes(RecordPath(key)), out var record));
                Assert.Equal(expected, record.Blob);
                Assert.Empty(Leftovers());
                Assert.True(new PartCache(new BlobStore(root)).TryGet(key, Ct, out var hit));
                using (hit)
                {
                    Assert.Equal(compressed, Whole(hit));
                }
            }
            Assert.Equal(10, Directory.GetFiles(Path.Combine(root, "blobs", "sha256")).Length);
            Assert.Equal(10, Directory.GetFiles(Path.Combine(root, "parts")).Length);
        }

        [Fact]
        public void Get_OciCache_lists_a_compressed_part_with_its_codec_level_and_size_and_counts_it()
        {
            var store = new BlobStore(root);
            var cache = new PartCache(store);
            var zstd = new PartKey(SHA256.HashData(Bytes(10, 1)), "zstd", 19, PartKey.CompressorIdentity("zstd")) { UncompressedLength = 12_500_000 };
            var gzip = new PartKey(SHA256.HashData(Bytes(10, 2)), "gzip", 6, PartKey.CompressorIdentity("gzip"));
            Digest zstdDigest = cache.TryStore(zstd, Segments(Bytes(4000, 3)), Ct)!.Value;
            Digest gzipDigest = cache.TryStore(gzip, Segments(Bytes(5000, 4)), Ct)!.Value;

            var entries = CacheInventory.List(store, verify: true, Ct, _ => true).ToDictionary(e => e.Digest);

            Assert.Equal(2, entries.Count);
            var zstdEntry = entries[zstdDigest];
            Assert.Equal(CacheEntryKind.CompressedPart, zstdEntry.Kind);
            Assert.Equal("compressed part, zstd level 19, 12.5 MB uncompressed", zstdEntry.Description);
            Assert.Equal(4000, zstdEntry.Size);
            Assert.Equal(BlobPath(zstdDigest), zstdEntry.Path);
            Assert.Empty(zstdEntry.UsedBy);
            Assert.True(zstdEntry.Valid);
            Assert.Equal(CacheEntryKind.CompressedPart, entries[gzipDigest].Kind);
            Assert.Equal("compressed part, gzip level 6", entries[gzipDigest].Description);

            var summary = CacheInventory.Summarize(store, new CacheLimits(), Ct);
            Assert.Equal(2, summary.Count);
            Assert.Equal(9000, summary.Size);
            Assert.Equal(2, summary.UnusedCount);
            Assert.Equal(9000, summary.UnusedSize);
            Assert.Equal(0, summary.ImportSize);
        }

        [Fact]
        public void The_budget_evicts_the_parts_used_least_recently_and_a_hit_counts_as_a_use()
        {
            var store = new BlobStore(root);
            var cache = new PartCache(store);
            var a = Stored(cache, 20);
            var b = Stored(cache, 21);
            var c = Stored(cache, 22);
            Age(a.Digest, 3);
            Age(b.Digest, 2);
            Age(c.Digest, 1);
            // a is the oldest stored, but a hit now makes it the most recently used.
            Assert.True(cache.TryGet(a.Key, Ct, out var hit));
            hit.Dispose();

            var evicted = CacheBudget.Enforce(store, new CacheLimits { MaxSize = 150_000, ImportMaxSize = 150_000 }, Ct);

            Assert.Equal(new[] { b.Digest, c.Digest }, evicted.Select(e => e.Digest));
            Assert.False(File.Exists(RecordPath(b.Key)), "the key record of an evicted part is swept");
            Assert.False(File.Exists(RecordPath(c.Key)));
            Assert.False(cache.TryGet(b.Key, Ct, out _));
            Assert.True(cache.TryGet(a.Key, Ct, out hit));
            hit.Dispose();
        }

        [Fact]
        public void The_budget_keeps_the_parts_a_running_export_holds()
        {
            var free = Stored(new PartCache(new BlobStore(root)), 30);
            using var lease = new CacheLease(root);
            var export = new PartCache(new BlobStore(root, lease));
            var written = Stored(export, 31);
            var read = Stored(new PartCache(new BlobStore(root)), 32);
            Assert.True(export.TryGet(read.Key, Ct, out var hit));
            hit.Dispose();

            var evicted = CacheBudget.Enforce(new BlobStore(root), new CacheLimits { MaxSize = 0, ImportMaxSize = 0 }, Ct);

            Assert.Equal(new[] { free.Digest }, evicted.Select(e => e.Digest));
            Assert.True(export.TryGet(written.Key, Ct, out hit));
            hit.Dispose();
            Assert.True(export.TryGet(read.Key, Ct, out hit));
            hit.Dispose();
            Assert.True(lease.Wrote, "a stored part makes the export enforce the budget when it ends");
        }

        [Fact]
        public void Clear_OciCache_Unused_Digest_and_bare_remove_parts_with_their_records()
        {
            var store = new BlobStore(root);
            var cache = new PartCache(store);
            var a = Stored(cache, 40);
            var b = Stored(cache, 41);

            var unused = CacheInventory.ListUnused(store, Ct);
            Assert.Equal(new[] { a.Digest, b.Digest }.OrderBy(d => d.ToString(), StringComparer.Ordinal), unused.Select(e => e.Digest));
            Assert.All(unused, e => Assert.Equal(CacheEntryKind.CompressedPart, e.Kind));
            Assert.Equal(2, CacheInventory.RemoveEntries(store, unused, Ct).Count);

            Assert.False(File.Exists(BlobPath(a.Digest)));
            Assert.Empty(Directory.GetFiles(Path.Combine(root, "parts")));
            Assert.False(cache.TryGet(a.Key, Ct, out _));

            // Clear-OciCache -Digest: the blob and the record that leads to it.
            var named = Stored(cache, 43);
            Assert.Equal(RemoveOutcome.Removed, CacheInventory.Remove(store, named.Digest));
            Assert.False(File.Exists(BlobPath(named.Digest)));
            Assert.False(File.Exists(RecordPath(named.Key)));

            var c = Stored(cache, 42);
            Assert.Equal(0, CacheInventory.Clear(store));
            Assert.False(Directory.Exists(Path.Combine(root, "parts")));
            Assert.False(cache.TryGet(c.Key, Ct, out _));
        }

        [Fact]
        public void A_cache_that_cannot_be_written_stores_nothing_and_says_null()
        {
            var cache = new PartCache(new BlobStore(root));
            var key = Key(Bytes(1000, 50));
            Directory.CreateDirectory(root);
            // A file where the directory of temporary blobs goes: every write fails, as on a full or read-only disk.
            File.WriteAllText(Path.Combine(root, "tmp"), "in the way");

            Assert.Null(cache.TryStore(key, Segments(Bytes(500, 51)), Ct));
            Assert.False(Directory.Exists(Path.Combine(root, "blobs")));
            Assert.False(Directory.Exists(Path.Combine(root, "parts")));

            // The blob can be written but not its record: no record, no temporary file.
            File.Delete(Path.Combine(root, "tmp"));
            File.WriteAllText(Path.Combine(root, "parts"), "in the way");
            Assert.Null(cache.TryStore(key, Segments(Bytes(500, 51)), Ct));
            Assert.Empty(Leftovers());
            Assert.False(cache.TryGet(key, Ct, out _));
        }

        [Fact]
        public void Empty_and_oversized_parts_are_not_stored()
        {
            var cache = new PartCache(new BlobStore(root));
            var key = Key(Bytes(1000, 60));
            var megabyte = new byte[1 << 20];
            // Segments of one array: 257 MiB to the cache, 1 MiB of memory.
            var huge = Enumerable.Repeat((ReadOnlyMemory<byte>)megabyte, (int)(PartCache.MaxPartLength >> 20) + 1).ToList();

            Assert.Null(cache.TryStore(key, Array.Empty<ReadOnlyMemory<byte>>(), Ct));
            Assert.Null(cache.TryStore(key, huge, Ct));
            Assert.False(Directory.Exists(Path.Combine(root, "blobs")));
        }

        [Fact]
        public void Cancellation_is_thrown_and_leaves_no_temporary_file()
        {
            var cache = new PartCache(new BlobStore(root));
            var (key, compressed, _) = Stored(cache, 70);
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();

            Assert.Throws<OperationCanceledException>(() => cache.TryGet(key, cancelled.Token, out _));
            Assert.Throws<OperationCanceledException>(() => cache.TryStore(Key(Bytes(10, 71)), Segments(compressed), cancelled.Token));
            Assert.Empty(Leftovers());
            Assert.True(cache.TryGet(key, Ct, out var part), "a cancelled lookup removes nothing");
            part.Dispose();
        }

        /// <summary>Runs a thread's work, keeping what it throws for the test to report (a thread that throws ends the test host).</summary>
        private static void Catch(System.Collections.Concurrent.ConcurrentBag<Exception> failures, Action work)
        {
            try
            {
                work();
            }
#pragma warning disable CA1031 // Whatever it is, the test reports it.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failures.Add(ex);
            }
        }

        /// <summary>Makes a blob look stored and last used <paramref name="hours"/> hours ago.</summary>
        private void Age(Digest digest, int hours)
        {
            var then = DateTime.UtcNow.AddHours(-hours);
            File.SetLastWriteTimeUtc(BlobPath(digest), then);
            string marker = Path.Combine(root, "used", digest.Algorithm, digest.Hex);
            if (File.Exists(marker))
            {
                File.SetLastWriteTimeUtc(marker, then);
            }
        }
    }
}
