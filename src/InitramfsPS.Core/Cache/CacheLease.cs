using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// What one piece of work (a cmdlet, for as long as its pipeline runs) uses of the cache: the
    /// digests it reads or writes are <em>leased</em>, so that no eviction, in this process or any
    /// other, removes them while the work runs, and each is marked as used now, for the
    /// least-recently-used order of eviction.
    /// </summary>
    /// <remarks>
    /// <para>
    /// A lease is a pair of files in <c>leases/</c> of the cache: <c>&lt;pid&gt;-&lt;id&gt;.lock</c>,
    /// held open with an exclusive lock (<c>flock</c>, which .NET takes for FileShare.None) for as
    /// long as the lease lives, and <c>&lt;pid&gt;-&lt;id&gt;.lease</c>, one digest a line. An eviction
    /// tries to lock each lock file itself: that fails while the holder lives, and succeeds once the
    /// holder is gone, however it ended (the kernel drops the locks of a killed process), so a dead
    /// process's lease is deleted, not obeyed. (One file would not do: .NET locks every file it
    /// opens, so a file locked exclusively could not be read by another process.)
    /// </para>
    /// <para>
    /// The race between leasing an entry and evicting it is settled by <c>leases/evict.lock</c>:
    /// a digest is appended to the lease under a shared lock of it, an eviction runs under an
    /// exclusive one. So a digest is leased either before an eviction looks at the leases (and is
    /// kept) or after the eviction finished (and whoever leased it then finds it present or not).
    /// Callers therefore lease a digest before they look for its blob or commit it.
    /// </para>
    /// <para>
    /// Last use is the modification time of an empty marker file <c>used/&lt;alg&gt;/&lt;hex&gt;</c>,
    /// set when the entry is used: atime cannot serve, since most file systems are mounted
    /// noatime or relatime, and the blob's own modification time says when it was written.
    /// </para>
    /// </remarks>
    internal sealed class CacheLease : IDisposable
    {
        private readonly object gate = new();
        private readonly HashSet<Digest> held = new();
        private readonly HashSet<string> touched = new(StringComparer.Ordinal);
        private FileStream? file;
        private FileStream? lockFile;
        private bool disposed;
        private bool broken;

        /// <summary>A lease on the cache at <paramref name="cacheRoot"/>; its file is made at the first digest held.</summary>
        public CacheLease(string cacheRoot) => CacheRoot = Path.GetFullPath(cacheRoot);

        /// <summary>The cache directory.</summary>
        public string CacheRoot { get; }

        /// <summary>Whether a blob was committed to the cache under this lease since <see cref="ResetWrote"/>.</summary>
        public bool Wrote { get; private set; }

        internal void NoteWrite() => Wrote = true;

        /// <summary>Forgets that blobs were written (after the budget was enforced).</summary>
        public void ResetWrote() => Wrote = false;

        /// <summary>
        /// Leases <paramref name="digests"/> until this lease is disposed. Best effort: a cache that
        /// cannot be written (read-only, full) still serves reads, unprotected.
        /// </summary>
        public void Hold(IEnumerable<Digest> digests)
        {
            lock (gate)
            {
                if (disposed)
                {
                    return;
                }
                var text = new StringBuilder();
                foreach (var digest in digests)
                {
                    if (held.Add(digest))
                    {
                        text.Append(digest.ToString()).Append('\n');
                    }
                }
                if (text.Length == 0 || broken)
                {
                    return;
                }
                try
                {
                    using var shared = EvictionLock.Shared(CacheRoot);
                    if (file is null)
                    {
                        Create();
                    }
                    file!.Write(Encoding.ASCII.GetBytes(text.ToString()));
                    file.Flush();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    broken = true;
                }
            }
        }

        /// <summary>Leases one digest.</summary>
        public void Hold(Digest digest) => Hold(new[] { digest });

        /// <summary>Marks the entry at <paramref name="markerPath"/> as used now (once per lease).</summary>
        internal void Touch(string markerPath)
        {
            lock (gate)
            {
                if (disposed || !touched.Add(markerPath))
                {
                    return;
                }
            }
            CacheUse.Touch(markerPath);
        }

        private void Create()
        {
            string directory = Path.Combine(CacheRoot, "leases");
            Directory.CreateDirectory(directory);
            string name = Path.Combine(directory, $"{Environment.ProcessId}-{Guid.NewGuid():N}");
            // Made under the shared eviction lock (no sweep runs meanwhile), the lock file first: a
            // sweep only ever sees a lease whose lock is taken until its holder ends.
            lockFile = new FileStream(name + ".lock", FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            file = new FileStream(name + ".lease", FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        }

        /// <summary>Ends the lease: deletes its files and releases its lock.</summary>
        public void Dispose()
        {
            lock (gate)
            {
                if (disposed)
                {
                    return;
                }
                disposed = true;
                if (file is not null)
                {
                    Files.TryDelete(file.Name);
                    file.Dispose();
                    file = null;
                }
                if (lockFile is not null)
                {
                    Files.TryDelete(lockFile.Name);
                    lockFile.Dispose();
                    lockFile = null;
                }
            }
        }

        /// <summary>
        /// The digests leased by live holders, in this process and others. With <paramref name="sweep"/>
        /// (only under <see cref="EvictionLock.TryExclusive"/>, which no lease is made under), the files of
        /// leases whose holder died are deleted.
        /// </summary>
        internal static HashSet<Digest> ReadLive(string cacheRoot, bool sweep)
        {
            var live = new HashSet<Digest>();
            string directory = Path.Combine(cacheRoot, "leases");
            string[] locks;
            try
            {
                locks = Directory.GetFiles(directory, "*.lock");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return live;
            }
            foreach (string lockPath in locks)
            {
                if (Path.GetFileName(lockPath) == "evict.lock")
                {
                    continue;
                }
                string listPath = Path.ChangeExtension(lockPath, ".lease");
                try
                {
                    // Exclusive: it opens only when no live process holds the lease.
                    using (new FileStream(lockPath, FileMode.Open, FileAccess.Read, FileShare.None, 1, FileOptions.None))
                    {
                        if (sweep)
                        {
                            Files.TryDelete(listPath);
                            File.Delete(lockPath);
                        }
                    }
                    continue;
                }
                catch (Exception ex) when (ex is FileNotFoundException or UnauthorizedAccessException)
                {
                    continue;
                }
                catch (IOException)
                {
                    // Held by a live process: read its list.
                }
                try
                {
                    using var stream = new FileStream(listPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 12, FileOptions.None);
                    using var reader = new StreamReader(stream, Encoding.ASCII);
                    string all = reader.ReadToEnd();
                    // A line still being written has no newline yet: only whole lines count.
                    int end = all.LastIndexOf('\n');
                    foreach (string line in all[..(end + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        if (Digest.TryParse(line, out var digest))
                        {
                            live.Add(digest);
                        }
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // No list yet (nothing held), or gone since: its holder ended.
                }
            }
            return live;
        }
    }

    /// <summary>
    /// The cache-wide lock that orders leases and evictions (see <see cref="CacheLease"/>): an
    /// flock of <c>leases/evict.lock</c>, shared while a digest is leased, exclusive while an
    /// eviction decides and deletes. .NET takes it without waiting, so both poll.
    /// </summary>
    internal static class EvictionLock
    {
        private static string PathIn(string cacheRoot)
        {
            string directory = Path.Combine(cacheRoot, "leases");
            Directory.CreateDirectory(directory);
            return Path.Combine(directory, "evict.lock");
        }

        /// <summary>Waits (at most 30 s, an eviction takes far less) for the shared lock.</summary>
        public static IDisposable Shared(string cacheRoot)
        {
            string path = PathIn(cacheRoot);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    return new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
                }
                catch (IOException) when (DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(10);
                }
            }
        }

        /// <summary>The exclusive lock, or null when it stays taken for <paramref name="wait"/> (another eviction runs).</summary>
        public static IDisposable? TryExclusive(string cacheRoot, TimeSpan wait, CancellationToken cancellationToken)
        {
            string path;
            try
            {
                path = PathIn(cacheRoot);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return null;
            }
            var deadline = DateTime.UtcNow + wait;
            while (true)
            {
                try
                {
                    return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
                }
                catch (IOException) when (DateTime.UtcNow < deadline)
                {
                    cancellationToken.WaitHandle.WaitOne(10);
                    cancellationToken.ThrowIfCancellationRequested();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    return null;
                }
            }
        }
    }

    /// <summary>Last-use markers: <c>used/&lt;alg&gt;/&lt;hex&gt;</c> beside <c>blobs/</c> (also in the imports area).</summary>
    internal static class CacheUse
    {
        /// <summary>The marker of <paramref name="digest"/> in the store rooted at <paramref name="storeRoot"/>.</summary>
        public static string MarkerPath(string storeRoot, Digest digest) => Path.Combine(storeRoot, "used", digest.Algorithm, digest.Hex);

        /// <summary>Sets the marker's modification time to now, creating it if need be; failures are ignored.</summary>
        public static void Touch(string markerPath)
        {
            try
            {
                try
                {
                    File.SetLastWriteTimeUtc(markerPath, DateTime.UtcNow);
                }
                catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(markerPath)!);
                    using (File.Open(markerPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite))
                    {
                    }
                    File.SetLastWriteTimeUtc(markerPath, DateTime.UtcNow);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A read-only cache is still a cache: its entries just look older than they are.
            }
        }

        /// <summary>
        /// Leases, and marks as used, the cache entries a rootfs reads its file contents from (the
        /// decompressed layers and imported parts its entries point into) and, for a rootfs expanded
        /// from an image in the cache, the image's manifest, config and layers: before an export or an
        /// inspection reads them, so that no eviction takes them meanwhile.
        /// </summary>
        public static void UseRootfs(BlobStore cache, Rootfs rootfs)
        {
            if (cache.Lease is null)
            {
                return;
            }
            var main = new HashSet<Digest>();
            var imports = new HashSet<Digest>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            string blobs = Path.Combine(cache.Root, "blobs") + Path.DirectorySeparatorChar;
            string importBlobs = Path.Combine(cache.Imports.Root, "blobs") + Path.DirectorySeparatorChar;
            foreach (var entry in rootfs.GetEntries())
            {
                if (entry.Content is not FileRangeContent range || !seen.Add(range.FilePath))
                {
                    continue;
                }
                string path = range.FilePath;
                bool import = path.StartsWith(importBlobs, StringComparison.Ordinal);
                if (!import && !path.StartsWith(blobs, StringComparison.Ordinal))
                {
                    continue;
                }
                string relative = path[(import ? importBlobs : blobs).Length..];
                if (Digest.TryParse(relative.Replace(Path.DirectorySeparatorChar, ':'), out var digest))
                {
                    (import ? imports : main).Add(digest);
                }
            }
            if (rootfs.Image is { } image && image.BlobDirectory == cache.Root)
            {
                main.Add(image.Digest);
                main.Add(image.ConfigDigest);
                foreach (var layer in image.Layers)
                {
                    main.Add(layer.Digest);
                }
            }
            cache.Use(main);
            cache.Imports.Use(imports);
        }

        /// <summary>When the entry was last used: its marker's time, or when it was written if that is later.</summary>
        public static DateTime LastUsedUtc(string markerPath, DateTime writtenUtc)
        {
            var info = new FileInfo(markerPath);
            return info.Exists && info.LastWriteTimeUtc > writtenUtc ? info.LastWriteTimeUtc : writtenUtc;
        }
    }
}
