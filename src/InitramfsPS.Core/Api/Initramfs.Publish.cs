using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using InitramfsPS.Artifacts;
using InitramfsPS.Boot;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.Images;
using InitramfsPS.Registry;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS
{
    public static partial class Initramfs
    {
        /// <summary>
        /// Pushes an archive to a registry as an initramfs artifact (an OCI 1.1 image manifest
        /// whose <c>artifactType</c> is <see cref="ArtifactMediaTypes.ArtifactType"/>): one layer
        /// per compressed part, in order (their concatenation is the archive), the kernel when
        /// given, and a config (<see cref="ArtifactConfig"/>). Blobs the repository has are not
        /// sent again, and those of the source image's repository are mounted. With a source
        /// image in the same registry the manifest's <c>subject</c> is that image, and the
        /// artifact is listed as its referrer (through the registry's referrers API, or the
        /// fallback tag <c>sha256-&lt;hex&gt;</c> where the registry has none).
        /// </summary>
        /// <param name="path">The archive (.cpio, .cpio.gz, .cpio.zst).</param>
        /// <param name="reference">Where the artifact goes: <c>registry/repository:tag</c>.</param>
        /// <param name="options">Kernel, command line, source image, credentials; null for none.</param>
        /// <param name="cache">The cache the archive is read into to count its entries; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the push; the manifest is pushed last, so a stopped push leaves no tag.</param>
        /// <returns>The reference and digest pushed, with the bytes sent and the bytes skipped.</returns>
        public static PublishReport Publish(string path, string reference, PublishOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(reference);
            options ??= new PublishOptions();
            var target = PublishTarget(reference);
            var source = options.SourceImage is { } s ? ImageReference.Parse(s) : null;
            string full = Path.GetFullPath(path);
            string? kernel = KernelFile(options.Kernel);
            var archive = ArchiveSplitter.Split(full, cancellationToken);
            // The counts the config carries are the kernel's view: the archive read as it unpacks it.
            var imported = Import(full, cache, cancellationToken: cancellationToken);
            var rootfs = imported.Rootfs;
            var config = Config(archive, options, rootfs.GetEntries().Count(), imported.Parts.Sum(p => p.UncompressedLength),
                MemoryModel.Minimum(ArchiveFootprint.Of(rootfs, archive.Size)), FilePlatform(rootfs, kernel));
            return Push(archive, config, target, source, null, kernel, options, cancellationToken);
        }

        /// <summary>
        /// Exports <paramref name="rootfs"/> to a temporary archive (zstd unless
        /// <see cref="PublishOptions.Export"/> says otherwise) and publishes it as
        /// <see cref="Publish(string, string, PublishOptions?, InitramfsCache?, CancellationToken)"/>
        /// does, with the rootfs's image as the source image; the temporary file is removed after.
        /// </summary>
        /// <param name="rootfs">The rootfs; it is not changed.</param>
        /// <param name="reference">Where the artifact goes: <c>registry/repository:tag</c>.</param>
        /// <param name="options">Kernel, command line, export options, credentials; null for the defaults.</param>
        /// <param name="cache">The cache the rootfs reads from; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the export or the push.</param>
        /// <returns>The reference and digest pushed, with the bytes sent and the bytes skipped.</returns>
        public static PublishReport Publish(Rootfs rootfs, string reference, PublishOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(reference);
            options ??= new PublishOptions();
            var target = PublishTarget(reference);
            var source = options.SourceImage is { } s ? ImageReference.Parse(s) : rootfs.Image?.Reference;
            string? kernel = KernelFile(options.Kernel);
            var export = options.Export ?? new ExportOptions();
            var compression = export.Compression ?? Compression.InitramfsCompression.Zstd;
            string extension = compression switch
            {
                Compression.InitramfsCompression.Gzip => ".cpio.gz",
                Compression.InitramfsCompression.None => ".cpio",
                _ => ".cpio.zst",
            };
            string temp = Path.Combine(Path.GetTempPath(), "initramfsps-publish-" + Guid.NewGuid().ToString("N") + extension);
            try
            {
                var report = Export(rootfs, temp, new ExportOptions
                {
                    Compression = compression,
                    Level = export.Level,
                    Workers = export.Workers,
                    AllowUnbootable = export.AllowUnbootable,
                    AddDefaultEntries = export.AddDefaultEntries,
                    UsePartCache = export.UsePartCache,
                    SourceDateEpoch = export.SourceDateEpoch,
                    Kernel = export.Kernel,
                    Progress = options.ExportProgress ?? export.Progress,
                }, cache, cancellationToken);
                var archive = ArchiveSplitter.Split(temp, cancellationToken);
                var platform = rootfs.Image?.Platform ?? FilePlatform(rootfs, kernel);
                var config = Config(archive, options, report.EntryCount, report.UncompressedSize, report.MinimumMemory, platform);
                return Push(archive, config, target, source, rootfs.Image?.Reference == source ? rootfs.Image?.Digest : null, kernel, options, cancellationToken);
            }
            finally
            {
                File.Delete(temp);
            }
        }

        private static PublishReport Push(SplitArchive archive, ArtifactConfig config, ImageReference target, ImageReference? source, Digest? sourceDigest,
            string? kernel, PublishOptions options, CancellationToken cancellationToken)
        {
            var plan = new PublishPlan
            {
                Archive = archive,
                Config = config,
                Target = target,
                KernelPath = kernel,
                Source = source,
                SourceDigest = sourceDigest,
                Created = options.Created ?? CreatedNow(),
                Registry = new RegistryOptions
                {
                    Credential = options.Credential is { } c ? new RegistryCredential(c.UserName, c.Password, options.CredentialOrigin) : null,
                    AllowPlainHttp = options.AllowPlainHttp,
                    Limits = RegistryLimits.FromEnvironment(),
                    Verbose = options.Verbose,
                },
                Progress = options.Progress is { } progress ? (done, total) => progress.Report(new InitramfsProgress(ProgressStage.Publish, target.ToString(), done, total)) : null,
                Warning = options.Warning,
            };
            return ArtifactPublisher.PublishAsync(plan, cancellationToken).GetAwaiter().GetResult();
        }

        private static ArtifactConfig Config(SplitArchive archive, PublishOptions options, int entries, long uncompressed, long minimumMemory, Platform platform) => new()
        {
            Os = platform.Os,
            Architecture = platform.Architecture,
            Variant = platform.Variant,
            Compression = archive.Compression,
            KernelCommandLine = options.KernelArgument,
            EntryCount = entries,
            UncompressedSize = uncompressed,
            ArchiveSize = archive.Size,
            ArchiveDigest = archive.Digest.ToString(),
            MinimumMemory = minimumMemory,
            ModuleVersion = typeof(Initramfs).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
                ?? typeof(Initramfs).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
        };

        /// <summary>
        /// The platform of an archive that did not come from an image: the kernel's architecture
        /// when one ships with it (it is what runs the archive), else the ELF machine of /init or,
        /// for a script, of the first ELF program found under /bin, /sbin, /usr/bin, /usr/sbin.
        /// </summary>
        private static readonly string[] ProgramDirectories = { "/bin", "/sbin", "/usr/bin", "/usr/sbin" };

        private static Platform FilePlatform(Rootfs rootfs, string? kernel)
        {
            if (kernel is not null && KernelImage.Read(kernel).Architecture is { } arch)
            {
                return new Platform("linux", arch, null);
            }
            using var reader = new ContentReader();
            var candidates = new[] { rootfs.GetEntry("/init") }.Concat(ProgramDirectories.SelectMany(d => rootfs.GetChildren(d)));
            foreach (var entry in candidates.Take(2000))
            {
                if (entry is { Type: EntryType.File, Content: { Length: >= 20 } content })
                {
                    byte[] head = reader.ReadPrefix(content, 20);
                    if (head.Length >= 20 && head[0] == 0x7F && head[1] == 'E' && head[2] == 'L' && head[3] == 'F')
                    {
                        int machine = head[5] == 1 ? head[18] | (head[19] << 8) : (head[18] << 8) | head[19];
                        if (KernelImage.ArchitectureOf(machine) is { } found)
                        {
                            return new Platform("linux", found, null);
                        }
                    }
                }
            }
            throw new InitramfsException("ArtifactPlatformUnknown", FailureKind.InvalidData,
                "Cannot tell which architecture the archive is for: no ELF program in /init, /bin, /sbin, /usr/bin or /usr/sbin. Give the kernel with -Kernel.", "/init");
        }

        private static ImageReference PublishTarget(string reference)
        {
            var target = ImageReference.Parse(reference);
            if (target.Transport != ImageTransport.Registry || target.Digest is not null)
            {
                throw new InitramfsException("PublishReferenceInvalid", FailureKind.InvalidArgument,
                    $"'{reference}' is not where an artifact can be pushed: give a registry reference with a tag, <registry>/<repository>:<tag>.", reference);
            }
            return target;
        }

        private static string? KernelFile(string? kernel)
        {
            if (kernel is null)
            {
                return null;
            }
            var info = new FileInfo(kernel);
            if (!info.Exists)
            {
                throw new InitramfsException("HostFileNotFound", FailureKind.NotFound, $"The kernel '{info.FullName}' does not exist.", info.FullName);
            }
            return info.FullName;
        }

        /// <summary>SOURCE_DATE_EPOCH when set (reproducible artifacts), else now.</summary>
        private static DateTimeOffset CreatedNow()
        {
            string? env = Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH");
            if (string.IsNullOrEmpty(env))
            {
                return DateTimeOffset.UtcNow;
            }
            if (!long.TryParse(env, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds) || seconds > 253402300799)
            {
                throw new InitramfsException("SourceDateEpochInvalid", FailureKind.InvalidArgument, $"SOURCE_DATE_EPOCH='{env}' is not a number of seconds.", env);
            }
            return DateTimeOffset.FromUnixTimeSeconds(seconds);
        }
    }
}
