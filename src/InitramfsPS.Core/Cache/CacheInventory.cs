using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Cache
{
    /// <summary>What an entry of the cache is.</summary>
    public enum CacheEntryKind
    {
        /// <summary>What the cache cannot tell (a blob no cached manifest, config or index names).</summary>
        Unknown,
        /// <summary>An image index (manifest list): the platforms of a multi-platform image.</summary>
        ImageIndex,
        /// <summary>An image manifest: the config and layers of one image.</summary>
        Manifest,
        /// <summary>An image config: the command, environment, and the layers' diff_ids.</summary>
        Config,
        /// <summary>A layer as pulled (usually compressed), named by its digest.</summary>
        Layer,
        /// <summary>A layer as an uncompressed tar, named by its diff_id, with its layer index: what expansions read.</summary>
        DecompressedLayer,
        /// <summary>
        /// A decompressed part of an archive Import-Initramfs (or Test-/Compare-Initramfs) read, in the
        /// imports area: plain cpio, kept so the archive is read without decompressing it again.
        /// </summary>
        Part,
        /// <summary>
        /// A compressed part an export wrote (one zstd frame or gzip member of some cpio), in the main
        /// area, found by a key record in <c>parts/</c>: kept so a rebuild copies it instead of
        /// compressing the same bytes again. No image uses it; the budget and <c>Clear-OciCache -Unused</c> take it.
        /// </summary>
        CompressedPart,
    }

    /// <summary>
    /// One entry of the cache: a blob (with its layer index, for a decompressed layer; a compressed
    /// part of an export is a blob too), or a decompressed part in the imports area.
    /// </summary>
    public sealed class CacheBlob
    {
        /// <summary>Its digest (and file name).</summary>
        public required Digest Digest { get; init; }

        /// <summary>What it is.</summary>
        public CacheEntryKind Kind { get; init; }

        /// <summary>Bytes of the file at <see cref="Path"/>.</summary>
        public long Size { get; init; }

        /// <summary>Bytes of the layer index kept beside a decompressed layer (0 without one): it is kept and removed with the blob.</summary>
        public long IndexSize { get; init; }

        /// <summary>When it was last used (read for a pull, expansion, export or import, or written).</summary>
        public DateTime LastUsed { get; init; }

        /// <summary>When it was written.</summary>
        public DateTime LastWriteTime { get; init; }

        /// <summary>
        /// The cached images that use it (<c>alpine:3.20</c>, or <c>image sha256:…</c> for one no tag names);
        /// for a part, the archives it was read from that are still unchanged. Empty: nothing uses it,
        /// and <c>Clear-OciCache -Unused</c> removes it.
        /// </summary>
        public IReadOnlyList<string> UsedBy { get; init; } = Array.Empty<string>();

        /// <summary>Whether a running command (of any process) uses it now; no eviction removes it then.</summary>
        public bool InUse { get; init; }

        /// <summary>What it is, in words: <c>layer 2 of alpine:3.20</c>, <c>compressed part, zstd level 19, 12.5 MB uncompressed</c>.</summary>
        public string? Description { get; init; }

        /// <summary>The file.</summary>
        public required string Path { get; init; }

        /// <summary>The layer index kept beside a decompressed layer, when there is one.</summary>
        public string? IndexPath { get; init; }

        /// <summary>With -Verify: whether the bytes hash to the digest, and a layer index loads (null when not checked).</summary>
        public bool? Valid { get; init; }

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Digest} {Kind} {Units.Bytes(Size)}{(Valid is false ? " CORRUPT" : string.Empty)}");
    }

    /// <summary>The cache as a whole: what <c>Get-OciCache -Summary</c> writes.</summary>
    public sealed class CacheSummary
    {
        /// <summary>The cache directory.</summary>
        public required string Path { get; init; }

        /// <summary>How many entries it holds.</summary>
        public int Count { get; init; }

        /// <summary>Bytes it holds in all (blobs, layer indexes and parts).</summary>
        public long Size { get; init; }

        /// <summary>The budget: evictions keep <see cref="Size"/> at most this.</summary>
        public long MaxSize { get; init; }

        /// <summary>Bytes in the imports area.</summary>
        public long ImportSize { get; init; }

        /// <summary>The budget of the imports area.</summary>
        public long ImportMaxSize { get; init; }

        /// <summary>Entries no cached image uses: what <c>Clear-OciCache -Unused</c> removes.</summary>
        public int UnusedCount { get; init; }

        /// <summary>Bytes of those entries.</summary>
        public long UnusedSize { get; init; }

        /// <summary>Entries running commands use now.</summary>
        public int InUseCount { get; init; }

        /// <summary>When the least recently used entry was last used (evicted first); null for an empty cache.</summary>
        public DateTime? OldestLastUsed { get; init; }

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Path}: {Count} entries, {Units.Bytes(Size)} of {Units.Bytes(MaxSize)}");
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

    /// <summary>What <see cref="CacheInventory.Remove"/> did.</summary>
    public enum RemoveOutcome
    {
        /// <summary>The entry was removed.</summary>
        Removed,
        /// <summary>There was no such entry.</summary>
        NotFound,
        /// <summary>A running command uses the entry: it was kept.</summary>
        InUse,
    }

    /// <summary>Lists, verifies and removes what the cache holds.</summary>
    internal static class CacheInventory
    {
        /// <summary>
        /// Every entry of the cache, sorted by digest: the blobs (a decompressed layer with its layer
        /// index; an export's compressed part, told by its key record), the parts of the imports area,
        /// and layer indexes whose tar is gone; each with what it is, the cached images that use it,
        /// when it was last used and whether a running command uses it. With <paramref name="verify"/>,
        /// each blob is re-hashed and each layer index loaded by <paramref name="indexLoads"/> (required then).
        /// </summary>
        /// <param name="store">The cache.</param>
        /// <param name="verify">Whether to re-hash each blob and load each layer index.</param>
        /// <param name="cancellationToken">Stops the listing.</param>
        /// <param name="indexLoads">
        /// Whether the layer index of a diff_id loads (<c>Layers/LayerIndex.cs</c>). The caller hands
        /// it in because what an index holds is the layers' business: the cache only knows where it lies.
        /// </param>
        public static IEnumerable<CacheBlob> List(BlobStore store, bool verify, CancellationToken cancellationToken, Func<Digest, bool>? indexLoads = null)
        {
            if (verify && indexLoads is null)
            {
                throw new ArgumentNullException(nameof(indexLoads), "Verifying the cache loads each layer index: pass how.");
            }
            var units = CacheBudget.Scan(store);
            if (units.Count == 0)
            {
                yield break;
            }
            units.Sort((a, b) => string.CompareOrdinal(a.Digest.ToString(), b.Digest.ToString()) is var c && c != 0 ? c : a.Import.CompareTo(b.Import));
            var graph = GraphOf(store, units);
            var parts = PartRecords.ByBlob(store);
            var inUse = CacheLease.ReadLive(store.Root, sweep: false);
            foreach (var unit in units)
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return ToBlob(unit, graph, parts, inUse, verify ? indexLoads : null, cancellationToken);
            }
        }

        /// <summary>The cache as a whole: sizes, budgets, and what no image uses.</summary>
        public static CacheSummary Summarize(BlobStore store, CacheLimits limits, CancellationToken cancellationToken)
        {
            var entries = List(store, false, cancellationToken).ToList();
            var unused = entries.Where(e => e.UsedBy.Count == 0 && !e.InUse).ToList();
            return new CacheSummary
            {
                Path = store.Root,
                Count = entries.Count,
                Size = entries.Sum(e => e.Size + e.IndexSize),
                MaxSize = limits.MaxSize,
                ImportSize = entries.Where(e => e.Kind == CacheEntryKind.Part).Sum(e => e.Size),
                ImportMaxSize = limits.ImportMaxSize,
                UnusedCount = unused.Count,
                UnusedSize = unused.Sum(e => e.Size + e.IndexSize),
                InUseCount = entries.Count(e => e.InUse),
                OldestLastUsed = entries.Count == 0 ? null : entries.Min(e => e.LastUsed),
            };
        }

        /// <summary>The entries no cached image uses and no running command holds: what <c>Clear-OciCache -Unused</c> removes.</summary>
        public static IReadOnlyList<CacheBlob> ListUnused(BlobStore store, CancellationToken cancellationToken) =>
            List(store, false, cancellationToken).Where(e => e.UsedBy.Count == 0 && !e.InUse).ToList();

        private static CacheGraph GraphOf(BlobStore store, List<CacheUnit> units) =>
            CacheGraph.Build(store, units.Where(u => !u.Import && u.BlobPath is not null).Select(u => (u.Digest, u.BlobPath!, u.BlobSize)));

        private static CacheBlob ToBlob(CacheUnit unit, CacheGraph graph, Dictionary<Digest, PartRecord> parts, HashSet<Digest> inUse, Func<Digest, bool>? indexLoads, CancellationToken cancellationToken)
        {
            CacheEntryKind kind;
            string? description;
            IReadOnlyList<string> usedBy;
            if (unit.Import)
            {
                kind = CacheEntryKind.Part;
                usedBy = ImportOrigins.Live(unit.MarkerPath);
                description = "decompressed part of an imported archive";
            }
            else if (unit.BlobPath is null)
            {
                kind = CacheEntryKind.Unknown;
                usedBy = Array.Empty<string>();
                description = "layer index of a tar no longer in the cache";
            }
            else if (graph.KindOf(unit.Digest) == CacheEntryKind.Unknown && parts.TryGetValue(unit.Digest, out var part))
            {
                // What an image names stays what it is (a part pushed as a layer is a layer of that
                // image); a blob only a key record leads to is an export's compressed part, which no
                // image uses.
                kind = CacheEntryKind.CompressedPart;
                usedBy = Array.Empty<string>();
                description = part.Describe();
            }
            else
            {
                kind = graph.KindOf(unit.Digest);
                usedBy = graph.UsersOf(unit.Digest);
                description = graph.DescriptionOf(unit.Digest);
            }
            bool? valid = null;
            if (indexLoads is not null)
            {
                valid = (unit.BlobPath is null || Hashes(unit.BlobPath, unit.Digest, cancellationToken))
                    && (unit.IndexPath is null || (unit.BlobPath is not null && indexLoads(unit.Digest)));
            }
            return new CacheBlob
            {
                Digest = unit.Digest,
                Kind = kind,
                Size = unit.BlobPath is null ? unit.Size : unit.BlobSize,
                IndexSize = unit.BlobPath is null ? 0 : unit.Size - unit.BlobSize,
                LastUsed = unit.LastUsedUtc.ToLocalTime(),
                LastWriteTime = unit.WrittenUtc.ToLocalTime(),
                UsedBy = usedBy,
                InUse = inUse.Contains(unit.Digest),
                Description = description,
                Path = unit.BlobPath ?? unit.IndexPath!,
                IndexPath = unit.BlobPath is null ? null : unit.IndexPath,
                Valid = valid,
            };
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
        public static IReadOnlyDictionary<Digest, string> DescribeBlobs(BlobStore store, IReadOnlyList<CacheBlob> blobs, long readBudget = 64 << 20) =>
            CacheGraph.Build(store, blobs.Where(b => b.Kind != CacheEntryKind.Part).Select(b => (b.Digest, b.Path, b.Size)), readBudget).Descriptions;


        /// <summary>
        /// Removes the entry <paramref name="digest"/> (a blob with its layer index, and a part of the
        /// same digest in the imports area), unless a running command uses it.
        /// </summary>
        public static RemoveOutcome Remove(BlobStore store, Digest digest)
        {
            using var exclusive = EvictionLock.TryExclusive(store.Root, TimeSpan.FromSeconds(30), CancellationToken.None);
            if (exclusive is not null && CacheLease.ReadLive(store.Root, sweep: true).Contains(digest))
            {
                return RemoveOutcome.InUse;
            }
            bool found = false;
            foreach (var area in new[] { store, store.Imports })
            {
                string path = area.PathOf(digest);
                string index = area.IndexPathOf(digest);
                if (File.Exists(path) || (!area.IsImportArea && File.Exists(index)))
                {
                    found = true;
                    CacheBudget.Delete(new CacheUnit { Digest = digest, Import = area.IsImportArea, BlobPath = path, IndexPath = area.IsImportArea ? null : index, MarkerPath = area.MarkerOf(digest) });
                }
            }
            if (found && exclusive is not null)
            {
                PartRecords.Sweep(store, CacheLease.ReadLive(store.Root, sweep: false));
            }
            return found ? RemoveOutcome.Removed : RemoveOutcome.NotFound;
        }

        /// <summary>
        /// Removes <paramref name="entries"/> (from <see cref="ListUnused"/>) but those a running command
        /// leased since, and the last-use markers and part key records of entries no longer there.
        /// Returns what was removed.
        /// </summary>
        public static IReadOnlyList<CacheBlob> RemoveEntries(BlobStore store, IEnumerable<CacheBlob> entries, CancellationToken cancellationToken)
        {
            var removed = new List<CacheBlob>();
            using var exclusive = EvictionLock.TryExclusive(store.Root, TimeSpan.FromSeconds(30), cancellationToken);
            if (exclusive is null)
            {
                return removed;
            }
            var inUse = CacheLease.ReadLive(store.Root, sweep: true);
            foreach (var entry in entries)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (inUse.Contains(entry.Digest))
                {
                    continue;
                }
                bool import = entry.Kind == CacheEntryKind.Part;
                var area = import ? store.Imports : store;
                CacheBudget.Delete(new CacheUnit
                {
                    Digest = entry.Digest,
                    Import = import,
                    // For a layer index whose tar is gone, Path is the index: deleting it twice does no harm.
                    BlobPath = entry.Path,
                    IndexPath = import ? null : store.IndexPathOf(entry.Digest),
                    MarkerPath = area.MarkerOf(entry.Digest),
                });
                removed.Add(entry);
            }
            SweepMarkers(store);
            SweepMarkers(store.Imports);
            PartRecords.Sweep(store, inUse);
            return removed;
        }

        /// <summary>Deletes the last-use markers whose entry is gone.</summary>
        private static void SweepMarkers(BlobStore area)
        {
            foreach (var (digest, info) in CacheBudget.DigestFiles(Path.Combine(area.Root, "used")).ToList())
            {
                if (!File.Exists(area.PathOf(digest)))
                {
                    Files.TryDelete(info.FullName);
                }
            }
        }

        /// <summary>
        /// Removes everything: blobs, layer indexes, the imports area, the key records of compressed
        /// parts, tag refs, locks and temporary files, except the entries running commands use (and
        /// the temporary files they write).
        /// Returns how many entries were kept for that reason.
        /// </summary>
        public static int Clear(BlobStore store)
        {
            using var exclusive = EvictionLock.TryExclusive(store.Root, TimeSpan.FromSeconds(30), CancellationToken.None);
            var inUse = CacheLease.ReadLive(store.Root, sweep: exclusive is not null);
            if (inUse.Count == 0)
            {
                foreach (string sub in new[] { "blobs", "index", "used", BlobStore.ImportsDirectory, BlobStore.PartsDirectory, PartRecipes.DirectoryName, "refs", "tmp", "locks" })
                {
                    string path = Path.Combine(store.Root, sub);
                    if (Directory.Exists(path))
                    {
                        Directory.Delete(path, recursive: true);
                    }
                }
                return 0;
            }
            int kept = 0;
            foreach (var unit in CacheBudget.Scan(store))
            {
                if (inUse.Contains(unit.Digest))
                {
                    kept++;
                    continue;
                }
                CacheBudget.Delete(unit);
            }
            SweepMarkers(store);
            SweepMarkers(store.Imports);
            if (exclusive is not null)
            {
                // The key records of the compressed parts just removed; those of leased blobs stay.
                PartRecords.Sweep(store, inUse);
            }
            string refs = Path.Combine(store.Root, "refs");
            if (Directory.Exists(refs))
            {
                Directory.Delete(refs, recursive: true);
            }
            // What parts are made of: worth nothing once the parts are gone, and a running export
            // that finds none compresses its parts again.
            string recipes = Path.Combine(store.Root, PartRecipes.DirectoryName);
            if (Directory.Exists(recipes))
            {
                Directory.Delete(recipes, recursive: true);
            }
            // A running command may be writing into tmp/ (and holding locks/): only leftovers go.
            Files.SweepStalePartials(Path.Combine(store.Root, "tmp"), "*.partial");
            Files.SweepStalePartials(Path.Combine(store.Imports.Root, "tmp"), "*.partial");
            return kept;
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
