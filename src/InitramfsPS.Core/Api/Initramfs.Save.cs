using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Threading;
using InitramfsPS.Artifacts;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.Images;
using InitramfsPS.Init;
using InitramfsPS.IO;
using InitramfsPS.Registry;

namespace InitramfsPS
{
    public static partial class Initramfs
    {
        /// <summary>
        /// Pulls an initramfs artifact (what Publish-Initramfs pushed) back into an archive file,
        /// verified: the manifest against the reference's digest when pinned, every layer against
        /// its digest as it downloads into the cache (parts the cache holds are not downloaded
        /// again), and the joined archive against the size and digest its config names. The
        /// archive, and the kernel when <see cref="SaveOptions.KernelPath"/> is set, appear whole
        /// or not at all.
        /// </summary>
        /// <param name="reference">The artifact: <c>registry/repository:tag</c> or <c>registry/repository@sha256:…</c>.</param>
        /// <param name="path">The archive to write.</param>
        /// <param name="options">Kernel path, credentials, overwrite, progress; null for the defaults.</param>
        /// <param name="cache">The cache the layers download into; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the save; no file is left.</param>
        /// <returns>The archive's report (as an export's) and what only a save knows.</returns>
        public static SaveReport Save(string reference, string path, SaveOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(reference);
            ArgumentNullException.ThrowIfNull(path);
            options ??= new SaveOptions();
            if (options.MaxParallelDownloads is < 1 or > 32)
            {
                throw new InitramfsException("MaxParallelDownloadsInvalid", FailureKind.InvalidArgument,
                    $"MaxParallelDownloads runs from 1 to 32; {options.MaxParallelDownloads} is outside.", options.MaxParallelDownloads);
            }
            var parsed = RegistryReference(reference, "Save-Initramfs -Reference");
            using var owned = cache is null ? new InitramfsCache() : null;
            var store = cache ?? owned!;
            var blobs = new ConcurrentDictionary<string, (long Done, long Size)>(StringComparer.Ordinal);
            var request = new SaveRequest
            {
                ArchivePath = Path.GetFullPath(path),
                KernelPath = options.KernelPath is null ? null : Path.GetFullPath(options.KernelPath),
                Overwrite = options.Overwrite,
                MaxParallelDownloads = options.MaxParallelDownloads,
                Progress = blobs,
            };
            var registry = RegistryOptionsFor(options.Credential, options.CredentialOrigin, options.AllowPlainHttp, options.Verbose);
            var progress = options.Progress;
            void Report()
            {
                foreach (var (digest, (done, size)) in blobs.ToArray())
                {
                    progress!.Report(new InitramfsProgress(ProgressStage.Pull, digest, done, size));
                }
            }
            SaveResult result;
            using (var timer = progress is null ? null : new Timer(_ => Report(), null, ProgressInterval, ProgressInterval))
            {
                result = ArtifactSaver.SaveAsync(parsed, store.Store, registry, request, cancellationToken).GetAwaiter().GetResult();
                if (progress is not null)
                {
                    Report();
                }
            }
            store.AfterWrite(cancellationToken);
            return SaveReport.From(result);
        }

        /// <summary>
        /// The initramfs artifacts that refer to an image (OCI 1.1 referrers), newest first: through
        /// the registry's referrers API, or the referrers tag (<c>&lt;alg&gt;-&lt;hex&gt;</c>) where it
        /// has none. Asked for the image's manifest for the platform and, when the reference names an
        /// index, for the index too. Artifacts live in the image's repository.
        /// </summary>
        /// <param name="image">The image: <c>registry/repository:tag</c> or <c>@sha256:…</c>.</param>
        /// <param name="options">Platform, credentials; null for the defaults.</param>
        /// <param name="cancellationToken">Stops the listing.</param>
        public static IReadOnlyList<InitramfsArtifact> FindArtifacts(string image, FindOptions? options = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(image);
            options ??= new FindOptions();
            var parsed = RegistryReference(image, "Find-Initramfs -Image");
            var platform = options.Platform is null ? Images.Platform.Host : Images.Platform.Parse(options.Platform);
            var registry = RegistryOptionsFor(options.Credential, options.CredentialOrigin, options.AllowPlainHttp, options.Verbose);
            return ReferrerFinder.FindAsync(parsed, platform, registry, options.Warning, cancellationToken).GetAwaiter().GetResult();
        }

        /// <summary>A reference to a registry: artifacts live in registries, not in layouts or docker archives.</summary>
        private static ImageReference RegistryReference(string text, string what)
        {
            var parsed = ImageReference.Parse(text);
            if (parsed.Transport != ImageTransport.Registry)
            {
                throw new InitramfsException("ReferenceNotRegistry", FailureKind.InvalidArgument,
                    $"{what} takes a registry reference (registry/repository:tag or @sha256:…); '{text}' is not one.", text);
            }
            return parsed;
        }

        /// <summary>The registry client's settings from an operation's options.</summary>
        private static RegistryOptions RegistryOptionsFor(NetworkCredential? credential, string credentialOrigin, bool allowPlainHttp, Action<string>? verbose) => new()
        {
            Credential = credential is { } c ? new RegistryCredential(c.UserName, c.Password, credentialOrigin) : null,
            AllowPlainHttp = allowPlainHttp,
            // Timeouts, minimum rate and attempts: the INITRAMFSPS_* variables (a bad value is RegistrySettingInvalid).
            Limits = RegistryLimits.FromEnvironment(),
            Verbose = verbose,
        };
    }

    /// <summary>How <see cref="Initramfs.Save"/> pulls an artifact.</summary>
    public sealed class SaveOptions
    {
        /// <summary>Where to write the kernel the artifact ships; null leaves it. An artifact without one is an error (<c>ArtifactHasNoKernel</c>) when this is set.</summary>
        public string? KernelPath { get; init; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        public NetworkCredential? Credential { get; init; }

        /// <summary>Where <see cref="Credential"/> came from, as errors name it.</summary>
        public string CredentialOrigin { get; init; } = "the credential given";

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>Replace files that exist; else an existing file is an error (<c>OutputExists</c>) before anything is downloaded.</summary>
        public bool Overwrite { get; init; }

        /// <summary>How many layers download at once (1 to 32).</summary>
        public int MaxParallelDownloads { get; init; } = 3;

        /// <summary>Each layer's download (<see cref="ProgressStage.Pull"/>, the item its digest); called from a timer thread.</summary>
        public IProgress<InitramfsProgress>? Progress { get; init; }

        /// <summary>What the registry client does (requests, retries, redirects), scrubbed of secrets; called from worker threads.</summary>
        public Action<string>? Verbose { get; init; }
    }

    /// <summary>How <see cref="Initramfs.FindArtifacts"/> asks a registry.</summary>
    public sealed class FindOptions
    {
        /// <summary>The platform to pick from a multi-platform image, <c>os/arch[/variant]</c>; null is linux on this machine's architecture.</summary>
        public string? Platform { get; init; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        public NetworkCredential? Credential { get; init; }

        /// <summary>Where <see cref="Credential"/> came from, as errors name it.</summary>
        public string CredentialOrigin { get; init; } = "the credential given";

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>What the registry client does, scrubbed of secrets; called from worker threads.</summary>
        public Action<string>? Verbose { get; init; }

        /// <summary>Referrers left out (a list cut at its bound, an entry whose manifest is gone or is not an artifact), scrubbed; called from worker threads.</summary>
        public Action<string>? Warning { get; init; }
    }

    /// <summary>
    /// What <see cref="Initramfs.Save"/> wrote: the archive's report, as an export gives it (so a
    /// script reads a saved and an exported archive alike), and what only a save knows: the
    /// artifact, the kernel, and the bytes downloaded or found in the cache.
    /// </summary>
    public sealed class SaveReport
    {
        /// <summary>The archive, as <see cref="Initramfs.Export"/> reports one: filled from the artifact's config and the file written.</summary>
        public required ExportReport Archive { get; init; }

        /// <summary>The archive file.</summary>
        public string Path => Archive.Path;

        /// <summary>The artifact, pinned: <c>registry/repository@sha256:…</c>.</summary>
        public required string Reference { get; init; }

        /// <summary>The digest of the artifact's manifest.</summary>
        public required Digest ManifestDigest { get; init; }

        /// <summary>The kernel file written, or null.</summary>
        public string? KernelPath { get; init; }

        /// <summary>The kernel command line the publisher gave, or null.</summary>
        public string? KernelCommandLine { get; init; }

        /// <summary>The platform of the archive's programs, as the publisher said (<c>linux/amd64</c>).</summary>
        public string Platform { get; init; } = string.Empty;

        /// <summary>The archive's compression.</summary>
        public InitramfsCompression Compression => Archive.Compression;

        /// <summary>Bytes of the archive file.</summary>
        public long Size => Archive.CompressedSize;

        /// <summary>sha256 of the archive file, lower-case hex (checked against the artifact's config).</summary>
        public string Sha256 => Archive.Sha256;

        /// <summary>Bytes of layers downloaded from the registry.</summary>
        public long BytesDownloaded { get; init; }

        /// <summary>Bytes of layers found in the cache (an earlier save or an artifact sharing parts) and not downloaded.</summary>
        public long BytesReused { get; init; }

        /// <summary>Layers downloaded (parts and the kernel; a layer listed twice counts once).</summary>
        public int LayersDownloaded { get; init; }

        /// <summary>Layers found in the cache.</summary>
        public int LayersReused { get; init; }

        /// <summary>The InitramfsPS version that published the artifact.</summary>
        public string PublishedBy { get; init; } = string.Empty;

        /// <summary>How long the save took.</summary>
        public TimeSpan Duration => Archive.Duration;

        internal static SaveReport From(SaveResult result)
        {
            var config = result.Config;
            var compression = result.Manifest.Compression switch
            {
                "zstd" => InitramfsCompression.Zstd,
                "gzip" => InitramfsCompression.Gzip,
                _ => InitramfsCompression.None,
            };
            return new SaveReport
            {
                Archive = new ExportReport
                {
                    Path = result.ArchivePath,
                    Compression = compression,
                    EntryCount = config.EntryCount,
                    // One layer per part: a gzip member or zstd frame, or the whole plain archive.
                    PartCount = result.Manifest.Parts.Count,
                    UncompressedSize = config.UncompressedSize,
                    CompressedSize = config.ArchiveSize,
                    Sha256 = result.Sha256,
                    Duration = result.Duration,
                    // The /init is the one that was exported: it came with the archive.
                    InitOrigin = InitOrigin.Image,
                    MinimumMemory = config.MinimumMemory ?? 0,
                },
                Reference = result.Reference,
                ManifestDigest = result.Manifest.Digest,
                KernelPath = result.KernelPath,
                KernelCommandLine = config.KernelCommandLine,
                Platform = string.IsNullOrEmpty(config.Architecture) ? config.Os : $"{config.Os}/{config.Architecture}{(string.IsNullOrEmpty(config.Variant) ? string.Empty : "/" + config.Variant)}",
                BytesDownloaded = result.BytesDownloaded,
                BytesReused = result.BytesReused,
                LayersDownloaded = result.BlobsDownloaded,
                LayersReused = result.BlobsReused,
                PublishedBy = config.ModuleVersion,
            };
        }

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Path} from {Reference} ({Compression}, {Archive.EntryCount} entries, {Units.Bytes(Size)}, {Units.Bytes(BytesDownloaded)} downloaded, {Units.Bytes(BytesReused)} from the cache{(KernelPath is null ? string.Empty : ", kernel " + KernelPath)})");
    }
}
