using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.Layers;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS
{
    /// <summary>
    /// The local cache of images and layers (content-addressed, shared by every process of the
    /// user). What a program reads from it or writes to it through one instance is leased, so that
    /// no eviction (in this process or another) removes it, until the instance is disposed.
    /// </summary>
    /// <remarks>
    /// The operations of <see cref="Initramfs"/> take an instance; without one they open the cache
    /// at <see cref="DefaultRoot"/> for the length of the call.
    /// </remarks>
    public sealed class InitramfsCache : IDisposable
    {
        private readonly CacheLease? lease;
        private bool limitsWarned;

        /// <summary>Opens the cache at <see cref="DefaultRoot"/>.</summary>
        public InitramfsCache()
            : this(DefaultRoot)
        {
        }

        /// <summary>Opens the cache at <paramref name="root"/> (created when first written to).</summary>
        /// <param name="root">The cache directory.</param>
        public InitramfsCache(string root)
            : this(root, leased: true)
        {
        }

        private InitramfsCache(string root, bool leased)
        {
            ArgumentException.ThrowIfNullOrEmpty(root);
            lease = leased ? new CacheLease(root) : null;
            Store = new BlobStore(root, lease);
        }

        /// <summary>
        /// Opens the cache to list or remove its entries, holding no lease: what the instance looks
        /// at is not kept from eviction or removal.
        /// </summary>
        /// <param name="root">The cache directory; <see cref="DefaultRoot"/> when null.</param>
        public static InitramfsCache OpenForUpkeep(string? root = null) => new(root ?? DefaultRoot, leased: false);

        /// <summary>
        /// Where the cache is unless told otherwise: <c>$INITRAMFSPS_CACHE</c>, else
        /// <c>$XDG_CACHE_HOME/initramfsps</c>, else <c>~/.cache/initramfsps</c>.
        /// </summary>
        public static string DefaultRoot => BlobStore.DefaultCacheRoot();

        /// <summary>The cache directory.</summary>
        public string Root => Store.Root;

        /// <summary>Called with what the cache's upkeep did (an entry evicted to keep the budget).</summary>
        public Action<string>? Verbose { get; set; }

        /// <summary>Called with what a user should know about the cache (a budget variable that cannot be read).</summary>
        public Action<string>? Warning { get; set; }

        internal BlobStore Store { get; }

        /// <summary>
        /// Leases the cache entries <paramref name="rootfs"/> reads its contents from, for as long as
        /// this instance lives, and marks them used.
        /// </summary>
        /// <param name="rootfs">A rootfs expanded or imported through any instance of the same cache.</param>
        public void Use(Rootfs rootfs)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            CacheUse.UseRootfs(Store, rootfs);
        }

        /// <summary>
        /// Evicts what was used least recently until the cache is within its budget
        /// (<c>INITRAMFSPS_CACHE_MAX_SIZE</c>, <c>INITRAMFSPS_CACHE_IMPORTS_MAX_SIZE</c>); leased
        /// entries stay.
        /// </summary>
        /// <param name="cancellationToken">Stops the scan.</param>
        /// <returns>The entries evicted.</returns>
        public IReadOnlyList<EvictedEntry> EnforceBudget(CancellationToken cancellationToken = default)
        {
            var limits = Limits();
            var evicted = CacheBudget.Enforce(Store, limits, cancellationToken);
            foreach (var entry in evicted)
            {
                Verbose?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"Evicted {entry.Digest}{(entry.Import ? " (imports area)" : string.Empty)}, {Units.Bytes(entry.Size)}, last used {entry.LastUsed:yyyy-MM-dd HH:mm}, to keep the cache within {Units.Bytes(entry.Import ? limits.ImportMaxSize : limits.MaxSize)}."));
            }
            return evicted;
        }

        /// <summary>The entries of the cache: what each is, which cached images use it, when it was last used.</summary>
        /// <param name="verify">Re-hash every blob and say in <see cref="CacheBlob.Valid"/> whether it matches its digest.</param>
        /// <param name="cancellationToken">Stops the listing.</param>
        public IEnumerable<CacheBlob> List(bool verify = false, CancellationToken cancellationToken = default)
        {
            var store = Store;
            return CacheInventory.List(store, verify, cancellationToken, diffId => LayerIndex.TryRead(store, diffId) is not null);
        }

        /// <summary>The cache as a whole against its budget, and what no image uses.</summary>
        /// <param name="cancellationToken">Stops the scan.</param>
        public CacheSummary Summarize(CancellationToken cancellationToken = default) => CacheInventory.Summarize(Store, Limits(), cancellationToken);

        /// <summary>Removes one entry, unless a running command (of any process) uses it.</summary>
        /// <param name="digest">The entry's digest, <c>sha256:…</c>; a malformed one is an error (<c>DigestInvalid</c>).</param>
        public RemoveOutcome Remove(string digest) => CacheInventory.Remove(Store, Digest.Parse(digest));

        /// <summary>The entries no cached image uses.</summary>
        /// <param name="cancellationToken">Stops the scan.</param>
        public IReadOnlyList<CacheBlob> ListUnused(CancellationToken cancellationToken = default) => CacheInventory.ListUnused(Store, cancellationToken);

        /// <summary>Removes the entries given (from <see cref="ListUnused"/>), but none a running command uses.</summary>
        /// <param name="entries">The entries to remove.</param>
        /// <param name="cancellationToken">Stops the removal between entries.</param>
        /// <returns>The entries removed.</returns>
        public IReadOnlyList<CacheBlob> Remove(IEnumerable<CacheBlob> entries, CancellationToken cancellationToken = default) =>
            CacheInventory.RemoveEntries(Store, entries, cancellationToken);

        /// <summary>Empties the cache but for the entries running commands use.</summary>
        /// <returns>How many entries stayed because they are in use.</returns>
        public int Clear() => CacheInventory.Clear(Store);

        /// <summary>The registry references whose tags the cache recorded (for completion), bounded.</summary>
        public IReadOnlyList<CachedReference> ListReferences() => CacheInventory.ListReferences(Store);

        /// <summary>
        /// The rootfs of <paramref name="image"/> when expanding it is cheap (its layers indexed in
        /// the cache, or small), else null; never fails. Remembers the last one, for tab completion.
        /// </summary>
        /// <param name="image">An image from <see cref="Initramfs.OpenImage"/>.</param>
        public Rootfs? TryExpandCheaply(OciImage image) => ExpansionMemo.TryExpand(image, Store);

        /// <summary>After an operation that wrote to the cache: keeps it within its budget.</summary>
        internal void AfterWrite(CancellationToken cancellationToken)
        {
            if (lease is null || !lease.Wrote)
            {
                return;
            }
            lease.ResetWrote();
            EnforceBudget(cancellationToken);
        }

        private CacheLimits Limits()
        {
            var limits = CacheLimits.FromEnvironment();
            if (limits.Problem is { } problem && !limitsWarned)
            {
                limitsWarned = true;
                Warning?.Invoke(problem);
            }
            return limits;
        }

        /// <summary>Releases the lease: what this instance used may be evicted again.</summary>
        public void Dispose() => lease?.Dispose();
    }
}
