using System;
using System.Collections.Generic;
using System.IO;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// A content-addressed store shaped like an OCI image layout (<c>blobs/&lt;alg&gt;/&lt;hex&gt;</c>).
    /// It serves both a user's layout directory (read) and the local cache (read and write).
    /// Writes go to a temporary file that is renamed into place only after its digest checked out,
    /// so a crash, a full disk or a concurrent writer never leaves a wrong blob under a digest.
    /// A store opened with a <see cref="CacheLease"/> is the cache as a piece of work uses it: every
    /// blob it is asked about (<see cref="Has"/>, <see cref="OpenRead(Digest, string, out string)"/>) or commits is leased, so no
    /// eviction removes it while the work runs, and marked as used now.
    /// </summary>
    internal sealed class BlobStore
    {
        private BlobStore? imports;

        /// <summary>Opens a store rooted at <paramref name="root"/>.</summary>
        public BlobStore(string root)
            : this(root, null)
        {
        }

        /// <summary>Opens the cache at <paramref name="root"/> for work that leases what it uses.</summary>
        public BlobStore(string root, CacheLease? lease)
        {
            Root = Path.GetFullPath(root);
            Lease = lease;
        }

        private BlobStore(string root, CacheLease? lease, bool importArea)
            : this(root, lease) => IsImportArea = importArea;

        /// <summary>The directory that holds <c>blobs/</c>.</summary>
        public string Root { get; }

        /// <summary>The lease of the work using this store, if any.</summary>
        public CacheLease? Lease { get; }

        /// <summary>Whether this is the cache's area for decompressed copies of imported archives.</summary>
        public bool IsImportArea { get; }

        /// <summary>
        /// The separate, smaller-budgeted area <c>imports/</c> of the cache, for the decompressed parts
        /// of archives Import-Initramfs reads: they never push pulled images out.
        /// </summary>
        public BlobStore Imports => imports ??= new BlobStore(Path.Combine(Root, ImportsDirectory), Lease, importArea: true);

        /// <summary>The name of the imports area in the cache directory.</summary>
        public const string ImportsDirectory = "imports";

        /// <summary>The cache directory: <c>$INITRAMFSPS_CACHE</c>, else <c>$XDG_CACHE_HOME/initramfsps</c>, else <c>~/.cache/initramfsps</c>.</summary>
        public static string DefaultCacheRoot()
        {
            string? explicitRoot = Environment.GetEnvironmentVariable("INITRAMFSPS_CACHE");
            if (!string.IsNullOrEmpty(explicitRoot))
            {
                return Path.GetFullPath(explicitRoot);
            }
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string baseDir = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "initramfsps");
        }

        /// <summary>The file a blob lives in (whether or not it exists).</summary>
        public string PathOf(Digest digest) => Path.Combine(Root, "blobs", digest.Algorithm, digest.Hex);

        /// <summary>
        /// The file that holds the index of the decompressed layer stored under <paramref name="diffId"/>
        /// (<c>index/&lt;alg&gt;/&lt;hex&gt;</c>, whether or not it exists). Its place is part of the
        /// cache's layout, like <see cref="PathOf"/>: the inventory and the budget find and remove it
        /// without knowing what an index holds (<c>Layers/LayerIndex.cs</c> writes and reads it).
        /// </summary>
        public string IndexPathOf(Digest diffId) => Path.Combine(Root, "index", diffId.Algorithm, diffId.Hex);

        /// <summary>The name of the directory of compressed parts' key records (<see cref="PartRecord"/>) in the cache directory.</summary>
        public const string PartsDirectory = "parts";

        /// <summary>
        /// The file of the key record named <paramref name="name"/> (<c>parts/&lt;hex&gt;</c>, whether or
        /// not it exists), which leads from a compressed part's key to its blob. Its place is part of the
        /// cache's layout, like <see cref="IndexPathOf"/>; <c>Cache/PartCache.cs</c> writes and reads it.
        /// </summary>
        public string PartRecordPathOf(string name) => Path.Combine(Root, PartsDirectory, name);

        /// <summary>The marker whose modification time says when the blob was last used.</summary>
        public string MarkerOf(Digest digest) => CacheUse.MarkerPath(Root, digest);

        /// <summary>Whether the blob is present; with a lease, it is leased (first) and marked as used.</summary>
        public bool Has(Digest digest)
        {
            Lease?.Hold(digest);
            bool present = File.Exists(PathOf(digest));
            if (present)
            {
                Lease?.Touch(MarkerOf(digest));
            }
            return present;
        }

        /// <summary>
        /// Leases <paramref name="digests"/> for the work using this store and marks those present as
        /// used now (nothing without a lease): for entries used other than through <see cref="Has"/>
        /// or <see cref="OpenRead(Digest, string, out string)"/>, such as the layers a rootfs being exported reads.
        /// </summary>
        public void Use(IEnumerable<Digest> digests)
        {
            if (Lease is null)
            {
                return;
            }
            var list = new List<Digest>(digests);
            Lease.Hold(list);
            foreach (var digest in list)
            {
                if (File.Exists(PathOf(digest)))
                {
                    Lease.Touch(MarkerOf(digest));
                }
            }
        }

        /// <summary>Opens a blob for reading; a missing blob is a clear error. See <see cref="OpenRead(Digest, string, out string)"/>.</summary>
        public FileStream OpenRead(Digest digest, string what) => OpenRead(digest, what, out _);

        /// <summary>
        /// Opens a blob for reading, from <paramref name="path"/>: where it really is, every symlink
        /// resolved. A blob may be a symlink, but not one that leads out of the store (its root,
        /// <c>blobs/</c> or <c>blobs/&lt;alg&gt;</c>, wherever the user's own symlinks put those):
        /// a layout blob that links to a host file would make the module read that file and tell its
        /// size (BlobOutsideLayout, which says neither where it points nor how large that is). A blob
        /// that is not a regular file (a FIFO would block the open forever) is BlobNotRegularFile.
        /// With a lease, the blob is leased before it is looked for and marked as used once open.
        /// </summary>
        public FileStream OpenRead(Digest digest, string what, out string path)
        {
            Lease?.Hold(digest);
            path = Locate(digest, what);
            try
            {
                var stream = RegularFile.OpenStream(path);
                Lease?.Touch(MarkerOf(digest));
                return stream;
            }
            catch (NotRegularFileException ex)
            {
                throw new InitramfsException("BlobNotRegularFile", FailureKind.InvalidData,
                    $"The {what} {digest} in '{Root}' is {ex.Kind}, not a regular file; it is not read.", digest.ToString(), ex);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                throw Missing(digest, what, ex);
            }
        }

        /// <summary>The length of a blob, opened as <see cref="OpenRead(Digest, string, out string)"/> opens it.</summary>
        public long LengthOf(Digest digest, string what)
        {
            using var stream = OpenRead(digest, what);
            return stream.Length;
        }

        /// <summary>The real path of a blob, checked to lie inside the store.</summary>
        private string Locate(Digest digest, string what)
        {
            string? real = RegularFile.RealPath(PathOf(digest));
            if (real is null)
            {
                throw Missing(digest, what, null);
            }
            foreach (string directory in new[] { Root, Path.Combine(Root, "blobs"), Path.Combine(Root, "blobs", digest.Algorithm) })
            {
                if (RegularFile.RealPath(directory) is { } realDirectory && real != realDirectory && RegularFile.IsWithin(real, realDirectory))
                {
                    return real;
                }
            }
            throw new InitramfsException("BlobOutsideLayout", FailureKind.Security,
                $"The {what} {digest} in '{Root}' is a symlink that leads out of the layout; it is not followed.", digest.ToString());
        }

        private InitramfsException Missing(Digest digest, string what, Exception? inner) =>
            new("BlobMissing", FailureKind.NotFound, $"The {what} {digest} is missing: '{PathOf(digest)}' does not exist.", digest.ToString(), inner);

        /// <summary>
        /// Reads a small blob (manifest, index, config) whole and checks it against the descriptor's
        /// size and digest before anything parses it.
        /// </summary>
        public byte[] ReadVerified(Descriptor descriptor, string what, long maxSize = 4 << 20)
        {
            if (descriptor.Size > maxSize)
            {
                throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded,
                    $"The {what} {descriptor.Digest} declares {descriptor.Size} bytes; more than the {maxSize} allowed.", descriptor.Digest.ToString());
            }
            using var stream = OpenRead(descriptor.Digest, what);
            if (stream.Length != descriptor.Size && descriptor.Size >= 0)
            {
                throw new InitramfsException("BlobSizeMismatch", FailureKind.InvalidData,
                    $"The {what} {descriptor.Digest} has {stream.Length} bytes but its descriptor says {descriptor.Size}.", descriptor.Digest.ToString());
            }
            if (stream.Length > maxSize)
            {
                throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded,
                    $"The {what} {descriptor.Digest} has {stream.Length} bytes; more than the {maxSize} allowed.", descriptor.Digest.ToString());
            }
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            var actual = Digest.Compute(descriptor.Digest.Algorithm, bytes);
            if (actual != descriptor.Digest)
            {
                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                    $"The {what} {descriptor.Digest} does not match its content (the bytes hash to {actual}).", descriptor.Digest.ToString());
            }
            return bytes;
        }

        /// <summary>
        /// Takes the cross-process lock of one digest, so that of several processes pulling the same
        /// image, one downloads each blob and the others wait and find it present. The lock is an
        /// exclusive open of a lock file, which the kernel releases if the holder dies.
        /// </summary>
        public async System.Threading.Tasks.Task<IDisposable> LockAsync(Digest digest, System.Threading.CancellationToken cancellationToken)
        {
            string directory = Path.Combine(Root, "locks");
            Directory.CreateDirectory(directory);
            string path = Path.Combine(directory, $"{digest.Algorithm}-{digest.Hex}.lock");
            while (true)
            {
                try
                {
                    return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
                }
                catch (IOException)
                {
                    await System.Threading.Tasks.Task.Delay(100, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        /// <summary>The digest a tag of a registry repository pointed to when last pulled (for -Offline).</summary>
        public Digest? ReadRef(string registry, string repository, string tag)
        {
            string path = RefPath(registry, repository, tag);
            return File.Exists(path) && Digest.TryParse(File.ReadAllText(path).Trim(), out var digest) ? digest : null;
        }

        /// <summary>Records what a tag points to, atomically.</summary>
        public void WriteRef(string registry, string repository, string tag, Digest digest)
        {
            string path = RefPath(registry, repository, tag);
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                string temp = path + "." + Guid.NewGuid().ToString("N") + ".partial";
                File.WriteAllText(temp, digest.ToString());
                File.Move(temp, path, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new InitramfsException("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write to the cache '{Root}': {ex.Message}", Root, ex);
            }
        }

        private string RefPath(string registry, string repository, string tag) =>
            Path.Combine(Root, "refs", registry.Replace(':', '_'), Path.Combine(repository.Split('/')), "_tags", tag);

        /// <summary>Starts writing a blob whose digest is checked at <see cref="BlobWriter.Commit(Digest)"/>.</summary>
        public BlobWriter CreateWriter()
        {
            string tmp = Path.Combine(Root, "tmp");
            try
            {
                Directory.CreateDirectory(tmp);
                if (!IsImportArea && !File.Exists(Path.Combine(Root, "oci-layout")))
                {
                    File.WriteAllText(Path.Combine(Root, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new InitramfsException("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write to the cache '{Root}': {ex.Message}", Root, ex);
            }
            if (!swept)
            {
                swept = true;
                Files.SweepStalePartials(tmp, "*.partial");
            }
            return new BlobWriter(this, Path.Combine(tmp, $"{Guid.NewGuid():N}.partial"));
        }

        private bool swept;
    }

    /// <summary>
    /// A blob being written: an <see cref="AtomicFileWriter"/> in the store's <c>tmp/</c>, which
    /// hashes the bytes as they are written and becomes the blob only when committed, under the
    /// digest it computed.
    /// </summary>
    internal sealed class BlobWriter : IDisposable
    {
        private readonly BlobStore store;
        private readonly AtomicFileWriter file;

        internal BlobWriter(BlobStore store, string tempPath)
        {
            this.store = store;
            try
            {
                file = new AtomicFileWriter(tempPath, 1 << 16);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw WriteFailed(store, ex);
            }
        }

        /// <summary>The temporary file.</summary>
        public string TempPath => file.TempPath;

        /// <summary>
        /// Where to write the bytes, for a caller that needs a stream: what is written here is
        /// hashed too. Its <c>SetLength(0)</c> starts the blob over.
        /// </summary>
        public Stream Stream => file;

        /// <summary>Bytes written.</summary>
        public long Length => file.Length;

        /// <summary>The sha256 digest of the bytes written so far: what <see cref="Commit()"/> stores the blob under.</summary>
        public Digest Digest => Digest.FromSha256(file.Sha256());

        /// <summary>Appends bytes; a full disk or an I/O error becomes a CacheWriteFailed error.</summary>
        public void Write(byte[] buffer, int count) => Write(buffer.AsSpan(0, count));

        /// <summary>Appends bytes; a full disk or an I/O error becomes a CacheWriteFailed error.</summary>
        public void Write(ReadOnlySpan<byte> buffer)
        {
            try
            {
                file.Write(buffer);
            }
            catch (IOException ex)
            {
                throw WriteFailed(store, ex);
            }
        }

        /// <summary>
        /// Starts writing what was written so far to disk without waiting for it (see
        /// <see cref="AtomicFileWriter.StartWriteback"/>), so that the fsync at <see cref="Commit()"/>
        /// has little left and the thread writing the blob is not stopped for the disk meanwhile.
        /// </summary>
        public void StartWriteback()
        {
            try
            {
                file.StartWriteback();
            }
            catch (IOException ex)
            {
                throw WriteFailed(store, ex);
            }
        }

        /// <summary>Commits the blob under the sha256 digest of what was written (<see cref="Digest"/>). See <see cref="Commit(Digest)"/>.</summary>
        public string Commit() => Commit(Digest);

        /// <summary>
        /// Flushes to disk and renames the temporary file to the blob's path. If another process
        /// committed the same digest first, its file stays and ours is dropped: the bytes are equal.
        /// A sha256 <paramref name="digest"/> must be the one this writer computed (anything else is
        /// a DigestMismatch and nothing is stored); a digest in another algorithm is the caller's to
        /// have checked.
        /// </summary>
        public string Commit(Digest digest) => Commit(digest, durable: true);

        /// <summary>
        /// As <see cref="Commit(Digest)"/>; without <paramref name="durable"/> no fsync, for a blob
        /// every read verifies in full against its digest (a compressed part: torn by a crash, it is
        /// a miss).
        /// </summary>
        public string Commit(Digest digest, bool durable)
        {
            if (digest.Algorithm == "sha256" && digest != Digest)
            {
                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                    $"The blob written hashes to {Digest}, not {digest}; it is not stored.", digest.ToString());
            }
            string final = store.PathOf(digest);
            // Leased before it has its name, so that no eviction can take it before the work that wrote it is done.
            store.Lease?.Hold(digest);
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(final)!);
                if (file.Commit(final, ExistingFile.Keep, durable))
                {
                    store.Lease?.NoteWrite();
                }
                store.Lease?.Touch(store.MarkerOf(digest));
                return final;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new InitramfsException("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write the blob {digest} to the cache: {ex.Message}", final, ex);
            }
        }

        /// <summary>Drops the temporary file unless it was committed.</summary>
        public void Dispose() => file.Dispose();

        private static InitramfsException WriteFailed(BlobStore store, Exception ex) =>
            new("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write to the cache '{store.Root}': {ex.Message}", store.Root, ex);
    }
}
