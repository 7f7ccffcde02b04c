using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Threading;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>One blob in the cache.</summary>
    public sealed class CacheBlob
    {
        /// <summary>Its digest (and file name).</summary>
        public required Digest Digest { get; init; }

        /// <summary>Size in bytes.</summary>
        public long Size { get; init; }

        /// <summary>When it was written.</summary>
        public DateTime LastWriteTime { get; init; }

        /// <summary>The file.</summary>
        public required string Path { get; init; }

        /// <summary>With -Verify: whether the bytes hash to the digest (null when not checked).</summary>
        public bool? Valid { get; init; }

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Digest} {Units.Bytes(Size)}{(Valid is false ? " CORRUPT" : string.Empty)}");
    }

    /// <summary>Lists, verifies and removes what the cache holds.</summary>
    public static class CacheInventory
    {
        /// <summary>Every blob of <paramref name="store"/>; with <paramref name="verify"/>, each one re-hashed.</summary>
        public static IEnumerable<CacheBlob> List(BlobStore store, bool verify, CancellationToken cancellationToken)
        {
            string blobs = Path.Combine(store.Root, "blobs");
            if (!Directory.Exists(blobs))
            {
                yield break;
            }
            foreach (string algorithmDir in Directory.EnumerateDirectories(blobs))
            {
                string algorithm = Path.GetFileName(algorithmDir);
                var files = new List<string>(Directory.EnumerateFiles(algorithmDir));
                files.Sort(StringComparer.Ordinal);
                foreach (string file in files)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (!Digest.TryParse(algorithm + ":" + Path.GetFileName(file), out var digest))
                    {
                        continue;
                    }
                    var info = new FileInfo(file);
                    yield return new CacheBlob
                    {
                        Digest = digest,
                        Size = info.Length,
                        LastWriteTime = info.LastWriteTime,
                        Path = file,
                        Valid = verify ? Hashes(file, digest, cancellationToken) : null,
                    };
                }
            }
        }

        /// <summary>Removes one blob; returns false when it was already gone.</summary>
        public static bool Remove(BlobStore store, Digest digest)
        {
            string path = store.PathOf(digest);
            if (!File.Exists(path))
            {
                return false;
            }
            File.Delete(path);
            // A layer index describes the tar of the same digest: without the tar it is of no use.
            Files.TryDelete(Layers.LayerIndex.PathFor(store, digest));
            return true;
        }

        /// <summary>Removes everything: blobs, tag refs, locks and temporary files.</summary>
        public static void Clear(BlobStore store)
        {
            foreach (string sub in new[] { "blobs", "index", "refs", "tmp", "locks" })
            {
                string path = Path.Combine(store.Root, sub);
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
            }
        }

        private static bool Hashes(string file, Digest digest, CancellationToken cancellationToken)
        {
            using var hash = digest.CreateHash();
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                hash.AppendData(buffer, 0, n);
            }
            return digest.Matches(hash.GetHashAndReset());
        }
    }
}
