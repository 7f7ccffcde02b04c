using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Boot;
using InitramfsPS.Cache;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.Images;
using InitramfsPS.Import;
using InitramfsPS.Init;
using InitramfsPS.Inspection;
using InitramfsPS.IO;
using InitramfsPS.Layers;
using InitramfsPS.Registry;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS
{
    /// <summary>
    /// The operations of InitramfsPS, as the cmdlets use them: open an image from any source,
    /// expand it into a rootfs, change the rootfs, export it as an initramfs, import an archive,
    /// compare and test. Every failure a caller can cause is an <see cref="InitramfsException"/>
    /// with a stable id (<see cref="InitramfsException.ErrorId"/>). <see cref="InitramfsBuilder"/>
    /// chains the common ones.
    /// </summary>
    public static partial class Initramfs
    {
        /// <summary>The most bytes one layer may expand to unless told otherwise (16 GiB).</summary>
        public const long DefaultMaxLayerSize = ExpandOptions.DefaultMaxLayerSize;

        /// <summary>The most bytes the compressed parts of one archive may expand to unless told otherwise (16 GiB).</summary>
        public const long DefaultMaxImportSize = ImportOptions.DefaultMaxUncompressedSize;

        /// <summary>The host name a generated /init sets unless told otherwise.</summary>
        public const string DefaultHostname = InitPlanner.DefaultHostname;

        private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(100);

        /// <summary>
        /// Resolves an image reference to an image whose manifest, config and layers are verified
        /// and in the cache: a registry reference (<c>alpine:3.20</c>, <c>127.0.0.1:5000/x@sha256:…</c>),
        /// <c>oci:dir[:tag|@digest]</c> (an OCI image layout, read in place) or
        /// <c>docker-archive:file[:name:tag]</c> (a <c>docker save</c> archive, read into the cache).
        /// </summary>
        /// <param name="reference">The image reference.</param>
        /// <param name="options">Platform, credentials, progress; null for the defaults.</param>
        /// <param name="cache">The cache to use; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the pull; nothing partial stays in the cache.</param>
        public static OciImage OpenImage(string reference, ImageOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(reference);
            options ??= new ImageOptions();
            using var owned = cache is null ? new InitramfsCache() : null;
            var store = cache ?? owned!;
            if (options.MaxParallelDownloads is < 1 or > 32)
            {
                throw new InitramfsException("MaxParallelDownloadsInvalid", FailureKind.InvalidArgument,
                    $"MaxParallelDownloads runs from 1 to 32; {options.MaxParallelDownloads} is outside.", options.MaxParallelDownloads);
            }
            var platform = options.Platform is null ? Images.Platform.Host : Images.Platform.Parse(options.Platform);
            var parsed = ImageReference.Parse(reference);
            options.Verbose?.Invoke($"Resolving {parsed} for {platform}.");
            OciImage image = parsed.Transport switch
            {
                ImageTransport.OciLayout => LayoutResolver.FromLayout(parsed, HostPath(options, parsed.Path!), platform),
                ImageTransport.DockerArchive => ReadDockerArchive(parsed, HostPath(options, parsed.Path!), store, options.Progress, cancellationToken),
                _ => Pull(parsed, platform, store, options, cancellationToken),
            };
            store.AfterWrite(cancellationToken);
            return image;
        }

        private static string HostPath(ImageOptions options, string path) =>
            options.ResolvePath is { } resolve ? resolve(path) : Path.GetFullPath(path);

        private static OciImage ReadDockerArchive(ImageReference reference, string path, InitramfsCache cache, IProgress<InitramfsProgress>? progress, CancellationToken cancellationToken) =>
            DockerArchiveImporter.Import(reference, path, cache.Store,
                progress is null ? null : (done, total) => progress.Report(new InitramfsProgress(ProgressStage.ReadArchive, path, done, total)),
                cancellationToken);

        private static OciImage Pull(ImageReference reference, Images.Platform platform, InitramfsCache cache, ImageOptions options, CancellationToken cancellationToken)
        {
            var layers = new ConcurrentDictionary<string, (long Done, long Size)>(StringComparer.Ordinal);
            var pull = new PullOptions
            {
                Offline = options.Offline,
                MaxParallelDownloads = options.MaxParallelDownloads,
                Progress = layers,
                // Each compressed layer is unpacked while it downloads, so that expanding the image need not read it again.
                LayerSink = PullSinks.UnpackLayers(cache.Store),
                Registry = options.Offline
                    ? new RegistryOptions { Verbose = options.Verbose }
                    : RegistryOptionsFor(options.Credential, options.CredentialOrigin, options.AllowPlainHttp, options.Verbose),
            };
            var progress = options.Progress;
            void Report()
            {
                foreach (var (digest, (done, size)) in layers.ToArray())
                {
                    progress!.Report(new InitramfsProgress(ProgressStage.Pull, digest, done, size));
                }
            }
            // The puller keeps per-layer counters; a timer turns them into reports.
            using (var timer = progress is null ? null : new Timer(_ => Report(), null, ProgressInterval, ProgressInterval))
            {
                var image = RegistryPuller.PullAsync(reference, platform, cache.Store, pull, cancellationToken).GetAwaiter().GetResult();
                if (progress is not null)
                {
                    Report();
                }
                return image;
            }
        }

        /// <summary>Applies an image's layers, in order, into a rootfs held in memory (contents stay in the cache's layers).</summary>
        /// <param name="image">The image from <see cref="OpenImage"/>.</param>
        /// <param name="cache">The cache the image is in; null opens the default one for this call.</param>
        /// <param name="maxLayerSize">The most bytes one layer may expand to; past it a layer is refused as a decompression bomb.</param>
        /// <param name="progress">Each layer as it is read.</param>
        /// <param name="cancellationToken">Stops the expansion.</param>
        public static Rootfs Expand(OciImage image, InitramfsCache? cache = null, long maxLayerSize = DefaultMaxLayerSize,
            IProgress<InitramfsProgress>? progress = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(image);
            if (maxLayerSize < 1)
            {
                throw new InitramfsException("MaxLayerSizeInvalid", FailureKind.InvalidArgument, $"The most bytes a layer may expand to must be positive, not {maxLayerSize}.", maxLayerSize);
            }
            using var owned = cache is null ? new InitramfsCache() : null;
            var store = cache ?? owned!;
            string item = image.Reference.ToString();
            var options = new ExpandOptions
            {
                MaxLayerSize = maxLayerSize,
                Progress = progress is null ? null : (index, count, read, size) =>
                    progress.Report(new InitramfsProgress(ProgressStage.Expand, item, read, size) { Index = index, Count = count }),
            };
            var rootfs = ImageExpander.Expand(image, store.Store, options, cancellationToken);
            store.AfterWrite(cancellationToken);
            return rootfs;
        }

        /// <summary>
        /// Reads an initramfs archive (plain, gzip, zstd, or a concatenation of them) into a rootfs,
        /// as the kernel unpacks it; file contents go to the cache's imports area.
        /// </summary>
        /// <param name="path">The archive.</param>
        /// <param name="cache">The cache; null opens the default one for this call.</param>
        /// <param name="maxSize">The most bytes the compressed parts may expand to.</param>
        /// <param name="progress">Bytes of the file read.</param>
        /// <param name="cancellationToken">Stops the import.</param>
        /// <returns>The rootfs, the parts found and notes on what the kernel would do differently from what the archive says.</returns>
        public static ImportResult Import(string path, InitramfsCache? cache = null, long maxSize = DefaultMaxImportSize,
            IProgress<InitramfsProgress>? progress = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(path);
            if (maxSize < 1)
            {
                throw new InitramfsException("MaxSizeInvalid", FailureKind.InvalidArgument, $"The most bytes an archive may expand to must be positive, not {maxSize}.", maxSize);
            }
            using var owned = cache is null ? new InitramfsCache() : null;
            var store = cache ?? owned!;
            string full = Path.GetFullPath(path);
            var options = new ImportOptions
            {
                MaxUncompressedSize = maxSize,
                Progress = progress is null ? null : (done, total) => progress.Report(new InitramfsProgress(ProgressStage.Import, full, done, total)),
            };
            var result = InitramfsImporter.Import(full, store.Store, options, cancellationToken);
            store.AfterWrite(cancellationToken);
            return result;
        }

        /// <summary>
        /// The entries at a path or pattern inside a rootfs; a directory lists its children. Paths
        /// resolve as the kernel resolves them (parent symlinks followed, confined to the root).
        /// </summary>
        /// <param name="rootfs">The rootfs.</param>
        /// <param name="pathOrPattern">A path or a wildcard pattern (<c>*</c>, <c>?</c>, <c>[...]</c>, <c>**</c>).</param>
        /// <param name="recurse">Include everything below the directories named.</param>
        /// <returns>The entries; a path that does not exist is an error (<c>ItemNotFound</c>).</returns>
        public static IReadOnlyList<RootfsEntry> GetItems(Rootfs rootfs, string pathOrPattern, bool recurse = false)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(pathOrPattern);
            return RootfsQuery.Find(rootfs, pathOrPattern, recurse, listDirectory: true)
                ?? throw NotFound(pathOrPattern);
        }

        private static InitramfsException NotFound(string path) =>
            new("ItemNotFound", FailureKind.NotFound, $"'{RootfsPath.Printable(path)}' does not exist in the rootfs.", path);

        /// <summary>
        /// Adds host files or directories to <paramref name="rootfs"/> (changing it: pass a
        /// <see cref="Rootfs.Clone"/> to keep the original) at <paramref name="destination"/>;
        /// a destination ending in '/' puts them inside that directory.
        /// </summary>
        /// <param name="rootfs">The rootfs to change.</param>
        /// <param name="hostPaths">Full paths of host files or directories.</param>
        /// <param name="destination">Where they go in the rootfs.</param>
        /// <param name="options">Mode, owner, recursion; null adds one file with mode 0755, owned by 0:0.</param>
        /// <returns>The rootfs paths written.</returns>
        public static IReadOnlyList<string> AddFiles(Rootfs rootfs, IReadOnlyList<string> hostPaths, string destination, AddFileOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(hostPaths);
            ArgumentNullException.ThrowIfNull(destination);
            options ??= new AddFileOptions();
            if (options.Uid is < 0 or > uint.MaxValue || options.Gid is < 0 or > uint.MaxValue)
            {
                string owner = string.Create(CultureInfo.InvariantCulture, $"{options.Uid}:{options.Gid}");
                throw new InitramfsException("OwnerOutOfRange", FailureKind.InvalidArgument, $"The owner '{owner}' does not fit in 32 bits.", owner);
            }
            if (options.Mode is < 0 or > 0xFFF)
            {
                throw new InitramfsException("ModeInvalid", FailureKind.InvalidArgument,
                    $"The mode {Convert.ToString(options.Mode.Value, 8)} is not permission bits (octal 0 to 7777).", options.Mode.Value);
            }
            var written = HostFiles.Add(rootfs, hostPaths, destination, options);
            rootfs.Changes.Add($"added {string.Join(", ", hostPaths)} at {destination}");
            return written;
        }

        /// <summary>Sets /init of <paramref name="rootfs"/> (changing it) to a script; CRLF line ends become LF, since the kernel would read "sh\r" as the interpreter.</summary>
        /// <param name="rootfs">The rootfs to change.</param>
        /// <param name="content">The text of /init.</param>
        public static void SetInit(Rootfs rootfs, string content)
        {
            ArgumentNullException.ThrowIfNull(content);
            var bytes = new InlineContent(Encoding.UTF8.GetBytes(content.Replace("\r\n", "\n", StringComparison.Ordinal)));
            SetInitEntry(rootfs, bytes, 0, InitPlanner.SetByUser);
        }

        /// <summary>Sets /init of <paramref name="rootfs"/> (changing it) to a host file, its bytes as they are.</summary>
        /// <param name="rootfs">The rootfs to change.</param>
        /// <param name="hostPath">The host file; a missing one is an error (<c>HostFileNotFound</c>).</param>
        public static void SetInitFromFile(Rootfs rootfs, string hostPath)
        {
            ArgumentNullException.ThrowIfNull(hostPath);
            var info = new FileInfo(hostPath);
            if (!info.Exists)
            {
                throw new InitramfsException("HostFileNotFound", FailureKind.NotFound, $"The init script '{info.FullName}' does not exist.", info.FullName);
            }
            SetInitEntry(rootfs, new HostFileContent(info.FullName, info.Length), info.LastWriteTimeUtc.ToUnixSeconds(), "host:" + info.FullName);
        }

        private static void SetInitEntry(Rootfs rootfs, Content content, long mtime, string source)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            CheckInitNotDirectory(rootfs);
            rootfs.Changes.Add("set /init from " + source);
            rootfs.Set(new RootfsEntry
            {
                Path = "/init",
                Type = EntryType.File,
                Mode = 0x1ED,
                MTime = mtime,
                Size = content.Length,
                Content = content,
                Source = source,
            }, null);
        }

        /// <summary>
        /// Sets /init of <paramref name="rootfs"/> (changing it) to a generated script that sets up
        /// the VM (mounts, host name, environment), runs the image config's Entrypoint and Cmd (or
        /// <paramref name="command"/>) and powers the VM off when it exits.
        /// </summary>
        /// <param name="rootfs">The rootfs to change.</param>
        /// <param name="command">The workload's argv; null takes it from the image config.</param>
        /// <param name="hostname">The host name the script sets.</param>
        /// <returns>Warnings about the workload (a program that is not there, a user with no entry).</returns>
        public static IReadOnlyList<string> GenerateInit(Rootfs rootfs, IReadOnlyList<string>? command = null, string hostname = DefaultHostname)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(hostname);
            CheckHostname(hostname);
            if (command is { Count: 0 })
            {
                throw new InitramfsException("InitCommandMissing", FailureKind.InvalidArgument, "The command for a generated /init is empty.", "/init");
            }
            CheckInitNotDirectory(rootfs);
            var spec = InitPlanner.Spec(rootfs, command, hostname)
                ?? throw new InitramfsException("InitCommandMissing", FailureKind.InvalidArgument,
                    "This rootfs did not come from an image, so there is no image config to take a command from; give one with -Command, or an init with -Path or -Content.", "/init");
            var warnings = new List<string>();
            string script = InitGenerator.Generate(rootfs, spec, warnings);
            rootfs.Changes.Add($"set /init generated from {spec.Origin}: {InitPlanner.CommandLine(spec.Command)}");
            rootfs.Set(InitPlanner.Entry(script, "generated"), null);
            return warnings;
        }

        private static readonly System.Text.RegularExpressions.Regex Hostname = new(
            @"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z",
            System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

        private static void CheckHostname(string hostname)
        {
            if (hostname.Length is < 1 or > 64 || !Hostname.IsMatch(hostname))
            {
                throw new InitramfsException("HostnameInvalid", FailureKind.InvalidArgument, $"'{hostname}' is not a host name (letters, digits and '-', in labels of at most 63, at most 64 in all).", hostname);
            }
        }

        private static void CheckInitNotDirectory(Rootfs rootfs)
        {
            if (rootfs.GetEntry("/init")?.Type == EntryType.Directory)
            {
                throw new InitramfsException("InitIsDirectory", FailureKind.InvalidArgument,
                    "/init is a directory in this rootfs; remove it before setting an init.", "/init");
            }
        }

        /// <summary>The usual trims <see cref="RemoveOptions.Presets"/> names, each with the patterns it removes and those it keeps.</summary>
        public static IReadOnlyList<TrimPreset> Presets => TrimPresets.All;

        /// <summary>
        /// Removes entries from <paramref name="rootfs"/> (changing it): paths or patterns, and the
        /// usual trims (<see cref="RemoveOptions.Presets"/>).
        /// </summary>
        /// <param name="rootfs">The rootfs to change.</param>
        /// <param name="options">What to remove and how to ask.</param>
        public static RemoveResult Remove(Rootfs rootfs, RemoveOptions options)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(options);
            var presets = options.Presets.Select(name => TrimPresets.All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new InitramfsException("PresetUnknown", FailureKind.InvalidArgument,
                    $"'{name}' is not a preset; the presets are {string.Join(", ", TrimPresets.Names)}.", name)).ToList();
            bool declined = false;
            int entries = 0;
            long bytes = 0;
            var what = new List<string>();
            // What is gone already, by reference: a pattern like /d/** names a directory and all
            // below it, and the rest must cost O(1) each, not a lookup of its (long) path.
            var gone = new HashSet<RootfsEntry>(ReferenceEqualityComparer.Instance);
            void RemoveTop(RootfsEntry top, string reason)
            {
                if (gone.Contains(top) || rootfs.GetEntry(top.Path) is null)
                {
                    return;
                }
                var below = top.Type == EntryType.Directory ? rootfs.GetEntriesBelow(top.Path).ToList() : new List<RootfsEntry>();
                long size = top.Size + below.Sum(e => e.Type == EntryType.File ? e.Size : 0);
                string detail = below.Count == 0
                    ? $"{top.Path} ({Units.Bytes(size)})"
                    : string.Create(CultureInfo.InvariantCulture, $"{top.Path} and the {below.Count} entries below it ({Units.Bytes(size)})");
                if (options.Approve is { } approve && !approve(detail, "Remove from the rootfs" + reason))
                {
                    declined = true;
                    return;
                }
                var removed = rootfs.Remove(top.Path);
                gone.UnionWith(removed);
                entries += removed.Count;
                bytes += size;
                options.Removed?.Invoke("Removed " + detail + ".");
            }

            foreach (string path in options.Paths)
            {
                try
                {
                    var found = RootfsQuery.Find(rootfs, path, recurse: false, listDirectory: false);
                    if (found is null || (found.Count == 0 && !RootfsGlob.HasWildcards(path)))
                    {
                        throw NotFound(path);
                    }
                    foreach (var entry in found)
                    {
                        if (entry.Path == RootfsPath.Root)
                        {
                            throw new InitramfsException("RootNotRemovable", FailureKind.InvalidArgument, "The root of a rootfs cannot be removed.", path);
                        }
                        if (entry.Type == EntryType.Directory && !options.Recurse && rootfs.GetChildren(entry.Path).Any())
                        {
                            throw new InitramfsException("DirectoryNotEmpty", FailureKind.InvalidArgument,
                                $"'{entry.Path}' is a directory with entries in it; add -Recurse to remove it with them.", entry.Path);
                        }
                        RemoveTop(entry, string.Empty);
                    }
                    what.Add(path);
                }
                catch (InitramfsException ex) when (options.PathFailed is not null)
                {
                    // As Remove-Item: a path that fails is one error, and the others are still removed.
                    options.PathFailed(path, ex);
                }
            }
            foreach (var preset in presets)
            {
                foreach (var top in TrimPresets.Select(rootfs, preset))
                {
                    RemoveTop(top, $" (preset {preset.Name})");
                }
                what.Add("preset " + preset.Name);
            }
            string summary = string.Create(CultureInfo.InvariantCulture, $"removed {entries} entries ({Units.Bytes(bytes)}) for {string.Join(", ", what)}");
            if (!declined)
            {
                rootfs.Changes.Add(summary);
            }
            return new RemoveResult { Entries = entries, Bytes = bytes, Declined = declined, Summary = summary };
        }

        /// <summary>
        /// The compression and level an export to <paramref name="path"/> uses, checked (a level
        /// outside the compression's range is <c>CompressionLevelInvalid</c>), and a warning when
        /// the file name implies another compression. <see cref="Export"/> checks the same.
        /// </summary>
        /// <param name="path">The archive's path.</param>
        /// <param name="options">The export's options; null for the defaults.</param>
        public static ExportTarget PlanExport(string path, ExportOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(path);
            options ??= new ExportOptions();
            var compression = options.CompressionFor(path);
            return new ExportTarget(Path.GetFullPath(path), compression, options.LevelFor(compression), options.NameMismatch(path));
        }

        /// <summary>
        /// Writes <paramref name="rootfs"/> as a cpio newc initramfs the Linux kernel boots: sorted,
        /// reproducible (the same rootfs gives the same bytes), with /dev/console and the other
        /// entries a VM needs, and the /init generated from the image config when the rootfs has
        /// none. It refuses a rootfs whose /init would not start (<c>InitNotExecutable</c>, ...)
        /// unless <see cref="ExportOptions.AllowUnbootable"/>. The file appears whole or not at all.
        /// </summary>
        /// <param name="rootfs">The rootfs; it is not changed.</param>
        /// <param name="path">The archive to write.</param>
        /// <param name="options">Compression, level and the rest; null for the defaults.</param>
        /// <param name="cache">The cache the rootfs reads from; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the export; no file is left.</param>
        /// <returns>What was written: sizes, sha256, the entries added, warnings.</returns>
        public static ExportReport Export(Rootfs rootfs, string path, ExportOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            ArgumentNullException.ThrowIfNull(path);
            options ??= new ExportOptions();
            string full = Path.GetFullPath(path);
            var live = new ExportProgress();
            var settings = options.Resolve(full, live);
            using var owned = cache is null ? new InitramfsCache() : null;
            var store = cache ?? owned!;
            store.Use(rootfs);
            if (options.UsePartCache && settings.Compression != InitramfsCompression.None)
            {
                // Under the cache's lease: no eviction takes a part this export looks up or keeps.
                settings = settings with { PartStore = new CachedPartStore(store.Store, settings.Compression, settings.Level) };
            }
            var progress = options.Progress;
            using var timer = progress is null ? null : new Timer(_ => progress.Report(live), null, ProgressInterval, ProgressInterval);
            var report = InitramfsExporter.Export(rootfs, full, settings, cancellationToken);
            progress?.Report(live);
            return report;
        }

        /// <summary>
        /// Checks whether <paramref name="rootfs"/>, as <see cref="Export"/> would write it (with the
        /// /init it would generate), boots and starts its workload: /init and its interpreter, the
        /// program a generated /init runs, the interpreters and libraries of the ELF programs in
        /// PATH, /dev/console, and what a newc archive cannot hold.
        /// </summary>
        /// <param name="rootfs">The rootfs.</param>
        /// <param name="options">A kernel and memory to check against; null for none.</param>
        /// <param name="cancellationToken">Stops the checks.</param>
        /// <returns>The findings, errors first within each check.</returns>
        public static IReadOnlyList<Finding> Test(Rootfs rootfs, TestOptions? options = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            options ??= new TestOptions();
            var prepared = InitramfsExporter.Prepare(rootfs, addDefaultEntries: false);
            var inspection = new InspectionOptions
            {
                ConsoleMissingSeverity = FindingSeverity.Info,
                ConsoleMissingNote = "Export-Initramfs adds it (char 5:1) unless -NoDefaultEntries is given.",
                Init = prepared.Init,
            };
            var findings = new List<Finding>(RootfsInspector.Inspect(prepared.Rootfs, inspection, cancellationToken));
            if (options.Kernel is { } kernel)
            {
                findings.AddRange(KernelCheck.Check(kernel, prepared.Rootfs, null));
            }
            // Not exported yet: counted as an uncompressed archive, the most a compressed one can take.
            CheckMemory(findings, options, prepared.Rootfs, InitramfsExporter.CpioSize(prepared.Rootfs), "/",
                " (counted as an uncompressed archive; a .cpio.zst needs less, as Export-Initramfs's report says)");
            return findings;
        }

        /// <summary>Checks an archive as <see cref="Test(Rootfs, TestOptions?, CancellationToken)"/> checks a rootfs, as the kernel would unpack it.</summary>
        /// <param name="path">The archive.</param>
        /// <param name="options">A kernel and memory to check against; null for none.</param>
        /// <param name="cache">The cache to import into; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the checks.</param>
        public static IReadOnlyList<Finding> TestArchive(string path, TestOptions? options = null, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(path);
            options ??= new TestOptions();
            var result = Import(path, cache, cancellationToken: cancellationToken);
            string full = Path.GetFullPath(path);
            var inspection = new InspectionOptions
            {
                ConsoleMissingSeverity = FindingSeverity.Error,
                ConsoleMissingNote = "The archive lacks it; the kernel's own built-in initramfs may still provide it.",
            };
            var findings = new List<Finding>();
            findings.AddRange(result.Notes.Select(note => new Finding(FindingSeverity.Warning, "ArchiveNote", full, note)));
            findings.AddRange(RootfsInspector.Inspect(result.Rootfs, inspection, cancellationToken));
            if (options.Kernel is { } kernel)
            {
                var codecs = result.Parts.Select(p => p.Compression).Distinct()
                    .Select(c => c switch { "gzip" => InitramfsCompression.Gzip, "zstd" => InitramfsCompression.Zstd, _ => InitramfsCompression.None })
                    .Where(c => c != InitramfsCompression.None).ToList();
                findings.AddRange(KernelCheck.Check(kernel, result.Rootfs, codecs));
            }
            CheckMemory(findings, options, result.Rootfs, new FileInfo(full).Length, full, string.Empty);
            return findings;
        }

        /// <summary>With a memory given: the least memory the archive boots in (Info), or an Error when the memory is below it.</summary>
        private static void CheckMemory(List<Finding> findings, TestOptions options, Rootfs rootfs, long archiveBytes, string path, string note)
        {
            if (options.Memory is not { } memory)
            {
                return;
            }
            var footprint = ArchiveFootprint.Of(rootfs, archiveBytes);
            long minimum = MemoryModel.Minimum(footprint);
            string why = string.Create(CultureInfo.InvariantCulture,
                $"the kernel, the {Units.Bytes(archiveBytes)} archive while it is unpacked, {Units.Bytes(footprint.FilePages)} of unpacked files and {footprint.Entries} entries, with a margin{note}");
            findings.Add(memory < minimum
                ? new Finding(FindingSeverity.Error, "MemoryTooSmall", path,
                    $"The guest needs at least {MemoryModel.MiB(minimum)} to boot this ({why}); -Memory gives {MemoryModel.MiB(memory)}. The kernel would fail to unpack it or panic.")
                : new Finding(FindingSeverity.Info, "MemoryMinimum", path,
                    $"The guest needs at least {MemoryModel.MiB(minimum)} to boot this ({why}); -Memory {MemoryModel.MiB(memory)} leaves {MemoryModel.MiB(memory - minimum)} for the workload."));
        }

        /// <summary>The entries added, removed and changed between two rootfs, in path order.</summary>
        /// <param name="reference">The rootfs compared against.</param>
        /// <param name="difference">The rootfs compared with it.</param>
        /// <param name="includeEqual">Also list the paths that are alike, as Equal.</param>
        /// <param name="cancellationToken">Stops the comparison.</param>
        public static IEnumerable<RootfsDifference> Compare(Rootfs reference, Rootfs difference, bool includeEqual = false, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(reference);
            ArgumentNullException.ThrowIfNull(difference);
            return RootfsComparer.Compare(reference, difference, includeEqual, cancellationToken);
        }

        /// <summary>The tags of the images in an OCI image layout (for completion), bounded.</summary>
        /// <param name="directory">The layout directory.</param>
        public static IReadOnlyList<string> ListLayoutTags(string directory) => LayoutResolver.ListTags(directory);

        /// <summary>The names of the images in a <c>docker save</c> archive (for completion), bounded; an unnamed image is <c>@</c> and its config digest.</summary>
        /// <param name="file">The archive.</param>
        public static IReadOnlyList<string> ListArchiveNames(string file) => DockerArchiveImporter.ListNames(file);

        /// <summary>
        /// The guest memory to boot <paramref name="rootfs"/> in when none is given: the least it
        /// boots in, counted as an uncompressed archive, and headroom for the workload.
        /// </summary>
        /// <param name="rootfs">The rootfs, as it would be exported.</param>
        public static long DefaultBootMemory(Rootfs rootfs)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            var prepared = InitramfsExporter.Prepare(rootfs, addDefaultEntries: true).Rootfs;
            return MemoryModel.Default(ArchiveFootprint.Of(prepared, InitramfsExporter.CpioSize(prepared)));
        }

        /// <summary>The guest memory to boot an archive in when none is given: the least it boots in and headroom for the workload.</summary>
        /// <param name="path">The archive.</param>
        /// <param name="cache">The cache to import into; null opens the default one for this call.</param>
        /// <param name="cancellationToken">Stops the reading.</param>
        public static long DefaultBootMemory(string path, InitramfsCache? cache = null, CancellationToken cancellationToken = default)
        {
            var imported = Import(path, cache, cancellationToken: cancellationToken);
            return MemoryModel.Default(ArchiveFootprint.Of(imported.Rootfs, new FileInfo(Path.GetFullPath(path)).Length));
        }

        /// <summary>The guest memory to boot an exported archive in: the least its report says, and headroom for the workload.</summary>
        /// <param name="report">The report of <see cref="Export"/>.</param>
        public static long DefaultBootMemory(ExportReport report)
        {
            ArgumentNullException.ThrowIfNull(report);
            return report.MinimumMemory + MemoryModel.WorkloadHeadroom;
        }

        /// <summary>The QEMU command line that boots an archive: the kernel found, the accelerator, the arguments. Nothing runs.</summary>
        /// <param name="options">The archive, kernel, machine, memory, timeout.</param>
        public static BootPlan PlanBoot(BootOptions options) => QemuCommand.Plan(options);

        /// <summary>Boots an archive under QEMU, headless, and reports what its console showed.</summary>
        /// <param name="plan">From <see cref="PlanBoot"/>.</param>
        /// <param name="consoleLine">Called with each console line, from QEMU's reader thread.</param>
        /// <param name="cancellationToken">Stops the VM.</param>
        public static BootResult Boot(BootPlan plan, Action<string>? consoleLine = null, CancellationToken cancellationToken = default) =>
            QemuCommand.Run(plan, consoleLine, cancellationToken);
    }

    /// <summary>What an export to a path writes, from <see cref="Initramfs.PlanExport"/>.</summary>
    /// <param name="Path">The archive's full path.</param>
    /// <param name="Compression">The compression.</param>
    /// <param name="Level">The compression level.</param>
    /// <param name="NameWarning">A warning when the file name implies another compression, else null.</param>
    public sealed record ExportTarget(string Path, InitramfsCompression Compression, int Level, string? NameWarning);
}
