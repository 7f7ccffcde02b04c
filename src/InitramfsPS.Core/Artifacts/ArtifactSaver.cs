using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.Registry;

namespace InitramfsPS.Artifacts
{
    /// <summary>What <see cref="ArtifactSaver"/> writes, and how.</summary>
    internal sealed class SaveRequest
    {
        /// <summary>The archive's full path.</summary>
        public required string ArchivePath { get; init; }

        /// <summary>The kernel's full path, or null to leave the kernel layer in the registry.</summary>
        public string? KernelPath { get; init; }

        /// <summary>Replace files that exist (else an existing file is OutputExists, before anything is downloaded).</summary>
        public bool Overwrite { get; init; }

        /// <summary>How many blobs download at once.</summary>
        public int MaxParallelDownloads { get; init; } = 3;

        /// <summary>Bytes done per blob (key: digest), updated by the download workers.</summary>
        public ConcurrentDictionary<string, (long Done, long Size)>? Progress { get; init; }
    }

    /// <summary>What a save wrote and fetched.</summary>
    internal sealed record SaveResult(
        string Reference,
        ArtifactManifest Manifest,
        ArtifactConfig Config,
        string ArchivePath,
        string Sha256,
        string? KernelPath,
        long BytesDownloaded,
        long BytesReused,
        int BlobsDownloaded,
        int BlobsReused,
        TimeSpan Duration);

    /// <summary>
    /// Pulls an initramfs artifact back into files, verified: the manifest against a pinned
    /// reference's digest, every blob against its digest as it downloads into the cache (with the
    /// retries, resume, timeouts and caps of an image pull: <see cref="RegistryClient.DownloadBlobAsync"/>),
    /// so that a part an earlier save or another artifact brought is not downloaded again; then the
    /// parts joined into the archive and the kernel copied out, each under a temporary name that
    /// becomes the file only when its size and digest match what the config and manifest say.
    /// </summary>
    internal static class ArtifactSaver
    {
        public static async Task<SaveResult> SaveAsync(ImageReference reference, BlobStore cache, RegistryOptions registry, SaveRequest request, CancellationToken cancellationToken)
        {
            using var client = new RegistryClient(reference, registry);
            return await SaveAsync(client, reference, cache, request, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>As <see cref="SaveAsync(ImageReference, BlobStore, RegistryOptions, SaveRequest, CancellationToken)"/>, over a client of the artifact's repository.</summary>
        internal static async Task<SaveResult> SaveAsync(RegistryClient client, ImageReference reference, BlobStore cache, SaveRequest request, CancellationToken cancellationToken)
        {
            var clock = Stopwatch.StartNew();
            CheckOutputs(request);
            return await client.ContainAsync(() => SaveWithAsync(client, reference, cache, request, clock, cancellationToken), cancellationToken).ConfigureAwait(false);
        }

        /// <summary>The output files are checked before anything is downloaded.</summary>
        private static void CheckOutputs(SaveRequest request)
        {
            CheckOutput(request.ArchivePath, request.Overwrite);
            if (request.KernelPath is { } kernelPath)
            {
                if (string.Equals(kernelPath, request.ArchivePath, StringComparison.Ordinal))
                {
                    throw new InitramfsException("KernelPathIsArchivePath", FailureKind.InvalidArgument,
                        $"-KernelPath and -Path both name '{kernelPath}'; the kernel and the archive need a file each.", kernelPath);
                }
                CheckOutput(kernelPath, request.Overwrite);
            }
        }

        private static async Task<SaveResult> SaveWithAsync(RegistryClient client, ImageReference reference, BlobStore cache, SaveRequest request, Stopwatch clock, CancellationToken cancellationToken)
        {
            string wanted = reference.Digest?.ToString() ?? reference.Tag ?? "latest";
            // A pinned reference's manifest is checked against its digest here, as for an image.
            var (bytes, top) = await client.GetManifestAsync(wanted, cancellationToken).ConfigureAwait(false);
            string pinned = $"{reference.Registry}/{reference.Repository}@{top.Digest}";
            var manifest = ArtifactManifest.Parse(bytes, top.Digest, top.MediaType, reference.ToString());
            if (request.KernelPath is not null && manifest.Kernel is null)
            {
                throw new InitramfsException("ArtifactHasNoKernel", FailureKind.NotFound,
                    $"{pinned} ships no kernel, so there is nothing to write to -KernelPath '{request.KernelPath}'. Nothing was written.", pinned);
            }

            await client.DownloadBlobAsync(manifest.Config, cache, null, cancellationToken).ConfigureAwait(false);
            var config = manifest.ReadConfig(cache.ReadVerified(manifest.Config, "artifact config", ArtifactManifest.MaxConfigSize));

            var blobs = manifest.Parts.Concat(request.KernelPath is null ? Array.Empty<Descriptor>() : new[] { manifest.Kernel! })
                .GroupBy(d => d.Digest).Select(g => g.First()).ToList();
            // Asked before downloading: a blob present now is reused (and leased, so no eviction takes it meanwhile).
            var present = blobs.Where(b => cache.Has(b.Digest)).Select(b => b.Digest).ToHashSet();
            await BlobDownloads.DownloadAllAsync(client, blobs, cache, request.MaxParallelDownloads, request.Progress, null, cancellationToken).ConfigureAwait(false);
            long reused = blobs.Where(b => present.Contains(b.Digest)).Sum(b => b.Size);
            long downloaded = blobs.Where(b => !present.Contains(b.Digest)).Sum(b => b.Size);

            var archiveDigest = Digest.Parse(config.ArchiveDigest, "archiveDigest of the artifact config");
            using var archive = Join(cache, manifest.Parts, request.ArchivePath, config.ArchiveSize, archiveDigest, $"the archive of {pinned}", cancellationToken, out string sha256);
            using var kernel = request.KernelPath is { } kernelPath
                ? Join(cache, new[] { manifest.Kernel! }, kernelPath, manifest.Kernel!.Size, manifest.Kernel.Digest, $"the kernel of {pinned}", cancellationToken, out _)
                : null;
            // Both files are whole and checked before either takes its name.
            Commit(archive, request.ArchivePath, request.Overwrite);
            if (kernel is not null)
            {
                Commit(kernel, request.KernelPath!, request.Overwrite);
            }
            // The manifest and the tag it was saved by, as a pull keeps an image's: Get-OciCache then
            // names the parts as the artifact's, and Clear-OciCache -Unused keeps them for the next save.
            RegistryPuller.Put(cache, manifest.Digest, bytes);
            if (reference.Digest is null && reference.Tag is { } tag)
            {
                cache.WriteRef(reference.Registry!, reference.Repository!, tag, manifest.Digest);
            }
            return new SaveResult(pinned, manifest, config, request.ArchivePath, sha256, request.KernelPath,
                downloaded, reused, blobs.Count - present.Count, present.Count, clock.Elapsed);
        }

        private static void CheckOutput(string path, bool overwrite)
        {
            string? directory = Path.GetDirectoryName(path);
            if (directory is null || !Directory.Exists(directory))
            {
                throw new InitramfsException("OutputDirectoryMissing", FailureKind.NotFound, $"The directory '{directory}' does not exist.", directory ?? path);
            }
            if (Directory.Exists(path))
            {
                throw new InitramfsException("OutputIsDirectory", FailureKind.InvalidArgument, $"'{path}' is a directory; give the file to write.", path);
            }
            if (!overwrite && File.Exists(path))
            {
                throw new InitramfsException("OutputExists", FailureKind.WriteFailed, $"'{path}' exists; -Force replaces it. Nothing was downloaded.", path);
            }
        }

        /// <summary>
        /// Writes the cached blobs <paramref name="blobs"/> one after another to a temporary file
        /// beside <paramref name="path"/>, hashing as it writes, and checks the whole against
        /// <paramref name="size"/> and <paramref name="digest"/>: a cache blob changed on disk since
        /// it was verified cannot reach the file. The caller commits or disposes the writer.
        /// </summary>
        private static AtomicFileWriter Join(BlobStore cache, IReadOnlyList<Descriptor> blobs, string path, long size, Digest digest, string what, CancellationToken cancellationToken, out string sha256)
        {
            string directory = Path.GetDirectoryName(path)!;
            string name = Path.GetFileName(path);
            // A kill -9 of an earlier save to this path leaves its temporary file; a live one holds its own locked.
            Files.SweepStalePartials(directory, $".{name}.*.partial");
            AtomicFileWriter writer;
            try
            {
                writer = new AtomicFileWriter(Path.Combine(directory, $".{name}.{Guid.NewGuid():N}.partial"), 1 << 16);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw WriteFailed(path, ex);
            }
            try
            {
                using var other = digest.Algorithm == "sha256" ? null : digest.CreateHash();
                var buffer = new byte[1 << 16];
                bool longer = false;
                foreach (var blob in blobs)
                {
                    using var source = cache.OpenRead(blob.Digest, "blob");
                    int n;
                    // A cache blob grown on disk since it was verified stops here, not at the end of the disk.
                    while (!longer && (n = source.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        longer = writer.Length + n > size;
                        writer.Write(buffer.AsSpan(0, longer ? (int)(size - writer.Length) : n));
                        other?.AppendData(buffer, 0, n);
                    }
                }
                byte[] hash = writer.Sha256();
                sha256 = Convert.ToHexString(hash).ToLowerInvariant();
                if (longer || writer.Length != size || !digest.Matches(other?.GetHashAndReset() ?? hash))
                {
                    throw new InitramfsException("ArchiveDigestMismatch", FailureKind.InvalidData,
                        $"{what} joined from its layers is {(longer ? "more than " : string.Empty)}{writer.Length} bytes hashing to sha256:{sha256}, not the {size} bytes of {digest} it must be. Nothing was written. " +
                        "Every layer matched its digest when it entered the cache; Get-OciCache -Verify finds one that changed on disk since.", digest.ToString());
                }
                return writer;
            }
            catch (IOException ex)
            {
                writer.Dispose();
                throw WriteFailed(path, ex);
            }
            catch
            {
                writer.Dispose();
                throw;
            }
        }

        private static void Commit(AtomicFileWriter writer, string path, bool overwrite)
        {
            try
            {
                writer.Commit(path, overwrite ? ExistingFile.Replace : ExistingFile.Fail);
            }
            catch (IOException ex) when (!overwrite && File.Exists(path))
            {
                throw new InitramfsException("OutputExists", FailureKind.WriteFailed, $"'{path}' appeared while the save ran; -Force replaces it.", path, ex);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw WriteFailed(path, ex);
            }
        }

        private static InitramfsException WriteFailed(string path, Exception ex) =>
            new("SaveWriteFailed", FailureKind.WriteFailed, $"Cannot write '{path}': {ex.Message}", path, ex);
    }
}
