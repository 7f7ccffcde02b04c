using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// What each blob of the cache is and which cached images use it, from the small JSON blobs
    /// (image indexes, manifests, configs: at most 4 MiB each, a read budget in all) and the
    /// recorded tags; layers are never read. A cached image is a manifest in the cache (named by
    /// the tags that point at it or at an index that lists it), or a config no manifest names (a
    /// <c>docker save</c> import); it uses its config, its layers, and its layers' diff_ids.
    /// </summary>
    internal sealed class CacheGraph
    {
        private readonly Dictionary<Digest, CacheEntryKind> kinds = new();
        private readonly Dictionary<Digest, string> descriptions = new();
        private readonly Dictionary<Digest, SortedSet<string>> users = new();

        public CacheEntryKind KindOf(Digest digest) => kinds.TryGetValue(digest, out var kind) ? kind : CacheEntryKind.Unknown;

        public string? DescriptionOf(Digest digest) => descriptions.TryGetValue(digest, out string? d) ? d : null;

        public IReadOnlyList<string> UsersOf(Digest digest) => users.TryGetValue(digest, out var u) ? u.ToList() : Array.Empty<string>();

        public IReadOnlyDictionary<Digest, string> Descriptions => descriptions;

        /// <summary>Reads the graph of the blobs <paramref name="blobs"/> (digest, file, size) of the cache's main area.</summary>
        public static CacheGraph Build(BlobStore store, IEnumerable<(Digest Digest, string Path, long Size)> blobs, long readBudget = 64 << 20)
        {
            var graph = new CacheGraph();
            var present = new HashSet<Digest>();
            // Names of images: the tags that point at a manifest or index.
            var names = new Dictionary<Digest, List<string>>();
            try
            {
                foreach (var r in CacheInventory.ListReferences(store))
                {
                    if (!names.TryGetValue(r.Digest, out var list))
                    {
                        names[r.Digest] = list = new List<string>();
                    }
                    list.Add(r.FamiliarName);
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
            var indexed = new HashSet<Digest>();
            foreach (var (digest, path, size) in blobs)
            {
                present.Add(digest);
                if (File.Exists(store.IndexPathOf(digest)))
                {
                    indexed.Add(digest);
                }
                if (size > 4 << 20 || size < 2 || read + size > readBudget)
                {
                    continue;
                }
                byte[]? bytes = ReadJson(path);
                if (bytes is null)
                {
                    continue;
                }
                read += bytes.Length;
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
                                indexChildren.Add((digest, child, platform));
                            }
                        }
                    }
                    else if (root.TryGetProperty("config", out var config) && root.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
                    {
                        if (DigestOf(config) is { } configDigest)
                        {
                            manifestChildren.Add((digest, configDigest, layers.EnumerateArray().Select(DigestOf).OfType<Digest>().ToList()));
                        }
                    }
                    else if (root.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
                        && rootfs.TryGetProperty("diff_ids", out var diffIds) && diffIds.ValueKind == JsonValueKind.Array)
                    {
                        configChildren.Add((digest, diffIds.EnumerateArray()
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
                catch (InitramfsException)
                {
                    // A platform the parser refuses: the blob stays unplaced.
                }
            }

            string Short(Digest d) => $"image {d.Algorithm}:{d.ShortHex}";
            List<string> NamesOf(Digest image) => names.TryGetValue(image, out var n) && n.Count > 0 ? n : new List<string> { Short(image) };
            foreach (var (parent, _, _) in indexChildren)
            {
                graph.Set(parent, CacheEntryKind.ImageIndex, $"image index of {NamesOf(parent)[0]}", NamesOf(parent));
            }
            // A manifest an index lists is named by the index's tags, with its platform, unless a tag names it.
            var tagged = new HashSet<Digest>(names.Where(n => n.Value.Count > 0).Select(n => n.Key));
            foreach (var (parent, child, platform) in indexChildren)
            {
                if (tagged.Contains(child))
                {
                    continue;
                }
                if (!names.TryGetValue(child, out var list))
                {
                    names[child] = list = new List<string>();
                }
                foreach (string name in NamesOf(parent))
                {
                    string withPlatform = name + (platform is null ? string.Empty : $" ({platform})");
                    if (!list.Contains(withPlatform))
                    {
                        list.Add(withPlatform);
                    }
                }
            }
            var configUsers = new Dictionary<Digest, List<string>>();
            foreach (var (manifest, config, layers) in manifestChildren)
            {
                var imageNames = NamesOf(manifest);
                graph.Set(manifest, CacheEntryKind.Manifest, $"manifest of {imageNames[0]}", imageNames);
                graph.Set(config, CacheEntryKind.Config, $"image config of {imageNames[0]}", imageNames);
                if (!configUsers.TryGetValue(config, out var list))
                {
                    configUsers[config] = list = new List<string>();
                }
                list.AddRange(imageNames);
                for (int i = 0; i < layers.Count; i++)
                {
                    graph.Set(layers[i], CacheEntryKind.Layer, $"layer {i + 1} of {imageNames[0]}", imageNames);
                }
            }
            foreach (var (config, diffIds) in configChildren)
            {
                // A docker archive import has no manifest: its config is the image.
                var imageNames = configUsers.TryGetValue(config, out var n) ? n : new List<string> { Short(config) };
                graph.Set(config, CacheEntryKind.Config, $"image config of {imageNames[0]}", imageNames);
                for (int i = 0; i < diffIds.Count; i++)
                {
                    // An uncompressed layer as pulled is both a layer and its own diff_id: it stays a Layer.
                    var kind = graph.KindOf(diffIds[i]) == CacheEntryKind.Layer ? CacheEntryKind.Layer : CacheEntryKind.DecompressedLayer;
                    graph.Set(diffIds[i], kind, $"uncompressed layer {i + 1} of {imageNames[0]}", imageNames);
                }
            }
            foreach (var digest in indexed)
            {
                // A layer of an image read from a layout directory: expanded into the cache, with no manifest here.
                if (!graph.kinds.ContainsKey(digest))
                {
                    graph.Set(digest, CacheEntryKind.DecompressedLayer, "uncompressed layer", Array.Empty<string>());
                }
            }
            // Only what is present is described: a manifest may name blobs the cache does not hold.
            foreach (var digest in graph.kinds.Keys.Where(d => !present.Contains(d)).ToList())
            {
                graph.kinds.Remove(digest);
                graph.descriptions.Remove(digest);
                graph.users.Remove(digest);
            }
            return graph;
        }

        private void Set(Digest digest, CacheEntryKind kind, string description, IEnumerable<string> imageNames)
        {
            // The first word stands, except that a blob some manifest lists is a Layer whatever else names it.
            if (!kinds.TryAdd(digest, kind) && kind == CacheEntryKind.Layer)
            {
                kinds[digest] = kind;
            }
            descriptions.TryAdd(digest, description);
            if (!users.TryGetValue(digest, out var set))
            {
                users[digest] = set = new SortedSet<string>(StringComparer.Ordinal);
            }
            set.UnionWith(imageNames);
        }

        private static byte[]? ReadJson(string path)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
                if (stream.ReadByte() != '{')
                {
                    return null;
                }
                var bytes = new byte[Math.Min(stream.Length, 4 << 20)];
                stream.Position = 0;
                stream.ReadExactly(bytes);
                return bytes;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        private static Digest? DigestOf(JsonElement descriptor) =>
            descriptor.ValueKind == JsonValueKind.Object && descriptor.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.String
                && Digest.TryParse(d.GetString(), out var digest) ? digest : null;

        private static string? StringOf(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }
}
