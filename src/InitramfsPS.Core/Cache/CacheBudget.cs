using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>How large the cache may grow: the whole cache, and within it the imports area.</summary>
    internal sealed class CacheLimits
    {
        /// <summary>10 GiB: tens of images of the size microVM guests use, compressed and decompressed.</summary>
        public const long DefaultMaxSize = 10L << 30;

        /// <summary>The environment variable that sets <see cref="MaxSize"/>.</summary>
        public const string MaxSizeVariable = "INITRAMFSPS_CACHE_MAX_SIZE";

        /// <summary>The environment variable that sets <see cref="ImportMaxSize"/>.</summary>
        public const string ImportMaxSizeVariable = "INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE";

        /// <summary>The most bytes the whole cache (imports area included) keeps.</summary>
        public long MaxSize { get; init; } = DefaultMaxSize;

        /// <summary>The most bytes the imports area keeps; by default a quarter of <see cref="MaxSize"/>.</summary>
        public long ImportMaxSize { get; init; } = DefaultMaxSize / 4;

        /// <summary>What was wrong with the environment's settings (the defaults were used instead), or null.</summary>
        public string? Problem { get; init; }

        /// <summary>The limits <c>$env:INITRAMFSPS_CACHE_MAX_SIZE</c> and <c>$env:INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE</c> set.</summary>
        public static CacheLimits FromEnvironment()
        {
            var problems = new List<string>();
            long max = Read(MaxSizeVariable, DefaultMaxSize, problems);
            long imports = Read(ImportMaxSizeVariable, max / 4, problems);
            return new CacheLimits { MaxSize = max, ImportMaxSize = Math.Min(imports, max), Problem = problems.Count == 0 ? null : string.Join(" ", problems) };
        }

        private static long Read(string variable, long fallback, List<string> problems)
        {
            string? text = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrWhiteSpace(text))
            {
                return fallback;
            }
            if (TryParseSize(text, out long size))
            {
                return size;
            }
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"${variable}='{text}' is not a size (a byte count, or a number with KB, MB, GB or TB); using {fallback} bytes."));
            return fallback;
        }

        /// <summary>
        /// Reads a byte count, or a number with a unit KB, MB, GB or TB (also K, KiB, …), each a power of
        /// 1024 as in PowerShell's <c>10GB</c>; <c>$env:X = 10GB</c> stores the byte count already.
        /// </summary>
        public static bool TryParseSize(string text, out long size)
        {
            size = 0;
            string t = text.Trim();
            int split = 0;
            while (split < t.Length && (char.IsAsciiDigit(t[split]) || t[split] == '.'))
            {
                split++;
            }
            if (split == 0 || !decimal.TryParse(t[..split], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal number))
            {
                return false;
            }
            int shift = t[split..].Trim().ToUpperInvariant() switch
            {
                "" or "B" => 0,
                "K" or "KB" or "KIB" => 10,
                "M" or "MB" or "MIB" => 20,
                "G" or "GB" or "GIB" => 30,
                "T" or "TB" or "TIB" => 40,
                _ => -1,
            };
            if (shift < 0)
            {
                return false;
            }
            decimal bytes = decimal.Floor(number * (1L << shift));
            if (bytes > long.MaxValue)
            {
                return false;
            }
            size = (long)bytes;
            return true;
        }
    }

    /// <summary>
    /// One thing the cache holds that is kept or removed whole: a blob, with the layer index that
    /// describes it if it is an uncompressed layer; a decompressed part in the imports area; or a
    /// layer index whose tar is gone (worth nothing).
    /// </summary>
    internal sealed class CacheUnit
    {
        public required Digest Digest { get; init; }

        public required bool Import { get; init; }

        /// <summary>The blob; null for a layer index whose tar is gone.</summary>
        public string? BlobPath { get; init; }

        public string? IndexPath { get; init; }

        public required string MarkerPath { get; init; }

        public long BlobSize { get; init; }

        public long Size { get; init; }

        public DateTime WrittenUtc { get; init; }

        public DateTime LastUsedUtc { get; init; }

        public bool OrphanIndex => BlobPath is null;
    }

    /// <summary>What an eviction removed.</summary>
    public sealed class EvictedEntry
    {
        /// <summary>The digest of the blob (or of the tar a stray layer index described).</summary>
        public required Digest Digest { get; init; }

        /// <summary>Bytes freed.</summary>
        public long Size { get; init; }

        /// <summary>When it was last used.</summary>
        public DateTime LastUsed { get; init; }

        /// <summary>Whether it was in the imports area.</summary>
        public bool Import { get; init; }
    }

    /// <summary>
    /// Keeps the cache within <see cref="CacheLimits"/>: after work that wrote to the cache, the
    /// entries used least recently go first, never one that a running command in any process has
    /// leased (<see cref="CacheLease"/>).
    /// </summary>
    internal static class CacheBudget
    {
        /// <summary>
        /// Evicts until the imports area and the whole cache are within their limits, least recently
        /// used first (stray layer indexes before all). Returns what went; nothing when another
        /// process is evicting (it does the same work) or when everything left is leased.
        /// </summary>
        public static IReadOnlyList<EvictedEntry> Enforce(BlobStore cache, CacheLimits limits, CancellationToken cancellationToken)
        {
            var evicted = new List<EvictedEntry>();
            if (!Directory.Exists(cache.Root))
            {
                return evicted;
            }
            // The common case, a cache within its budget, takes no lock: leases go on meanwhile.
            if (WithinLimits(cache, limits, out _))
            {
                return evicted;
            }
            using var exclusive = EvictionLock.TryExclusive(cache.Root, TimeSpan.FromSeconds(5), cancellationToken);
            if (exclusive is null || WithinLimits(cache, limits, out var units))
            {
                return evicted;
            }
            long total = units.Sum(u => u.Size);
            long imports = units.Where(u => u.Import).Sum(u => u.Size);
            var leased = CacheLease.ReadLive(cache.Root, sweep: true);
            var candidates = units.Where(u => !leased.Contains(u.Digest))
                .OrderBy(u => u.OrphanIndex ? 0 : 1)
                .ThenBy(u => u.LastUsedUtc)
                .ThenBy(u => u.BlobPath ?? u.IndexPath, StringComparer.Ordinal)
                .ToList();
            var gone = new HashSet<CacheUnit>();
            var order = new List<CacheUnit>();
            foreach (var unit in candidates.Where(u => u.Import))
            {
                if (imports <= limits.ImportMaxSize)
                {
                    break;
                }
                cancellationToken.ThrowIfCancellationRequested();
                Delete(unit);
                gone.Add(unit);
                order.Add(unit);
                imports -= unit.Size;
                total -= unit.Size;
            }
            foreach (var unit in candidates)
            {
                if (total <= limits.MaxSize)
                {
                    break;
                }
                if (gone.Contains(unit))
                {
                    continue;
                }
                cancellationToken.ThrowIfCancellationRequested();
                Delete(unit);
                gone.Add(unit);
                order.Add(unit);
                total -= unit.Size;
            }
            if (order.Any(u => !u.Import))
            {
                // Key records of compressed parts whose blob went: misses now, swept while the lock is held.
                PartRecords.Sweep(cache, leased);
            }
            evicted.AddRange(order.Select(u => new EvictedEntry { Digest = u.Digest, Size = u.Size, LastUsed = u.LastUsedUtc.ToLocalTime(), Import = u.Import }));
            return evicted;
        }

        private static bool WithinLimits(BlobStore cache, CacheLimits limits, out List<CacheUnit> units)
        {
            try
            {
                units = Scan(cache);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A cache that cannot be listed cannot be trimmed either; the work that wrote to it succeeded.
                units = new List<CacheUnit>();
                return true;
            }
            return units.Sum(u => u.Size) <= limits.MaxSize && units.Where(u => u.Import).Sum(u => u.Size) <= limits.ImportMaxSize;
        }

        /// <summary>Every unit of the cache: the blobs with their layer indexes, stray indexes, and the imports area.</summary>
        internal static List<CacheUnit> Scan(BlobStore cache)
        {
            var units = new List<CacheUnit>();
            ScanArea(cache.Root, import: false, units);
            ScanArea(Path.Combine(cache.Root, BlobStore.ImportsDirectory), import: true, units);
            return units;
        }

        private static void ScanArea(string root, bool import, List<CacheUnit> units)
        {
            var indexes = new Dictionary<Digest, FileInfo>();
            if (!import)
            {
                foreach (var (digest, info) in DigestFiles(Path.Combine(root, "index")))
                {
                    indexes[digest] = info;
                }
            }
            foreach (var (digest, info) in DigestFiles(Path.Combine(root, "blobs")))
            {
                string marker = CacheUse.MarkerPath(root, digest);
                long size = info.Length;
                string? indexPath = null;
                if (indexes.Remove(digest, out var index))
                {
                    indexPath = index.FullName;
                    size += index.Length;
                }
                units.Add(new CacheUnit
                {
                    Digest = digest,
                    Import = import,
                    BlobPath = info.FullName,
                    IndexPath = indexPath,
                    MarkerPath = marker,
                    BlobSize = info.Length,
                    Size = size,
                    WrittenUtc = info.LastWriteTimeUtc,
                    LastUsedUtc = CacheUse.LastUsedUtc(marker, info.LastWriteTimeUtc),
                });
            }
            foreach (var (digest, index) in indexes)
            {
                units.Add(new CacheUnit
                {
                    Digest = digest,
                    Import = false,
                    IndexPath = index.FullName,
                    MarkerPath = CacheUse.MarkerPath(root, digest),
                    Size = index.Length,
                    WrittenUtc = index.LastWriteTimeUtc,
                    LastUsedUtc = index.LastWriteTimeUtc,
                });
            }
        }

        /// <summary>The files named <c>&lt;alg&gt;/&lt;hex&gt;</c> under <paramref name="directory"/>, sorted by digest.</summary>
        internal static IEnumerable<(Digest Digest, FileInfo Info)> DigestFiles(string directory)
        {
            if (!Directory.Exists(directory))
            {
                yield break;
            }
            var algorithms = Directory.GetDirectories(directory);
            Array.Sort(algorithms, StringComparer.Ordinal);
            foreach (string algorithmDir in algorithms)
            {
                string algorithm = Path.GetFileName(algorithmDir);
                var infos = new DirectoryInfo(algorithmDir).GetFiles();
                Array.Sort(infos, (a, b) => string.CompareOrdinal(a.Name, b.Name));
                foreach (var info in infos)
                {
                    // Temporary files (<hex>.<guid>.partial) have no digest for a name.
                    if (Digest.TryParse(algorithm + ":" + info.Name, out var digest))
                    {
                        yield return (digest, info);
                    }
                }
            }
        }

        /// <summary>
        /// Removes a unit: the layer index first, so that a process killed in between leaves a tar
        /// without an index (which the next expansion indexes again), never an index without its tar.
        /// </summary>
        internal static void Delete(CacheUnit unit)
        {
            if (unit.IndexPath is not null)
            {
                Files.TryDelete(unit.IndexPath);
            }
            if (unit.BlobPath is not null)
            {
                Files.TryDelete(unit.BlobPath);
            }
            Files.TryDelete(unit.MarkerPath);
        }
    }
}
