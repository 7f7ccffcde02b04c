using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using InitramfsPS.Errors;
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

    /// <summary>A tag the cache recorded when it was pulled: what <c>Get-OciImage -Offline</c> resolves it to.</summary>
    public sealed class CachedReference
    {
        /// <summary>Registry host[:port], e.g. <c>docker.io</c>.</summary>
        public required string Registry { get; init; }

        /// <summary>Repository path, e.g. <c>library/alpine</c>.</summary>
        public required string Repository { get; init; }

        /// <summary>The tag.</summary>
        public required string Tag { get; init; }

        /// <summary>The manifest (or index) digest the tag pointed to when last pulled.</summary>
        public required Digest Digest { get; init; }

        /// <summary><c>registry/repository:tag</c>.</summary>
        public string CanonicalName => $"{Registry}/{Repository}:{Tag}";

        /// <summary>The form a user types: <c>alpine:3.20</c> for Docker Hub's library, <c>host:port/repo:tag</c> otherwise.</summary>
        public required string FamiliarName { get; init; }

        /// <inheritdoc/>
        public override string ToString() => $"{FamiliarName}@{Digest}";
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

        /// <summary>
        /// The tags recorded by registry pulls whose manifest is still in the cache, sorted by
        /// familiar name. Looks at no more than <paramref name="maxFiles"/> directories and files of
        /// <c>refs/</c>, so a huge or damaged cache costs a bounded walk.
        /// </summary>
        public static IReadOnlyList<CachedReference> ListReferences(BlobStore store, int maxFiles = 20_000)
        {
            var found = new List<CachedReference>();
            string refs = Path.Combine(store.Root, "refs");
            if (!Directory.Exists(refs))
            {
                return found;
            }
            int seen = 0;
            foreach (string hostDir in Directory.EnumerateDirectories(refs))
            {
                // BlobStore.RefPath writes host:port as host_port; a host name never holds '_'.
                string registry = Path.GetFileName(hostDir).Replace('_', ':');
                var pending = new Stack<(string Dir, int Depth)>();
                pending.Push((hostDir, 0));
                while (pending.Count > 0 && seen < maxFiles)
                {
                    var (dir, depth) = pending.Pop();
                    foreach (string sub in Directory.EnumerateDirectories(dir))
                    {
                        if (++seen > maxFiles)
                        {
                            break;
                        }
                        if (Path.GetFileName(sub) == "_tags")
                        {
                            string repository = Path.GetRelativePath(hostDir, dir).Replace(Path.DirectorySeparatorChar, '/');
                            seen += AddTags(store, registry, repository, sub, found, maxFiles - seen);
                        }
                        else if (depth < 32)
                        {
                            pending.Push((sub, depth + 1));
                        }
                    }
                }
            }
            found.Sort((a, b) => string.CompareOrdinal(a.FamiliarName, b.FamiliarName));
            return found;
        }

        private static int AddTags(BlobStore store, string registry, string repository, string tagsDir, List<CachedReference> into, int budget)
        {
            int count = 0;
            foreach (string file in Directory.EnumerateFiles(tagsDir))
            {
                if (++count > budget)
                {
                    break;
                }
                string tag = Path.GetFileName(file);
                if (tag.EndsWith(".partial", StringComparison.Ordinal))
                {
                    continue;
                }
                ImageReference parsed;
                try
                {
                    string text = $"{registry}/{repository}:{tag}";
                    parsed = ImageReference.ParseRegistry(text, text);
                }
                catch (InitramfsException)
                {
                    continue;
                }
                if (parsed.Registry != registry || parsed.Repository != repository
                    || store.ReadRef(registry, repository, tag) is not { } digest || !store.Has(digest))
                {
                    continue;
                }
                into.Add(new CachedReference { Registry = registry, Repository = repository, Tag = tag, Digest = digest, FamiliarName = parsed.FamiliarName });
            }
            return count;
        }

        /// <summary>
        /// Says what each blob of the cache is, where the cache tells: <c>manifest of alpine:3.20</c>,
        /// <c>image config of …</c>, <c>layer 2 of …</c>, <c>uncompressed layer 1 of …</c>. It reads the
        /// small JSON blobs (manifests, indexes, configs: at most 4 MiB each, <paramref name="readBudget"/>
        /// bytes in all) and the recorded tags; layers are never read. Blobs it cannot place are absent.
        /// </summary>
        public static IReadOnlyDictionary<Digest, string> DescribeBlobs(BlobStore store, IReadOnlyList<CacheBlob> blobs, long readBudget = 64 << 20)
        {
            // Names of images: the tags that point at a manifest or index.
            var names = new Dictionary<Digest, string>();
            try
            {
                foreach (var r in ListReferences(store))
                {
                    names.TryAdd(r.Digest, r.FamiliarName);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Unreadable tag records only cost the images their names.
            }
            var indexChildren = new List<(Digest Parent, Digest Child, string? Platform)>();
            var manifestChildren = new List<(Digest Manifest, Digest Config, List<Digest> Layers)>();
            var configChildren = new List<(Digest Config, List<Digest> DiffIds)>();
            long read = 0;
            foreach (var blob in blobs)
            {
                if (blob.Size > 4 << 20 || blob.Size < 2 || read + blob.Size > readBudget)
                {
                    continue;
                }
                byte[] bytes;
                try
                {
                    using var stream = new FileStream(blob.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
                    if (stream.ReadByte() != '{')
                    {
                        continue;
                    }
                    bytes = new byte[Math.Min(stream.Length, 4 << 20)];
                    stream.Position = 0;
                    stream.ReadExactly(bytes);
                    read += bytes.Length;
                }
                catch (IOException)
                {
                    continue;
                }
                catch (UnauthorizedAccessException)
                {
                    continue;
                }
                try
                {
                    using var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
                    var root = doc.RootElement;
                    if (root.ValueKind != JsonValueKind.Object)
                    {
                        continue;
                    }
                    if (root.TryGetProperty("manifests", out var manifests) && manifests.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var m in manifests.EnumerateArray())
                        {
                            if (DigestOf(m) is { } child)
                            {
                                string? platform = m.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object
                                    ? Platform.Normalize(StringOf(p, "os") ?? string.Empty, StringOf(p, "architecture") ?? string.Empty, StringOf(p, "variant")).ToString()
                                    : null;
                                indexChildren.Add((blob.Digest, child, platform));
                            }
                        }
                    }
                    else if (root.TryGetProperty("config", out var config) && root.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
                    {
                        if (DigestOf(config) is { } configDigest)
                        {
                            manifestChildren.Add((blob.Digest, configDigest, layers.EnumerateArray().Select(DigestOf).OfType<Digest>().ToList()));
                        }
                    }
                    else if (root.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
                        && rootfs.TryGetProperty("diff_ids", out var diffIds) && diffIds.ValueKind == JsonValueKind.Array)
                    {
                        configChildren.Add((blob.Digest, diffIds.EnumerateArray()
                            .Select(d => d.ValueKind == JsonValueKind.String && Digest.TryParse(d.GetString(), out var x) ? x : (Digest?)null)
                            .OfType<Digest>().ToList()));
                    }
                }
                catch (JsonException)
                {
                }
                catch (InvalidOperationException)
                {
                }
            }

            var what = new Dictionary<Digest, string>();
            string NameOf(Digest image) => names.TryGetValue(image, out string? n) ? n : $"image {image.Algorithm}:{image.ShortHex}";
            foreach (var (parent, _, _) in indexChildren)
            {
                what.TryAdd(parent, $"image index of {NameOf(parent)}");
            }
            foreach (var (parent, child, platform) in indexChildren)
            {
                if (!names.ContainsKey(child))
                {
                    names[child] = NameOf(parent) + (platform is null ? string.Empty : $" ({platform})");
                }
            }
            var configNames = new Dictionary<Digest, string>();
            foreach (var (manifest, config, layers) in manifestChildren)
            {
                what.TryAdd(manifest, $"manifest of {NameOf(manifest)}");
                what.TryAdd(config, $"image config of {NameOf(manifest)}");
                configNames.TryAdd(config, NameOf(manifest));
                for (int i = 0; i < layers.Count; i++)
                {
                    what.TryAdd(layers[i], $"layer {i + 1} of {NameOf(manifest)}");
                }
            }
            foreach (var (config, diffIds) in configChildren)
            {
                // A docker archive import has no manifest: its config names the image.
                string image = configNames.TryGetValue(config, out string? n) ? n : $"image {config.Algorithm}:{config.ShortHex}";
                what.TryAdd(config, $"image config of {image}");
                for (int i = 0; i < diffIds.Count; i++)
                {
                    what.TryAdd(diffIds[i], $"uncompressed layer {i + 1} of {image}");
                }
            }
            foreach (var blob in blobs)
            {
                // A layer of an image read from a layout: expanded into the cache, with no manifest here.
                if (!what.ContainsKey(blob.Digest) && File.Exists(Layers.LayerIndex.PathFor(store, blob.Digest)))
                {
                    what[blob.Digest] = "uncompressed layer";
                }
            }
            return what;
        }

        private static Digest? DigestOf(JsonElement descriptor) =>
            descriptor.ValueKind == JsonValueKind.Object && descriptor.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.String
                && Digest.TryParse(d.GetString(), out var digest) ? digest : null;

        private static string? StringOf(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

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
            FileStream stream;
            try
            {
                stream = IO.RegularFile.OpenStream(file, 1 << 16);
            }
            catch (IO.NotRegularFileException)
            {
                return false; // a FIFO named like a blob is no blob (and reading it would wait forever)
            }
            using var _ = stream;
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
